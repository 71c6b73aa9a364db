"""Swapped-word negatives: the text encoder's objective and the matching-aware D's mismatched text."""
import pytest
import torch

import ganforge
from ganforge.data.captions import DIGIT_WORDS, Vocabulary
from ganforge.data.translation import COLOR_NAMES
from ganforge.errors import ConfigError
from ganforge.text import pick_captions, swap_groups, swap_loss, swapped_captions, train_encoder

# The same fixtures as the model tests: encoders cached away from the user's cache, 64 captioned digits.
from test_text_models import TINY_TEXT, _cache, data  # noqa: F401


def test_swapped_captions_change_one_word_for_another_of_its_group(data):
    vocab = data.vocab
    groups = swap_groups(vocab)
    assert len(groups) == 4  # digit, colour, thin/thick, slant words
    tok = pick_captions(data.groups["data"]["tokens"], torch.Generator().manual_seed(0))
    neg, mask = swapped_captions(tok, groups, torch.Generator().manual_seed(1))
    assert neg.shape == (4, *tok.shape) and mask[:2].all()  # every caption names a digit and colours
    assert 0 < mask[2].sum() < len(tok)  # the thickness word is said of some digits only
    for g, grp in enumerate(groups):
        diff = neg[g] != tok
        assert torch.equal(diff.sum(1), mask[g].long())  # one word changed where the group is said, else none
        rows, pos = diff.nonzero(as_tuple=True)
        assert torch.isin(tok[rows, pos], grp).all() and torch.isin(neg[g][rows, pos], grp).all()
    # the digit swap says another digit
    digits = {vocab.index[w]: i for i, w in enumerate(DIGIT_WORDS)}
    rows, pos = (neg[0] != tok).nonzero(as_tuple=True)
    said = torch.tensor([digits[int(t)] for t in neg[0][rows, pos]])
    assert torch.equal(said != data.groups["data"]["y"][rows].long(), torch.ones(len(rows), dtype=torch.bool))


def test_swap_groups_only_for_the_digit_grammar():
    assert swap_groups(Vocabulary(["a", "red", "bird", "with", "wings"])) == []
    assert len(swap_groups(Vocabulary([*DIGIT_WORDS, *COLOR_NAMES]))) == 2


def test_swap_loss_is_the_margin_hinge():
    v = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    t = torch.tensor([[3.0, 0.0], [0.0, 1.0]])  # F(v, t) = 3, 1
    neg = torch.tensor([[[1.0, 0.0], [0.0, 0.5]]])  # F(v, t') = 1, 0.5
    mask = torch.tensor([[True, True]])
    # hinge[1 + F(v, t') - F(v, t)]: max(0, -1) and max(0, 0.5)
    assert torch.isclose(swap_loss(v, t, neg, mask), torch.tensor(0.25))
    assert torch.isclose(swap_loss(v, t, neg, torch.tensor([[True, False]])), torch.tensor(0.0))


def test_cls_swap_mismatches_are_own_captions_with_one_word_swapped(data):
    m = ganforge.create("gan-int-cls", data="digits-captions", **TINY_TEXT, cls_swap=1.0)
    tok = pick_captions(data.groups["data"]["tokens"][:16], torch.Generator().manual_seed(0))
    seen = []
    embed = m.embed
    m.embed = lambda t: (seen.append(t), embed(t))[1]
    e = embed(tok)
    wrong = m.mismatched(e, tok)
    assert len(seen) == 1
    assert torch.equal((seen[0] != tok).sum(1), torch.ones(len(tok), dtype=torch.long))
    assert torch.allclose(wrong, embed(seen[0]))
    m.cfg["cls_swap"] = 0.0  # the paper's mismatches: the next item's text
    assert torch.equal(m.mismatched(e, tok), e.roll(1, 0))
    with pytest.raises(ConfigError, match="cls_swap"):
        ganforge.create("gan-int-cls", data="digits-captions", **TINY_TEXT, cls_swap=1.5)


def test_encoder_training_adds_the_swap_hinge_for_digit_captions(data, monkeypatch):
    import ganforge.text as T

    calls = []
    real = T.swap_loss
    monkeypatch.setattr(T, "swap_loss", lambda *a: (calls.append(a[2].shape), real(*a))[1])
    cfg = {"te_dim": 8, "te_hidden": 8, "te_words": 8, "te_steps": 2, "te_batch": 16}
    rec = train_encoder(data, cfg, progress=False)
    assert rec["swaps"] and len(calls) == 2 and calls[0][:2] == (4, 16)  # 4 groups x 16 captions
    calls.clear()
    assert not train_encoder(data, {**cfg, "te_swaps": False}, progress=False)["swaps"] and not calls


def test_d_norm_layer_judges_each_image_on_its_own(data):
    """With d_norm=layer, D's score of an image does not depend on the rest of its batch."""
    torch.manual_seed(0)
    m = ganforge.create("gan-int-cls", data="digits-captions", **TINY_TEXT, d_norm="layer").train()
    assert not any(isinstance(mod, torch.nn.BatchNorm2d) for mod in m.D.modules())
    x = data.groups["data"]["x"][:8].float() / 127.5 - 1
    e = m.embed(pick_captions(data.groups["data"]["tokens"][:8]))
    with torch.no_grad():
        assert torch.allclose(m.D(x, e)[:4], m.D(x[:4], e[:4]), atol=1e-5)
        b = ganforge.create("gan-int-cls", data="digits-captions", **TINY_TEXT).train()
        assert not torch.allclose(b.D(x, e)[:4], b.D(x[:4], e[:4]), atol=1e-5)  # batch norm: it does
    with pytest.raises(ConfigError, match="d_norm"):
        ganforge.create("gan-int-cls", data="digits-captions", **TINY_TEXT, d_norm="group")


def test_digit_swap_sets_the_share_of_digit_word_swaps(data):
    tok = pick_captions(data.groups["data"]["tokens"][:64], torch.Generator().manual_seed(0))
    digits = swap_groups(data.vocab)[0]
    assert set(digits.tolist()) == {data.vocab.index[w] for w in DIGIT_WORDS}

    def digit_share(p):
        m = ganforge.create("gan-int-cls", data="digits-captions", **TINY_TEXT, cls_swap=1.0, digit_swap=p)
        seen = []
        embed = m.embed
        m.embed = lambda t: (seen.append(t), embed(t))[1]
        torch.manual_seed(0)
        m.mismatched(embed(tok), tok)
        changed = seen[0] != tok  # one word per caption
        return torch.isin(tok[changed], digits).float().mean().item()

    assert digit_share(1.0) == 1.0
    assert digit_share(0.0) == 0.0  # every caption here has a colour word to swap instead
    assert 0.05 < digit_share(-1) < 0.5  # uniform over the 2-4 groups a caption has
    with pytest.raises(ConfigError, match="digit_swap"):
        ganforge.create("gan-int-cls", data="digits-captions", **TINY_TEXT, digit_swap=1.5)


def test_emb_noise_perturbs_only_gs_training_condition(data):
    m = ganforge.create("gan-int-cls", data="digits-captions", **TINY_TEXT, emb_noise=0.3)
    g = data.groups["data"]
    batch = {"x": g["x"][:8].float() / 127.5 - 1, "tokens": g["tokens"][:8].long()}
    seen_g, seen_d = [], []
    m.G.register_forward_pre_hook(lambda mod, args: seen_g.append(args[1]))
    m.D.register_forward_pre_hook(lambda mod, args: seen_d.append(args[1]))
    torch.manual_seed(0)
    m.cfg["int"] = False
    m.g_step(batch)
    (eg,), (ed,) = seen_g, seen_d
    assert 0.2 < (eg - ed).std().item() < 0.4  # G sees e + 0.3 * eps, D the caption's own e
    m.cfg["emb_noise"] = 0.0
    seen_g.clear(), seen_d.clear()
    m.g_step(batch)
    assert torch.equal(seen_g[0], seen_d[0])
    with pytest.raises(ConfigError, match="emb_noise"):
        ganforge.create("gan-int-cls", data="digits-captions", **TINY_TEXT, emb_noise=-0.1)


def test_g_first_norm_unit_removes_a_template_shared_by_the_batch(data):
    """g_first_norm=unit: G's first layer is normalised per unit (channel and position) over the
    batch, so an input part that every sample shares (here the same shift of every sample's compressed
    embedding: a fixed template after the first layer) cannot reach the image; with DCGAN's per-channel
    batch norm it does, and it drowns z's share of the first layer's statistics."""
    z = torch.randn(8, TINY_TEXT["z_dim"])
    for norm, removed in (("unit", True), ("channel", False)):
        torch.manual_seed(0)
        m = ganforge.create("gan-int-cls", data="digits-captions", **TINY_TEXT, g_first_norm=norm).train()
        with torch.no_grad():
            t = m.G.proj(torch.randn(8, m.e_dim))
            before = m.G.net(torch.cat([z, t], 1))
            after = m.G.net(torch.cat([z, t + 3 * torch.rand(t.shape[1])], 1))  # the same shift for all
        assert torch.allclose(before, after, atol=1e-4) == removed, norm
    with pytest.raises(ConfigError, match="g_first_norm"):
        ganforge.create("gan-int-cls", data="digits-captions", **TINY_TEXT, g_first_norm="layer")
