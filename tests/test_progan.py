"""ProGAN (Karras et al. 2018) and the shared blocks of nn.progressive: the fade-in blend, the
equalized learning rate, the minibatch-stddev map, pixel norm, the growth schedule in images,
WGAN-GP with the drift term, and exact resume across a stage boundary and mid-fade."""
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import ganforge
from ganforge.errors import ConfigError
from ganforge.models.progan import GrowthSchedule
from ganforge.nn.progressive import (EqualizedConv2d, EqualizedLinear, MinibatchStdDev, at_stage, downscale, fade,
                                     pixel_norm, upscale)
from ganforge.training import load_run
from ganforge.training.checkpoint import load_checkpoint

from conftest import QUIET, assert_same_checkpoint

TINY = {"fmap_base": 64, "fmap_max": 16, "z_dim": 8}


def tiny(**over):
    return ganforge.create("progan", data="digits", image_size=16, **{**TINY, **over})


def test_fade_blend_at_alpha_0_half_and_1():
    torch.manual_seed(0)
    m = tiny()
    z = torch.randn(5, 8)

    def g_at(level, alpha):
        m.set_stage(level, alpha)
        return m.G(z)

    low, high = g_at(0, 1.0), g_at(1, 1.0)  # 4x4 stable, 8x8 stable, both upscaled to 16x16
    assert not torch.allclose(low, high)
    assert torch.equal(g_at(1, 0.0), low)  # the new block contributes nothing yet
    assert torch.allclose(g_at(1, 0.5), (low + high) / 2, atol=1e-6)
    assert torch.equal(fade(low, high, 1.0), high) and torch.equal(fade(low, high, 0.0), low)
    # D fades symmetrically: at alpha 0 the new block is bypassed, the old fromRGB reads the downscaled image
    x = torch.randn(4, 1, 16, 16)
    m.set_stage(0, 1.0)
    d_low = m.D(x)
    m.set_stage(1, 0.0)
    assert torch.allclose(m.D(x), d_low, atol=1e-5)
    m.set_stage(1, 0.5)
    assert not torch.allclose(m.D(x), d_low, atol=1e-3)
    # real images are shown to D blended the same way
    lo, hi = upscale(downscale(x, 4), 4), upscale(downscale(x, 2), 2)
    assert torch.allclose(at_stage(x, 2, 1, 0.5), (lo + hi) / 2, atol=1e-6)
    assert torch.allclose(at_stage(x, 2, 1, 0.0), lo, atol=1e-6) and torch.equal(at_stage(x, 2, 2, 1.0), x)


def test_equalized_lr_scales_at_run_time_and_equalizes_adam_steps():
    torch.manual_seed(0)
    x = torch.randn(2, 4, 5, 5)
    conv = EqualizedConv2d(4, 3, 3)
    expect = F.conv2d(x, conv.weight * math.sqrt(2) / math.sqrt(4 * 9), conv.bias, padding=1)
    assert torch.allclose(conv(x), expect, atol=1e-6)

    def relative_step(layer, weight):
        """One Adam step on a random objective: the change of the weight the layer uses, relative to its size."""
        before = weight().detach().clone()
        opt = torch.optim.Adam(layer.parameters(), lr=0.01)
        layer(torch.randn(16, layer.weight.shape[1])).mul(torch.randn(16, layer.weight.shape[0])).sum().backward()
        opt.step()
        return ((weight().detach() - before).abs().mean() / before.std()).item()

    small, large = EqualizedLinear(16, 32), EqualizedLinear(1024, 32)
    # stored weights are N(0, 1) whatever the fan-in; the He constant is applied in forward
    assert abs(small.weight.std().item() - 1) < 0.2 and abs(large.weight.std().item() - 1) < 0.1
    rel = [relative_step(l, lambda l=l: l.weight * l.scale) for l in (small, large)]
    assert rel[0] == pytest.approx(rel[1], rel=0.15)
    # a plain layer with He's init moves its small-fan-in weights 8x less, relatively, than its large ones
    plain = []
    for fan_in in (16, 1024):
        lin = nn.Linear(fan_in, 32)
        nn.init.kaiming_normal_(lin.weight)
        plain.append(relative_step(lin, lambda lin=lin: lin.weight))
    assert plain[1] / plain[0] > 4


def test_minibatch_stddev_feature():
    torch.manual_seed(0)
    x = torch.randn(8, 3, 2, 2)
    out = MinibatchStdDev(4)(x)
    assert out.shape == (8, 4, 2, 2) and torch.equal(out[:, :3], x)
    for m in range(2):  # sample i is in group i mod 2 (batch 8, groups of 4)
        members = x[m::2]
        expect = (members.var(0, unbiased=False) + 1e-8).sqrt().mean()
        for i in range(m, 8, 2):
            assert torch.allclose(out[i, 3], expect.expand(2, 2), atol=1e-6)
    same = MinibatchStdDev(4)(x[:1].expand(8, -1, -1, -1))  # a collapsed batch has (almost) no spread
    assert same[:, 3].max() < 1e-3 < out[:, 3].min()
    assert MinibatchStdDev(4)(torch.randn(6, 3, 2, 2)).shape == (6, 4, 2, 2)  # groups shrink to tile the batch


def test_pixel_norm_gives_unit_mean_square_per_pixel():
    x = torch.randn(3, 16, 4, 4) * 7
    assert torch.allclose(pixel_norm(x).pow(2).mean(1), torch.ones(3, 4, 4), atol=1e-4)


def test_growth_schedule_counts_images_at_each_resolutions_batch_size():
    s = GrowthSchedule(2, fade_images=100, stage_images=100, batch_of={0: 10, 1: 20, 2: 50}.get)
    # 4x4: 10 steps; 8x8: fade 5, stable 5; 16x16: fade 2, then stable for ever
    assert s.at(0) == (0, 1.0, True, 10) and s.at(9) == (0, 1.0, False, 10)
    assert s.at(10) == (1, 0.0, True, 20) and s.at(12) == (1, 0.4, False, 20)
    assert s.at(15) == (1, 1.0, True, 20) and s.at(20) == (2, 0.0, True, 50) and s.at(21) == (2, 0.5, False, 50)
    assert s.at(22) == (2, 1.0, True, 50) and s.at(10 ** 6) == (2, 1.0, False, 50)


def test_on_step_grows_resets_adam_and_sets_batch_size():
    m = tiny(fade_images=40, stage_images=40, batch_sizes={4: 20, 8: 10, 16: 10})
    changes = {s: m.on_step(s) for s in range(14)}
    assert [s for s, c in changes.items() if c] == [0, 2, 6, 10]
    assert changes[2].batch_size == 10 and changes[2].optimizers and not changes[2].nets
    m.on_step(8)
    assert (m.G.level, m.G.alpha, m.D.level, m.D.alpha) == (1, 1.0, 1, 1.0)
    m.on_step(4)
    assert (m.G.level, m.G.alpha, m.D.level, m.D.alpha) == (1, 0.5, 1, 0.5)
    assert tiny(progressive=False).on_step(0) is None


def test_wgan_gp_with_drift_term():
    torch.manual_seed(0)
    m = tiny()
    assert (m.cfg["loss"], m.cfg["lambda_gp"], m.cfg["drift"]) == ("wasserstein", 10.0, 0.001)
    x = torch.randn(8, 1, 16, 16)
    torch.manual_seed(1)
    out = m.d_step({"x": x})
    d_real = m.D(x)
    assert out["drift"].item() == pytest.approx(0.001 * d_real.pow(2).mean().item(), rel=1e-4)
    assert out["GP"].item() > 0
    wass = out["D(G(z))"] - out["D(x)"]
    assert out["loss"].item() == pytest.approx((wass + out["GP"] + out["drift"]).item(), rel=1e-5, abs=1e-6)


def test_image_size_must_be_a_power_of_two(tmp_path):
    with pytest.raises(ConfigError, match="power of two"):
        ganforge.create("progan", data="digits", **{**TINY, "image_size": 28})
    # unset, the data's 28x28 is resized to the next power of two, and the run records it
    assert ganforge.create("progan", data="digits", **TINY).spec.image_size == 32
    from ganforge.training.engine import Trainer

    cfg = ganforge.config.resolve(ganforge.models.progan.ProGAN.defaults, {"model": "progan", "data": "digits"}, TINY)
    t = Trainer(cfg, tmp_path / "run", progress=False)
    assert t.spec.image_size == 32 and t.raw.x.shape[-1] == 32 and cfg["image_size"] == 32
    with pytest.raises(ConfigError, match="batch_sizes"):
        tiny(batch_sizes={5: 16})


# 4x4: steps 0-2 (batch 20); 8x8: fade 3-8, stable 9-14; 16x16: fade 15-20, then stable (batch 10)
GROW = {**QUIET, **TINY, "fade_images": 60, "stage_images": 60, "batch_sizes": {4: 20, 8: 10, 16: 10}, "ema": 0.9}


@pytest.mark.parametrize("model", ["progan", "stylegan"])
def test_resume_mid_fade_and_across_stage_boundaries_is_bit_exact(tmp_path, model):
    sets = {**GROW, **({"w_dim": 8, "mapping_layers": 2} if model == "stylegan" else {})}
    kw = dict(data="digits", image_size=16, progress=False, sets=sets)
    ganforge.train(model, out=tmp_path / "one", steps=17, **kw)
    ganforge.train(model, out=tmp_path / "two", steps=5, **kw)  # stopped mid-fade into 8x8
    ganforge.train(resume=tmp_path / "two", steps=9, progress=False)  # on the fade -> stable boundary
    ganforge.train(resume=tmp_path / "two", steps=17, progress=False)  # through 16x16's fade start, mid-fade
    one, two = (load_checkpoint(tmp_path / r / "checkpoints" / "last.pt") for r in ("one", "two"))
    assert one["grown"] == [0, 3, 9, 15]
    assert_same_checkpoint(one, two, "grown")
    # a run stopped mid-fade samples at its stage
    run = load_run(tmp_path / "two")
    g, g_ema = (run.G.synthesis, run.G_ema.synthesis) if model == "stylegan" else (run.G, run.G_ema)
    assert (g.level, run.D.level) == (2, 2) and g.alpha == pytest.approx(1 / 6)
    assert (g_ema.level, g_ema.alpha) == (g.level, g.alpha)
