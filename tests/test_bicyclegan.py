"""BicycleGAN: both cycles (cVAE-GAN: E(B) -> G(A, z) ~ B; cLR-GAN: E(G(A, z)) ~ z, updating G
alone), z injected into G, KL; the pix2pix-with-noise baseline (variant=noise: no E); the
diversity measure in `ganforge eval`, `--styles` / `--style-from` through the CLI."""
import json

import pytest
import torch

import ganforge
from ganforge.cli import main
from ganforge.errors import ConfigError
from ganforge.nn.style import ZInput, kl_normal

from conftest import random_pair

TINY = {"g_width": 4, "d_width": 4, "e_width": 4}


def model(variant="bicycle", **kw):
    torch.manual_seed(0)
    return ganforge.create("bicyclegan", "digits-color", variant=variant, **{**TINY, **kw})


def batch(n=2, seed=0):
    return random_pair(n, 1, 3, seed=seed)  # grey digits A, coloured digits B


def grad_sum(net):
    return sum(float(p.grad.abs().sum()) for p in net.parameters() if p.grad is not None)


def test_z_is_injected_into_g():
    m = model()
    assert isinstance(m.G, ZInput)
    assert m.G.net.encoder[0][0].in_channels == 1 + 8  # A's channel and the 8 tiled channels of z
    a = batch()["A"]
    with torch.no_grad():
        assert (m.G(a, torch.randn(2, 8)) - m.G(a, torch.randn(2, 8))).abs().max() > 1e-4


def test_z_inject_all_gives_every_encoder_layer_the_code():
    m = model(z_inject="all")
    seen = []
    hooks = [layer.register_forward_pre_hook(lambda mod, args: seen.append(args[0])) for layer in m.G.encoder]
    a, z = batch()["A"], torch.randn(2, 8)
    with torch.no_grad():
        out = m.G(a, z)
        other = m.G(a, torch.randn(2, 8))
    for h in hooks:
        h.remove()
    assert len(seen) == 2 * len(m.G.encoder) >= 4
    for x in seen[:len(m.G.encoder)]:  # the last 8 channels of each layer's input are z, tiled
        assert torch.equal(x[:, -8:], z[:, :, None, None].expand(-1, -1, *x.shape[-2:]))
    assert (out - other).abs().max() > 1e-4
    assert isinstance(model().G, ZInput)  # the default stays the authors' add-to-input
    with pytest.raises(ConfigError, match="z_inject"):
        model(z_inject="middle")


def test_cvae_gan_cycle_b_to_z_to_b(monkeypatch):
    m = model()
    monkeypatch.setattr(m, "randn", lambda n, *shape, **kw: torch.zeros(n, *shape))  # z = E's mean
    b = batch()
    t = m.g_terms(b)
    with torch.no_grad():
        mu, logvar = m.E(b["B"])
        rebuilt = m.G(b["A"], mu)
    assert torch.allclose(t["L1"], (rebuilt - b["B"]).abs().mean(), atol=1e-6)
    assert torch.allclose(t["KL"], kl_normal(mu, logvar), atol=1e-6)
    # E learns from the reconstruction (it must put into z what A does not fix) and from KL
    t["L1"].backward(retain_graph=True)
    assert grad_sum(m.E) > 0 and grad_sum(m.G) > 0
    m.zero_grad()
    t["KL"].backward()
    assert grad_sum(m.E) > 0 and grad_sum(m.G) == 0


def test_clr_gan_cycle_z_to_b_to_z_trains_g_alone(monkeypatch):
    m = model()
    z = torch.randn(2, 8)
    monkeypatch.setattr(m, "draw_style", lambda n: z)
    b = batch()
    t = m.g_terms(b)
    with torch.no_grad():
        want = (m.E(m.G(b["A"], z))[0] - z).abs().mean()
    assert torch.allclose(t["z_L1"], want, atol=1e-6)
    t["z_L1"].backward()
    assert grad_sum(m.G) > 0 and grad_sum(m.E) == 0  # the authors update G alone with this term


def test_two_discriminators_judge_the_two_kinds_of_output():
    m = model()
    out = m.d_step(batch())
    assert {"D", "D2"} <= out.keys()
    out["loss"].backward()
    assert grad_sum(m.D) > 0 and grad_sum(m.D2) > 0
    assert m.D.net[0].in_channels == 3  # B alone, not conditional on A (the authors' default)


def test_pix2pix_with_noise_has_no_encoder_and_no_latent_loss():
    m = model("noise")
    assert not hasattr(m, "E") and not hasattr(m, "D")
    t = m.g_terms(batch())
    assert set(t) == {"fake_rand", "G2_gan", "L1"}
    assert "E" not in m.optimizers()
    with pytest.raises(ConfigError, match="no encoder"):
        m.translate_styles(batch(1)["A"], style_images=batch(1)["B"])
    with pytest.raises(ConfigError, match="variant"):
        model("pix2pix")


def test_style_from_an_example_is_its_encoded_mean():
    m = model().eval()
    x, ex = batch(2)["A"], batch(3, seed=2)["B"]
    out = m.translate_styles(x, style_images=ex)
    assert out.shape == (2, 3, 3, 28, 28)
    with torch.no_grad():
        want = m.G(x, m.E(ex[2:])[0].expand(2, -1))
    assert torch.allclose(out[:, 2], want, atol=1e-5)
    # translate() is one seeded drawn z per input
    assert torch.equal(m.translate(x), m.translate_styles(x, k=1, seed=0)[:, 0])


def _sets(d):
    return [x for k, v in d.items() for x in ("--set", f"{k}={v}")]


def test_cli_train_sample_styles_and_eval(tmp_path, capsys):
    from PIL import Image

    run = tmp_path / "bicycle"
    assert main(["train", "bicyclegan", "--data", "digits-color", "--steps", "2", "--batch-size", "2",
                 "--out", str(run), "--quiet", *_sets({**TINY, "sample_every": 2})]) == 0
    assert list((run / "samples").glob("*.png"))
    Image.fromarray((torch.rand(28, 28) * 255).byte().numpy()).save(tmp_path / "d.png")
    assert main(["sample", str(run), "--input", str(tmp_path / "d.png"), "--styles", "5",
                 "--out", str(tmp_path / "s")]) == 0
    assert Image.open(tmp_path / "s" / "d.png").size[0] >= 6 * 28
    capsys.readouterr()
    assert main(["sample", str(run), "--styles", "2"]) != 0  # no --input: one line, not a traceback
    assert "--styles needs --input" in capsys.readouterr().err
    assert main(["eval", str(run), "--quiet", "--n", "20"]) == 0
    rec = json.loads((run / "eval.jsonl").read_text().splitlines()[-1])
    for key in ("l1", "kid", "label_preservation", "diversity_l1", "diversity_colour", "diversity_colour_real"):
        assert key in rec
    assert rec["diversity_l1"] > 0  # an untrained G does not ignore z entirely


def test_unset_widths_and_cvae_weights_follow_the_image_size(monkeypatch):
    small = ganforge.create("bicyclegan", "digits-color")  # 28x28
    assert small.G.net.encoder[0][0].out_channels == 16 and small.E.net[0].out_channels == 16
    assert small.D.net[0].out_channels == 16
    assert (small.sized("lambda_l1"), small.sized("lambda_kl")) == (50.0, 0.5)
    big = ganforge.create("bicyclegan", "digits-color", image_size=64)
    assert big.G.net.encoder[0][0].out_channels == 64 and big.E.net[0].out_channels == 64
    assert (big.sized("lambda_l1"), big.sized("lambda_kl")) == (10.0, 0.01)  # the paper's
    set_ = model(lambda_l1=3.0, lambda_kl=0.25)  # a set value wins at any size
    assert set_.G.net.encoder[0][0].out_channels == TINY["g_width"]
    # the weights G's loss uses are the resolved ones
    for m, l1w, klw in ((small, 50.0, 0.5), (set_, 3.0, 0.25)):
        one = torch.tensor(1.0)
        monkeypatch.setattr(m, "g_terms", lambda b: {"L1": one, "KL": 2 * one, "z_L1": 4 * one,
                                                      "G_gan": 8 * one, "G2_gan": 16 * one})
        assert float(m.g_step(batch())["loss"]) == pytest.approx(l1w + 2 * klw + 4 * 0.5 + 8 + 16)
    with pytest.raises(ConfigError, match="lambda_kl"):
        model(lambda_kl=-1.0)


def test_the_colour_data_hides_the_shape_from_an_l1_without_the_colours():
    # Why pix2pix (and variant=noise, and every random-z output) gets no shape from the L1 to B on
    # mnist-color: over the 56 (fg, bg) pairs, each channel of an ink pixel is 255 exactly as often
    # as the same channel of a paper pixel, so the L1-best output knows no digit (docs/multimodal.md).
    from ganforge.data.translation import COLORS, color

    a = torch.zeros(1, 1, 2, 2, dtype=torch.uint8)
    a[..., 0, 0] = 255  # one ink pixel, three paper pixels
    pairs = [(f, b) for f in range(len(COLORS)) for b in range(len(COLORS)) if f != b]
    imgs = torch.cat([color(a, torch.tensor([f]), torch.tensor([b])) for f, b in pairs]).float()
    ink, paper = imgs[:, :, 0, 0], imgs[:, :, 1, 1]
    assert torch.equal((ink == 255).float().mean(0), (paper == 255).float().mean(0))
    assert torch.equal(ink.median(0).values, paper.median(0).values)
