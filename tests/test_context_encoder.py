"""Context Encoders (Pathak et al. 2016): the centre mask (a quarter of the area) with its overlap
border and the border's heavier weight, the channel-wise fully connected layer, the 0.999 / 0.001
weighting, filling only the hole, random-block masks, and the CLI (`sample --input --mask`,
`eval`'s mean-fill baseline)."""
import json

import pytest
import torch
from PIL import Image
from torch import nn

import ganforge
from ganforge import config as C
from ganforge import losses
from ganforge.cli import main
from ganforge.data import DataSpec
from ganforge.errors import ConfigError
from ganforge.nn.restoration import ChannelWiseFC, centre_region, random_blocks

TINY = {"width": 4, "d_width": 4}
QUIET = ["--set", "log_every=1", "--set", "sample_every=0", "--set", "ckpt_every=0"]


def build(size=32, channels=3, **sets):
    cls = ganforge.registry.get_model_class("context-encoder")
    cfg = C.resolve(cls.defaults, {"model": "context-encoder", "data": "digits", "device": "cpu"}, {**TINY, **sets})
    torch.manual_seed(0)
    return cls(cfg, DataSpec("image", channels, size))


def images(n=2, c=3, size=32, seed=0):
    return torch.rand(n, c, size, size, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def test_centre_mask_is_a_quarter_of_the_area_at_the_centre_less_the_overlap():
    for size, overlap in ((32, 1), (64, 2), (28, 0)):
        region, hole = centre_region(size, overlap)
        assert region.sum() == size * size // 4
        rows, cols = region.any(1).nonzero().flatten(), region.any(0).nonzero().flatten()
        assert (rows.min(), rows.max() + 1) == (size // 4, size // 4 + size // 2)  # centred, side size/2
        assert (cols.min(), cols.max() + 1) == (size // 4, size // 4 + size // 2)
        side = size // 2 - 2 * overlap
        assert hole.sum() == side * side and not (hole & ~region).any()
    model = build(32)
    assert model.overlap == 1  # size / 32
    x = images(2)
    inputs = model.degrade(x)
    hole = inputs["hole"].bool().expand_as(x)
    fill = model.fill.view(1, -1, 1, 1).expand_as(x)
    assert torch.equal(inputs["masked"][hole], fill[hole]) and torch.equal(inputs["masked"][~hole], x[~hole])
    with pytest.raises(ConfigError, match="overlap"):
        build(32, overlap=8)


def test_overlap_border_weighs_ten_times_the_hole_in_the_reconstruction_loss():
    model = build(32, lambda_adv=0.0)
    region, hole = model.masks(1)
    w = model.rec_weights(region, hole)
    assert set(w[hole.bool()].tolist()) == {1.0}
    assert set(w[(region - hole).bool()].tolist()) == {10.0}
    assert set(w[~region.bool()].tolist()) == {0.0}

    class Fixed(nn.Module):  # G's output as a parameter, to read the loss's gradient per pixel
        def __init__(self):
            super().__init__()
            self.out = nn.Parameter(torch.full((1, 3, 32, 32), 0.5))

        def forward(self, x):
            return self.out.expand(len(x), -1, -1, -1)

    model.G = Fixed()
    model.g_step({"x": torch.zeros(1, 3, 32, 32)})["loss"].backward()
    g = model.G.out.grad[0, 0]
    assert g[16, 16] > 0 and torch.allclose(g[8, 8], 10 * g[16, 16])  # (8, 8): a corner of the border
    assert g[0, 0] == 0 and g[7, 16] == 0  # outside the centre: no loss at all


def test_channel_wise_fc_connects_every_location_of_a_channel_and_nothing_across_channels():
    layer = ChannelWiseFC(3, 2)
    x = torch.randn(1, 3, 2, 2)
    jac = torch.autograd.functional.jacobian(layer, x)[0, :, :, :, 0]  # (3, 2, 2, 3, 2, 2)
    jac = jac.reshape(3, 4, 3, 4)
    for c in range(3):
        for d in range(3):
            block = jac[c, :, d, :]
            assert (block != 0).all() if c == d else (block == 0).all()
    assert torch.allclose(jac[1, :, 1, :], layer.weight[1])  # exactly that channel's own matrix
    assert layer.weight.numel() == 3 * 4 * 4  # C k^4, not (C k^2)^2


def test_loss_weighs_reconstruction_0_999_and_adversarial_0_001():
    model = build(32)
    real = images(3)
    torch.manual_seed(1)  # G's dropout: the same draw for the step and for the check
    out = model.g_step({"x": real})
    torch.manual_seed(1)
    inputs, pred, filled = model._forward(real)
    region, hole = inputs["region"], inputs["hole"]
    rec = ((hole + 10 * (region - hole)) * (pred - real) ** 2).sum() / (region.sum() * 3)
    q = 8  # D judges the centre crop (16x16) of the filled image
    adv = losses.g_loss("nonsaturating", model.D(filled[:, :, q:q + 16, q:q + 16]))
    assert torch.allclose(out["loss"], 0.999 * rec + 0.001 * adv, atol=1e-6)
    assert torch.allclose(out["rec"], rec, atol=1e-6) and torch.allclose(out["G_adv"], adv, atol=1e-6)
    rec_only = build(32, lambda_adv=0.0)
    assert not hasattr(rec_only, "D") and [p.name for p in rec_only.phases()] == ["G"]
    assert set(rec_only.optimizers()) == {"G"}
    torch.manual_seed(1)
    out = rec_only.g_step({"x": real})
    assert "G_adv" not in out and torch.allclose(out["loss"], 0.999 * out["rec"])


def test_filling_touches_only_the_hole_centre_and_random_blocks():
    model = build(32)
    model.fill.copy_(torch.tensor([0.1, -0.2, 0.3]))
    x = (torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(0)) * 255).to(torch.uint8)
    real = x.float() / 127.5 - 1
    for mask in ("centre", "random"):
        y = model.inpaint(x, mask=mask, seed=3)
        hole = model.degrade(real, torch.Generator().manual_seed(3), mask=mask)["hole"].bool().expand_as(real)
        assert torch.equal(y[~hole], real[~hole])  # outside the hole: the input's own pixels
        assert not torch.allclose(y[hole], real[hole])
    centre = model.degrade(real, mask="centre")["hole"]
    rand = model.degrade(real, torch.Generator().manual_seed(3), mask="random")["hole"]
    assert not torch.equal(centre, rand)
    with pytest.raises(ConfigError, match="fills"):
        model.inpaint(x[:, :1])


def test_random_block_masks():
    a = random_blocks(50, 32, torch.Generator().manual_seed(0))
    b = random_blocks(50, 32, torch.Generator().manual_seed(0))
    c = random_blocks(50, 32, torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and not torch.equal(a, c)
    cover = a.float().mean((1, 2))
    assert (cover > 0).all() and (cover <= 5 * 0.25 + 1e-6).all()
    assert (cover >= 0.25).float().mean() > 0.5  # most reach the quarter before the block limit
    # Blocks land anywhere: the union of the masks reaches the corners, unlike the centre task.
    assert a.any(0)[:4, :4].any() and a.any(0)[-4:, -4:].any()
    model = build(32, mask="random")
    assert model.D is not None and model.judged(images(1), None).shape[-1] == 32  # D judges the whole image
    loss = model.g_step({"x": images(2)})["loss"]
    assert torch.isfinite(loss)


def test_cli_train_fill_files_and_eval(tmp_path, capsys):
    run = tmp_path / "ce"
    args = ["train", "context-encoder", "--data", "digits", "--steps", "3", "--batch-size", "8", "--device", "cpu",
            "--out", str(run), *QUIET] + [a for k, v in TINY.items() for a in ("--set", f"{k}={v}")]
    assert main(args) == 0
    src = tmp_path / "in"
    src.mkdir()
    for i in range(2):
        Image.new("L", (28, 28), 60 + 100 * i).save(src / f"{i}.png")
    for mask in ("centre", "random"):
        out = tmp_path / mask
        assert main(["sample", str(run), "--input", str(src), "--out", str(out), "--mask", mask]) == 0
        assert Image.open(out / "0.png").size == (28, 28)
    assert "filled (random mask) 2 images" in capsys.readouterr().out
    with pytest.raises(SystemExit):  # argparse's choices
        main(["sample", str(run), "--input", str(src), "--mask", "middle"])
    assert main(["eval", str(run), "--n", "6", "--quiet", "--metrics", "psnr"]) == 0
    rec = json.loads((run / "eval.jsonl").read_text().splitlines()[-1])
    assert {"hole_l1", "hole_psnr", "mean_fill_hole_l1", "mean_fill_hole_psnr"} <= set(rec)
    assert rec["n"] == 6 and 0 < rec["mean_fill_hole_l1"] < 1


def test_hole_metrics_score_only_the_masked_pixels():
    from ganforge.metrics.paired import l1_in, psnr_in

    a = torch.zeros(2, 3, 8, 8)
    b = torch.zeros(2, 3, 8, 8)
    mask = torch.zeros(2, 1, 8, 8)
    mask[:, :, 2:4, 2:4] = 1
    b[:, :, 2:4, 2:4] = 0.5  # 0.25 in [0, 1] units, inside the hole only
    b[:, :, 6:, 6:] = -1.0  # outside: must not count
    assert l1_in(a, b, mask) == pytest.approx(0.25)
    assert psnr_in(a, b, mask) == pytest.approx(10 * torch.log10(torch.tensor(1 / 0.0625)).item())
    with pytest.raises(ganforge.errors.GanforgeError, match="no pixel"):
        l1_in(a, b, torch.zeros(2, 1, 8, 8))
