"""gan-int-cls and stackgan: the matching-aware D, INT, conditioning augmentation, the two stages."""
import json

import pytest
import torch
import torch.nn.functional as F

import ganforge
from ganforge.cli import main
from ganforge.data import load_data
from ganforge.text import ConditioningAugmentation
from ganforge.training import load_run

from conftest import QUIET

TINY_TEXT = {"g_width": 8, "d_width": 8, "z_dim": 8, "t_dim": 8, "te_dim": 16, "te_hidden": 16, "te_words": 8,
             "te_steps": 30}
TINY_STACK = {**TINY_TEXT, "c_dim": 6, "g2_width": 4, "n_res": 1, "image_size": 32, "low_size": 16}


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    # text encoders trained by the tests are cached away from the user's cache
    monkeypatch.setenv("GANFORGE_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


@pytest.fixture(scope="module")
def data():
    return load_data("digits-captions[:64]")


def _batch(model, raw, n=8):
    g = raw.groups["data"]
    return {"x": g["x"][:n].float() / 127.5 - 1, "tokens": g["tokens"][:n].long()}


class SpyD(torch.nn.Module):
    """Scores a (image, text) pair by kind: real image with its own text a, real image with another
    image's text b, anything else (generated images) c; records every text it is shown."""

    def __init__(self, real, e, a=2.0, b=0.5, c=-1.0):
        super().__init__()
        self.real, self.e, self.a, self.b, self.c, self.texts = real, e, a, b, c, []
        self.w = torch.nn.Parameter(torch.zeros(()))

    def forward(self, x, e):
        self.texts.append(e.detach().clone())
        if x is self.real:
            own = (e == self.e).all(1)
            return torch.where(own, self.a, self.b) + 0 * self.w
        return torch.full((len(x),), self.c) + 0 * self.w


def test_matching_aware_d_counts_mismatched_text_as_fake(data):
    m = ganforge.create("gan-int-cls", data="digits-captions", **TINY_TEXT)
    batch = _batch(m, data)
    torch.manual_seed(0)
    e = m.batch_embedding(batch)
    torch.manual_seed(0)  # the same caption draw inside d_step
    m.D = SpyD(batch["x"], e)
    loss = m.d_step(batch)["loss"]
    sp = F.softplus
    # Reed et al.: log D(x, h) + (log(1 - D(x, h^)) + log(1 - D(G(z, h), h))) / 2
    want = sp(torch.tensor(-2.0)) + (sp(torch.tensor(0.5)) + sp(torch.tensor(-1.0))) / 2
    assert torch.allclose(loss, want)
    wrong = [t for t in m.D.texts if not torch.equal(t, e)]
    assert len(wrong) == 1 and not (wrong[0] == e).all(1).any()  # no image keeps its own text
    m.cfg["cls"] = False
    torch.manual_seed(0)
    m.D.texts.clear()
    loss = m.d_step(batch)["loss"]
    assert torch.allclose(loss, sp(torch.tensor(-2.0)) + sp(torch.tensor(-1.0)))
    assert all(torch.equal(t, e) for t in m.D.texts)


def test_int_trains_g_on_interpolated_text(data):
    m = ganforge.create("gan-int-cls", data="digits-captions", **TINY_TEXT)
    batch = _batch(m, data)
    torch.manual_seed(1)
    e = m.batch_embedding(batch)
    torch.manual_seed(1)
    m.D = SpyD(batch["x"], e)
    out = m.g_step(batch)
    assert "L_int" in out and len(m.D.texts) == 2
    assert torch.allclose(m.D.texts[1], 0.5 * e + 0.5 * e.roll(1, 0))
    m.cfg["int"] = False
    m.D.texts.clear()
    assert "L_int" not in m.g_step(batch) and len(m.D.texts) == 1


def test_conditioning_augmentation_reparameterises_and_kl():
    torch.manual_seed(0)
    ca = ConditioningAugmentation(5, 3)
    e, eps = torch.randn(4, 5), torch.randn(4, 3)
    c, mu, logvar = ca(e, eps)
    assert torch.allclose(c, mu + torch.exp(0.5 * logvar) * eps)
    # gradients reach mu and sigma through the sample (the reparameterisation trick)
    c.sum().backward()
    assert ca.fc.weight.grad.abs().sum() > 0
    want = torch.distributions.kl_divergence(torch.distributions.Normal(mu, torch.exp(0.5 * logvar)),
                                             torch.distributions.Normal(0.0, 1.0)).sum(1).mean()
    assert torch.allclose(ConditioningAugmentation.kl(mu, logvar), want)
    assert ConditioningAugmentation.kl(torch.zeros(2, 3), torch.zeros(2, 3)) == 0
    off = ConditioningAugmentation(5, 3, sample=False)
    c1, mu1, _ = off(e, eps)
    assert torch.equal(c1, mu1) and torch.equal(off(e, -eps)[0], c1)


def test_stackgan_g_loss_holds_the_kl_term(data):
    m = ganforge.create("stackgan", data="digits-captions", **TINY_STACK)
    batch = _batch(m, data)
    torch.manual_seed(3)
    out = m.g1_step(batch)
    m.cfg["kl"] = 0.0
    torch.manual_seed(3)
    out0 = m.g1_step(batch)
    assert out["KL"] > 0 and torch.allclose(out["loss"] - out0["loss"], out["KL"])
    m.cfg["ca"] = False
    m.cfg["kl"] = 1.0
    assert "KL" not in m.g1_step(batch)


def test_stage2_receives_stage1_output_and_c(data):
    m = ganforge.create("stackgan", data="digits-captions", **TINY_STACK).eval()
    inputs = m.sample_inputs(4, torch.Generator().manual_seed(0), text=["a thick red one on blue"])
    seen = {}
    m.G1.register_forward_hook(lambda mod, args, out: seen.__setitem__("low", out[0]))
    m.G2.register_forward_pre_hook(lambda mod, args: seen.__setitem__("g2_in", args[0]))
    m.G2.ca.register_forward_hook(lambda mod, args, out: seen.__setitem__("c", out[0]))
    m.G2.joint.register_forward_pre_hook(lambda mod, args: seen.__setitem__("joint_in", args[0]))
    with torch.no_grad():
        x = m.generate(inputs)
    assert x.shape == (4, 3, 32, 32) and seen["low"].shape == (4, 3, 16, 16)
    assert torch.equal(seen["g2_in"], seen["low"])
    c = seen["c"]
    assert torch.equal(seen["joint_in"][:, -c.shape[1]:], c[:, :, None, None].expand(-1, -1, 16, 16))
    low, high = m.stages(inputs, use_ema=False)
    assert torch.allclose(low, seen["low"]) and torch.allclose(high, x)


def test_stage1_frozen_during_stage2_and_cli(tmp_path, data, capsys):
    out = tmp_path / "run"
    ganforge.train("stackgan", out=out, steps=3, data="digits-captions[:64]", batch_size=8, progress=False,
                   sets={**TINY_STACK, "stage1_steps": 3, **QUIET, "ckpt_every": 0})
    before = load_run(out).state_dict()
    ganforge.train(resume=out, steps=6, progress=False)
    after = load_run(out).state_dict()
    for k in before:
        if k.startswith(("G1.", "D1.", "T.")):
            assert torch.equal(before[k], after[k]), k  # weights and batch-norm statistics alike
    changed = [k for k in before if k.startswith(("G2.", "D2.")) and not torch.equal(before[k], after[k])]
    assert any(k.startswith("G2.") for k in changed) and any(k.startswith("D2.") for k in changed)
    log = [json.loads(ln) for ln in (out / "metrics.jsonl").read_text().splitlines() if ln.strip()]
    assert any("D1_loss" in r for r in log) and any("G2_loss" in r for r in log)

    assert main(["sample", str(out), "--text", "a thick blue three on yellow", "--n", "4",
                 "--out", str(tmp_path / "s.png")]) == 0
    assert (tmp_path / "s.png").is_file()
    assert main(["sample", str(out), "--text", "a purple three", "--n", "4"]) == 2
    assert "unknown word 'purple'" in capsys.readouterr().err
    assert main(["sample", str(out), "--text", "  ", "--n", "4"]) == 2
    assert "needs a caption" in capsys.readouterr().err
    assert main(["eval", str(out), "--n", "40"]) == 0
    rec = json.loads((out / "eval.jsonl").read_text().splitlines()[-1])
    for k in ("text_class", "text_fg", "text_bg", "text_thick_rho", "fd", "fd_stage1_up", "diversity"):
        assert k in rec
    assert 0 <= rec["text_fg"] <= 1
    # the ceiling: held-out images against captions of their own attributes agree almost always
    assert main(["eval", str(out), "--baseline", "real", "--n", "40"]) == 0
    real = json.loads((out / "eval.jsonl").read_text().splitlines()[-1])
    assert real["baseline"] == "real" and min(real["text_class"], real["text_fg"], real["text_bg"]) >= 0.9


def test_text_models_refuse_data_without_captions(tmp_path):
    from ganforge.errors import GanforgeError

    with pytest.raises(GanforgeError, match="captioned images|no text encoder"):
        ganforge.train("gan-int-cls", data="digits", steps=1, progress=False, sets=TINY_TEXT,
                       out=tmp_path / "run")


def test_caption_folder_with_published_embeddings_or_own_encoder(tmp_path):
    from test_captions import _write_layout

    from ganforge.errors import ConfigError

    root = tmp_path / "cub"
    root.mkdir()
    _write_layout(root)
    data = f"captions:{root}"
    small = {**TINY_TEXT, "image_size": 16, **QUIET}
    out = ganforge.train("gan-int-cls", data=data, out=tmp_path / "emb", steps=2, batch_size=2, progress=False,
                         sets={**small, "pretrained_embeddings": True, "emb_dim": 4})["out"]
    m = load_run(out)
    assert m.sample(3).shape == (3, 3, 16, 16) and m.D.proj[0].in_features == 4
    with pytest.raises(ConfigError, match="pre-computed embeddings"):
        m.sample(2, text="a red bird")
    with pytest.raises(ConfigError, match="train-text-encoder"):
        ganforge.train("gan-int-cls", data=data, out=tmp_path / "none", steps=1, batch_size=2, progress=False,
                       sets=small)
    enc = tmp_path / "enc.pt"
    assert main(["train-text-encoder", "--data", data, "--steps", "3", "--out", str(enc), "--quiet"]) == 0
    out = ganforge.train("gan-int-cls", data=data, out=tmp_path / "own", steps=2, batch_size=2, progress=False,
                         sets={**small, "text_encoder": str(enc)})["out"]
    assert load_run(out).sample(2, text="a small red bird").shape == (2, 3, 16, 16)
