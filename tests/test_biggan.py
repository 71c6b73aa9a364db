"""BigGAN (Brock et al. 2019): the truncation trick, orthogonal regularisation's gradient, the
projection discriminator, conditional batch norm from the shared embedding, the hierarchical latent,
spectral norm in both networks, two D steps per G step, and training, EMA and resume through the engine."""
import math
import subprocess
import sys

import pytest
import torch
from torch import nn

import ganforge
from ganforge import config as C
from ganforge import losses
from ganforge.errors import ConfigError
from ganforge.nn.biggan import truncated_normal
from ganforge.nn.spectral import SN_LAYERS, is_spectral, top_singular_value
from ganforge.registry import get_model_class
from ganforge.training.checkpoint import load_checkpoint
from ganforge.training.engine import Trainer

from conftest import QUIET

TINY = {"g_width": 8, "d_width": 8, "z_dim": 24, "shared_dim": 8}


def tiny(**over):
    return ganforge.create("biggan", data="digits", **{**TINY, **over})


# ---------------------------------------------------------------------------- truncation
def _truncated_cdf(x, t):
    phi = lambda v: 0.5 * (1 + math.erf(v / math.sqrt(2)))
    return (phi(x) - phi(-t)) / (phi(t) - phi(-t))


@pytest.mark.parametrize("t", [0.5, 1.0, 2.0])
def test_truncation_resamples_every_value_outside_the_threshold_and_keeps_the_rest(t):
    m = tiny()
    plain = m.sample_inputs(2000, torch.Generator().manual_seed(1))["z"]
    z = m.sample_inputs(2000, torch.Generator().manual_seed(1), truncation=t)["z"]
    assert z.abs().max() <= t
    inside = plain.abs() <= t
    assert 0 < inside.float().mean() < 1
    assert torch.equal(z[inside], plain[inside]), "values already inside are kept"
    # the result is N(0, 1) conditioned on |z| <= t: Kolmogorov-Smirnov against its CDF
    v = z.flatten().sort().values.double()
    cdf = torch.tensor([_truncated_cdf(float(x), t) for x in v[::40]], dtype=torch.double)
    emp = torch.arange(0, len(v), 40, dtype=torch.double) / len(v)
    assert (cdf - emp).abs().max() < 0.02
    assert z.std() < plain.std()


def test_truncation_threshold_is_checked_in_one_line():
    for bad in (0, -1.0, "x"):
        with pytest.raises(ConfigError, match="truncation"):
            truncated_normal(torch.randn(3, 2), bad, torch.randn)


def test_truncated_samples_are_less_varied():
    m = tiny()
    wide, narrow = m.sample(200, seed=0, label=3), m.sample(200, seed=0, label=3, truncation=0.1)
    assert narrow.std(0).mean() < wide.std(0).mean()


# ---------------------------------------------------------------------------- orthogonal regularisation
def test_orthogonal_penalty_gradient_matches_the_formula():
    torch.manual_seed(0)
    w = torch.randn(4, 6, requires_grad=True)
    k = torch.randn(3, 2, 2, 2, requires_grad=True)  # a conv kernel: rows are its flattened filters
    losses.orthogonal_penalty([w, k]).backward()
    for p in (w, k):
        m = p.detach().flatten(1)
        gram = m @ m.t()
        expected = 4 * (gram * (1 - torch.eye(len(m)))) @ m
        assert torch.allclose(p.grad.flatten(1), expected, atol=1e-5)


def test_orthogonal_penalty_ignores_filter_norms():
    q = torch.linalg.qr(torch.randn(6, 6))[0][:4] * torch.tensor([[1.0], [2.0], [3.0], [0.5]])
    assert losses.orthogonal_penalty([q]) < 1e-8  # orthogonal rows of any length: no penalty
    assert losses.orthogonal_penalty([q + 0.1]) > 1e-3


def test_g_step_adds_beta_times_the_penalty_on_gs_weights_but_the_shared_embedding():
    m = tiny()
    shared = m.G.shared.weight
    weights = m.ortho_weights()
    assert all(p is not shared for p in weights) and all(p.ndim >= 2 for p in weights)
    conv = m.G.blocks[0].conv1.parametrizations.weight.original  # the raw weight that SN normalises
    assert any(p is conv for p in weights)
    torch.manual_seed(0)
    out = m.g_step({"n": 8})
    assert torch.allclose(out["ortho"], 1e-4 * losses.orthogonal_penalty(weights).detach())


# ---------------------------------------------------------------------------- networks
def test_projection_discriminator_class_term():
    m = tiny().eval()
    x = torch.rand(5, *m.spec.shape) * 2 - 1
    y, y2 = torch.tensor([0, 1, 2, 3, 4]), torch.tensor([9, 8, 7, 6, 5])
    with torch.no_grad():
        h = m.D.features(x)
        d, d2 = m.D(x, y), m.D(x, y2)
        e = m.D.embed.weight
        assert torch.allclose(d - d2, ((e[y] - e[y2]) * h).sum(1), atol=1e-5)
        assert torch.allclose(d - (e[y] * h).sum(1), m.D.linear(h).squeeze(1), atol=1e-5)


def test_conditional_bn_gain_and_bias_come_from_the_shared_embedding_and_z_chunk():
    m = tiny().eval()
    bn = m.G.blocks[0].bn1
    x = torch.randn(4, bn.bn.num_features, 3, 3)
    z = torch.randn(1, 8).repeat(4, 1)
    y = torch.tensor([0, 1, 2, 2])
    with torch.no_grad():
        cond = torch.cat([m.G.shared(y), z], 1)
        out = bn(x, cond)
        gain = 1 + cond @ bn.gain.weight.t()
        bias = cond @ bn.bias.weight.t()
        expected = bn.bn(x) * gain[:, :, None, None] + bias[:, :, None, None]
        assert torch.allclose(out, expected, atol=1e-5)
        # the same z, one class each: a per-class gain; the same class twice: the same gain
        assert not torch.allclose(gain[0], gain[1]) and torch.allclose(gain[2], gain[3])
        # shared: every block's cBN reads the one embedding table
        with torch.no_grad():
            m.G.shared.weight[1] += 1.0
        assert not torch.allclose(bn(x, torch.cat([m.G.shared(y), z], 1))[1], out[1])


def test_hierarchical_latent_each_chunk_reaches_its_block():
    m = tiny().eval()
    seen = {}
    for i, block in enumerate(m.G.blocks):
        block.register_forward_hook(lambda mod, args, out, i=i: seen.__setitem__(i, args[1]))
    m.G.linear.register_forward_hook(lambda mod, args, out: seen.__setitem__("linear", args[0]))
    z, y = torch.randn(3, 24), torch.tensor([1, 2, 3])
    with torch.no_grad():
        m.G(z, y)
    chunks = z.split(8, 1)
    assert len(m.G.blocks) + 1 == len(chunks) == 3  # 28x28: two up-blocks, three chunks
    assert torch.equal(seen["linear"], chunks[0])
    for i in range(len(m.G.blocks)):
        assert torch.equal(seen[i][:, -8:], chunks[i + 1])
        assert torch.equal(seen[i][:, :8], m.G.shared(y))
    with pytest.raises(ConfigError, match="multiple of 3"):
        tiny(z_dim=25)


def test_spectral_norm_in_both_networks_but_not_gs_shared_embedding():
    m = tiny()
    for net in (m.G, m.D):
        layers = [l for l in net.modules() if isinstance(l, SN_LAYERS)]
        assert layers and all(is_spectral(l) for l in layers)
    assert is_spectral(m.D.embed) and not is_spectral(m.G.shared)
    for _ in range(3):
        m.D.blocks[0].conv1.weight
    assert abs(top_singular_value(m.D.blocks[0].conv1) - 1) < 0.01
    assert not any(is_spectral(l) for l in tiny(spectral_norm=False).D.modules())


def test_self_attention_in_both_networks_starts_as_identity():
    m = tiny()
    assert m.G.attn is not None and m.D.attn is not None
    x = torch.randn(2, m.D.attn.o.out_channels, 14, 14)
    assert torch.equal(m.D.attn(x), x)  # gamma = 0
    with torch.no_grad():
        m.D.attn.gamma.fill_(1.0)
    assert not torch.allclose(m.D.attn(x), x)
    assert torch.allclose(m.D.attn.attention(x).sum(-1), torch.ones(2, 196))
    with pytest.raises(ConfigError, match="attn_res"):
        tiny(attn_res=5)
    with pytest.raises(ConfigError, match="attn_res"):
        tiny(attn_res="x")
    assert tiny(attn_res=0).G.attn is None


# ---------------------------------------------------------------------------- training
def test_two_d_steps_per_g_step(tmp_path):
    cls = get_model_class("biggan")
    cfg = C.resolve(cls.defaults, {"model": "biggan", "batch_size": 8, "steps": 2, **QUIET, **TINY})
    assert cfg["n_critic"] == 2 and cfg["loss"] == "hinge"
    t = Trainer(cfg, tmp_path, progress=False)
    calls = []
    for ph in t.phases:
        ph.step = (lambda s, name: (lambda b: (calls.append(name), s(b))[1]))(ph.step, ph.name)
    for _ in range(2):
        t.train_step({})
    assert calls == ["D", "D", "G"] * 2


def test_trains_with_ema_resumes_bit_exactly_and_samples_with_truncation_from_the_cli(tmp_path):
    kw = dict(data="digits", batch_size=16, progress=False, sets={**QUIET, **TINY, "ema": 0.9})
    ganforge.train("biggan", out=tmp_path / "one", steps=4, **kw)
    ganforge.train("biggan", out=tmp_path / "two", steps=2, **kw)
    ganforge.train(resume=tmp_path / "two", steps=4, progress=False)
    a, b = (load_checkpoint(tmp_path / r / "checkpoints" / "last.pt") for r in ("one", "two"))
    assert any(k.startswith("G_ema.") and k.endswith("_u") for k in a["model"])
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    m = ganforge.load_run(tmp_path / "two")
    assert m.generator_name() == "G_ema"
    # the EMA copy averages the raw weights that spectral norm normalises
    raw = m.G.blocks[0].conv1.parametrizations.weight.original
    raw_ema = m.G_ema.blocks[0].conv1.parametrizations.weight.original
    assert not torch.equal(raw, raw_ema)
    # `ganforge eval` reports the conditional accuracy of a class-conditional G on digit data
    r = ganforge.evaluate_run(tmp_path / "two", metrics="classes", n=100, progress=False, write=False)
    assert 0.0 <= r["cond_accuracy"] <= 1.0
    out = tmp_path / "s.png"
    r = subprocess.run([sys.executable, "-m", "ganforge", "sample", str(tmp_path / "two"), "--truncation", "0.5",
                        "--label", "4", "--n", "8", "--out", str(out)], capture_output=True, text=True)
    assert r.returncode == 0 and out.exists(), r.stderr
    r = subprocess.run([sys.executable, "-m", "ganforge", "sample", str(tmp_path / "two"), "--truncation", "-1"],
                       capture_output=True, text=True)
    assert r.returncode != 0 and "truncation" in r.stderr and "Traceback" not in r.stderr
