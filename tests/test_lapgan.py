"""LAPGAN (Denton et al. 2015): the Laplacian pyramid reconstructs an image exactly, each finer
level's G draws a residual conditioned on the upsampled coarser image, the levels train
independently (an update of one level leaves the others as they were), and sampling chains them."""
import json

import pytest
import torch
import torch.nn.functional as F

import ganforge
from ganforge.data import load_data
from ganforge.errors import ConfigError
from ganforge.nn.pyramid import downsample, laplacian_pyramid, reconstruct, upsample

from conftest import QUIET

TINY = {"g_width": 8, "d_width": 8, "coarse_hidden": 16, "z_dim": 8}


def tiny(**over):
    return ganforge.create("lapgan", data="digits", **{**TINY, **over})


@pytest.fixture(scope="module")
def batch():
    return {"x": load_data("digits").x[:16].float().div(127.5).sub(1)}


def test_pyramid_reconstructs_the_image_exactly():
    torch.manual_seed(0)
    x = torch.rand(4, 1, 28, 28) * 2 - 1
    residuals, coarsest = laplacian_pyramid(x, 2)
    assert [h.shape[-1] for h in residuals] == [28, 14] and coarsest.shape[-1] == 7
    assert torch.allclose(coarsest, F.avg_pool2d(F.avg_pool2d(x, 2), 2))
    assert torch.allclose(residuals[0], x - upsample(downsample(x)))
    assert torch.allclose(reconstruct(residuals, coarsest), x, atol=1e-6)
    # The residuals are band-pass: halving one again leaves (almost) nothing of it.
    assert downsample(residuals[0]).abs().max() < 0.5 * residuals[0].abs().max()
    # And a wrong residual does not reconstruct.
    assert not torch.allclose(reconstruct([residuals[0] * 0, residuals[1]], coarsest), x, atol=1e-3)


def test_levels_are_checked():
    with pytest.raises(ConfigError, match="divisible"):
        tiny(levels=3)  # 28 -> 14 -> 7 -> 3.5
    with pytest.raises(ConfigError, match="at least 1"):
        tiny(levels=0)


def test_the_coarsest_generator_has_batch_norm_unless_set_to_the_papers_plain_mlp():
    # Without it the 7x7 MLP GAN collapsed to one image on MNIST (docs/conditioned.md).
    norms = lambda m: [l for l in m.G.levels[m.K].modules() if isinstance(l, torch.nn.BatchNorm1d)]  # noqa: E731
    assert len(norms(tiny())) == 2
    assert norms(tiny(coarse_norm="none")) == []
    with pytest.raises(ConfigError, match="coarse_norm"):
        tiny(coarse_norm="layer")


def test_each_finer_level_is_conditioned_on_the_upsampled_coarser_real_image(batch):
    torch.manual_seed(0)
    m = tiny()
    x = batch["x"]
    for k in range(m.K):
        seen = {}
        h1 = m.G.levels[k].register_forward_hook(lambda mod, inp, out: seen.setdefault("G", inp[0].detach()))
        h2 = m.D[k].register_forward_hook(lambda mod, inp, out: seen.setdefault("D", inp[0].detach()))
        m.g_level(k, batch)
        h1.remove(), h2.remove()
        level = x
        for _ in range(k):
            level = downsample(level)
        want = upsample(downsample(level))  # u(I_{k+1}) of the *real* image: levels train independently
        assert torch.allclose(seen["G"], want) and torch.allclose(seen["D"], want)
        # G_k's output depends on its condition, and D_k's judgement of a residual too.
        z = torch.randn(4, 1, *want.shape[-2:])
        g = m.G.levels[k].eval()
        assert not torch.allclose(g(want[:4], z), g(want[4:8], z))
        h = torch.randn(4, 1, *want.shape[-2:])
        d = m.D[k].eval()
        assert not torch.allclose(d(want[:4], h), d(want[4:8], h))


def test_a_step_of_one_level_leaves_the_others_unchanged(batch):
    torch.manual_seed(0)
    m = tiny()
    opts = m.optimizers()
    phases = {ph.name: ph for ph in m.phases()}
    assert set(phases) == {f"{n}{k}" for n in "DG" for k in range(m.K + 1)}
    assert not phases[f"G{m.K}"].data and phases["G0"].data  # the coarsest G needs no real image
    for name in ("G1", "D0", f"G{m.K}"):
        before = {k: v.clone() for k, v in m.state_dict().items()}
        for o in opts.values():
            o.zero_grad(set_to_none=True)
        ph = phases[name]
        out = ph.step(batch if ph.data else {"n": 16})
        out["loss"].backward()
        opts[name].step()
        net, k = (m.G.levels if name[0] == "G" else m.D), int(name[1:])
        mine = {f"{'G.levels' if name[0] == 'G' else 'D'}.{k}.{p}" for p, _ in net[k].named_parameters()}
        for key, v in m.state_dict().items():
            if key in mine:
                continue
            if key.endswith(("running_mean", "running_var", "num_batches_tracked")):
                continue  # batch-norm statistics of the level that ran forward
            assert torch.equal(v, before[key]), f"{name}'s step changed {key}"
        assert any(not torch.equal(m.state_dict()[p], before[p]) for p in mine), f"{name}'s step changed nothing"
        # nor did it build gradients in any other level's G (no gradient between levels)
        others = [p for j, g in enumerate(m.G.levels) if not (name[0] == "G" and j == k) for p in g.parameters()]
        if name[0] == "G":
            assert all(p.grad is None for p in others)


def test_sampling_chains_the_levels():
    torch.manual_seed(0)
    m = tiny().eval()
    inputs = m.sample_inputs(5, torch.Generator().manual_seed(1))
    with torch.no_grad():
        levels = m.G(inputs, all_levels=True)
        assert [t.shape[-1] for t in levels] == [28, 14, 7]
        assert torch.equal(levels[2], m.G.levels[2](inputs["z"]))
        for k in (1, 0):
            up = upsample(levels[k + 1])
            assert torch.allclose(levels[k], (up + m.G.levels[k](up, inputs[f"z{k}"])).clamp(-1, 1))
        assert torch.equal(m.G(inputs), levels[0])
        other = dict(inputs, z=torch.randn_like(inputs["z"]))  # another coarsest image changes the final one
        assert not torch.allclose(m.G(other), levels[0])
    assert [t.shape[-1] for t in m.sample_levels(3)] == [28, 14, 7]


def test_trains_from_the_engine_and_grids_show_every_level(tmp_path):
    r = ganforge.train("lapgan", data="digits[:200]", steps=3, out=tmp_path, progress=False,
                       sets={**TINY, **QUIET, "batch_size": 8})
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert {"D0_loss", "G0_loss", "D2_loss", "G2_loss"} <= set(rows[-1])
    m = ganforge.load_run(r["out"])
    images, nrow = m.sample_grid(12)
    assert nrow == 3 and images.shape == (12, 1, 28, 28)
    assert m.sample(4, seed=0).shape == (4, 1, 28, 28) and torch.equal(m.sample(4, seed=0), m.sample(4, seed=0))
