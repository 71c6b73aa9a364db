"""Swapped-word negatives: the text encoder's objective and the matching-aware D's mismatched text."""
import pytest
import torch

import ganforge
from ganforge.data import load_data
from ganforge.data.captions import DIGIT_WORDS, Vocabulary
from ganforge.data.translation import COLOR_NAMES
from ganforge.errors import ConfigError
from ganforge.text import pick_captions, swap_groups, swap_loss, swapped_captions, train_encoder

from test_text_models import TINY_TEXT


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("GANFORGE_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


@pytest.fixture(scope="module")
def data():
    return load_data("digits-captions[:64]")


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
