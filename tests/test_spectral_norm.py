"""Spectral normalisation (Miyato et al. 2018) for every D built from the shared blocks:
``--set spectral_norm=true``: top singular values at 1, which networks get it, refusals, and
training, checkpoints, resume and EMA with the parametrization in place."""
import pytest
import torch
from torch import nn

import ganforge
from ganforge.errors import ConfigError
from ganforge.nn import DCGANDiscriminator
from ganforge.nn.points import MLPCritic
from ganforge.nn.spectral import SN_LAYERS, apply_spectral_norm, is_spectral, top_singular_value
from ganforge.training.checkpoint import load_checkpoint

from conftest import QUIET, TINY_DCGAN


def _layers(net):
    return [m for m in net.modules() if isinstance(m, SN_LAYERS)]


@pytest.mark.parametrize("make", [lambda: DCGANDiscriminator(1, 28, 8), lambda: MLPCritic(2, 32, 3),
                                  lambda: nn.Sequential(nn.ConvTranspose2d(4, 6, 4, 2, 1), nn.Linear(5, 7))])
def test_every_layer_has_top_singular_value_one_after_power_iterations(make):
    torch.manual_seed(0)
    net = make()
    with torch.no_grad():
        for m in _layers(net):
            m.weight.normal_(0.0, 1.0)  # far from 1 before normalisation, so the test can fail
    assert all(top_singular_value(m) > 1.5 for m in _layers(net))
    apply_spectral_norm(net)
    layers = _layers(net)
    assert layers and all(is_spectral(m) for m in layers)
    for m in layers:  # a few training-mode forward passes: one power iteration each
        for _ in range(5):
            m.weight
    assert [round(top_singular_value(m), 2) for m in layers] == [1.0] * len(layers)


def test_the_weight_after_an_update_is_renormalised():
    torch.manual_seed(0)
    lin = apply_spectral_norm(nn.Linear(6, 4))
    with torch.no_grad():
        lin.parametrizations.weight.original.mul_(3.0).add_(torch.randn(4, 6))
    for _ in range(10):
        lin.weight
    assert abs(top_singular_value(lin) - 1.0) < 1e-3


@pytest.mark.parametrize("model", ["dcgan", "wgan-gp", "acgan", "lsgan"])
def test_setting_normalises_every_layer_of_d_and_none_of_g(model):
    m = ganforge.create(model, data="digits", spectral_norm=True, **TINY_DCGAN)
    assert all(is_spectral(l) for l in _layers(m.D))
    assert not any(is_spectral(l) for l in _layers(m.G))
    assert not any(is_spectral(l) for l in _layers(ganforge.create(model, data="digits", **TINY_DCGAN).D))


def test_both_cyclegan_discriminators_and_the_points_critic():
    m = ganforge.create("cyclegan", data="digits-edges-unpaired", spectral_norm=True, g_width=8, d_width=8)
    assert all(is_spectral(l) for name in ("D_A", "D_B") for l in _layers(getattr(m, name)))
    m = ganforge.create("wgan-gp", data="ring8", spectral_norm=True)
    assert isinstance(m.D, MLPCritic) and all(is_spectral(l) for l in _layers(m.D))


def test_minibatch_discrimination_head_is_normalised_too():
    m = ganforge.create("dcgan", data="digits", spectral_norm=True, minibatch_discrimination=True, **TINY_DCGAN)
    assert is_spectral(m.D.head[1])


@pytest.mark.parametrize("model", ["ebgan", "gan", "infogan"])
def test_a_d_not_built_from_the_shared_blocks_is_refused_in_one_line(model):
    with pytest.raises(ConfigError, match="spectral_norm") as e:
        ganforge.create(model, data="digits", spectral_norm=True)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("model,extra", [("dcgan", {"ema": 0.9}), ("wgan-gp", {}), ("wgan-gp", {"data": "ring8"})])
def test_trains_and_resumes_bit_exactly(tmp_path, model, extra):
    sets = {**QUIET, **TINY_DCGAN, "spectral_norm": True, **{k: v for k, v in extra.items() if k != "data"}}
    kw = dict(data=extra.get("data", "digits"), batch_size=64, progress=False, sets=sets)
    ganforge.train(model, out=tmp_path / "one", steps=6, **kw)
    ganforge.train(model, out=tmp_path / "two", steps=3, **kw)
    ganforge.train(resume=tmp_path / "two", steps=6, progress=False)
    a, b = (load_checkpoint(tmp_path / r / "checkpoints" / "last.pt") for r in ("one", "two"))
    assert a["step"] == b["step"] == 6
    keys = [k for k in a["model"] if "parametrizations" in k]
    assert any(k.endswith("_u") for k in keys), "the power iteration's u travels in the checkpoint"
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    m = ganforge.load_run(tmp_path / "two")
    assert all(is_spectral(l) for l in _layers(m.D))
    assert torch.isfinite(m.sample(4)).all()
