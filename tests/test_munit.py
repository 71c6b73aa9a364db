"""MUNIT: the style reaches the decoder only through AdaIN parameters from the MLP; the content
and style reconstruction terms; swapping styles changes the output; `ganforge sample --styles` /
`--style-from` and the diversity measure of `ganforge eval` (metrics/diversity.py)."""
import json

import pytest
import torch

import ganforge
from ganforge.cli import main
from ganforge.errors import ConfigError
from ganforge.metrics.diversity import colour_diversity, l1_diversity
from ganforge.nn.style import AdaINDecoder, AssignedAdaIN

from conftest import random_pair

TINY = {"g_width": 4, "d_width": 4, "n_res": 1, "mlp_dim": 16}


def model(data="digits-color-unpaired", **kw):
    torch.manual_seed(0)
    return ganforge.create("munit", data, **{**TINY, **kw})


def batch(n=2, seed=0):
    return random_pair(n, 1, 3, seed=seed)  # grey digits A, coloured digits B


def test_style_reaches_the_decoder_only_through_the_mlps_adain_parameters():
    m = model()
    G = m.G_B
    assert isinstance(G, AdaINDecoder) and len(G.adain_layers) == 2 * len(G.blocks)
    assert all(not list(layer.parameters()) for layer in G.adain_layers)  # AdaIN has no scale of its own
    c = m.E_c_A(batch()["A"])
    s1, s2 = torch.randn(2, 8), torch.randn(2, 8)
    with torch.no_grad():
        assert not torch.allclose(G(c, s1), G(c, s2), atol=1e-5)
        fixed = G.adain_params(s1)
        G.adain_params = lambda s: fixed  # the MLP's output held: the style has no other way in
        assert torch.equal(G(c, s1), G(c, s2))
    # the MLP's output has exactly one (gamma, beta) per channel of every AdaIN layer
    assert fixed.shape == (2, 2 * sum(layer.channels for layer in G.adain_layers))


def test_adain_sets_each_channels_mean_and_deviation():
    x = torch.randn(3, 4, 7, 7) * 5 + 2
    gamma, beta = torch.rand(3, 4) + 0.5, torch.randn(3, 4)
    layer = AssignedAdaIN(4)
    layer.set_params(gamma, beta)
    y = layer(x)
    assert torch.allclose(y.mean((2, 3)), beta, atol=1e-4)
    assert torch.allclose(y.std((2, 3), unbiased=False), gamma, atol=1e-3)


def test_content_and_style_reconstruction_terms(monkeypatch):
    m = model()
    b = batch()
    s_a, s_b = torch.randn(2, 8), torch.randn(2, 8)
    draws = iter([s_a, s_b])
    monkeypatch.setattr(m, "draw_style", lambda n: next(draws))
    t = m.g_terms(b)
    with torch.no_grad():
        c_a = m.E_c_A(b["A"])
        fake_b = m.G_B(c_a, s_b)  # a's content in a drawn style of B
        assert torch.allclose(t["recon_s_B"], (m.E_s_B(fake_b) - s_b).abs().mean(), atol=1e-6)
        assert torch.allclose(t["recon_c_A"], (m.E_c_B(fake_b) - c_a).abs().mean(), atol=1e-6)
        own = m.G_A(c_a, m.E_s_A(b["A"]))  # a from its own content and style
        assert torch.allclose(t["recon_x_A"], (own - b["A"]).abs().mean(), atol=1e-6)
    # the style term trains the style encoder of the output's domain and the decoder that drew it
    t["recon_s_B"].backward()
    assert m.E_s_B.net[0].weight.grad.abs().sum() > 0 and m.G_B.mlp[0].weight.grad.abs().sum() > 0


def test_swapping_styles_changes_the_output_and_style_from_uses_the_example():
    m = model().eval()
    x = batch(1)["A"]
    ex = batch(2, seed=1)["B"]
    ex[1] = -ex[1]
    out = m.translate_styles(x, "AtoB", style_images=ex, use_ema=False)
    assert out.shape == (1, 2, 3, 28, 28)
    assert not torch.allclose(out[0, 0], out[0, 1], atol=1e-5)
    with torch.no_grad():
        want = m.G_B(m.E_c_A(x), m.E_s_B(ex[1:]))
    assert torch.allclose(out[0, 1], want, atol=1e-5)
    drawn = m.translate_styles(x, "AtoB", k=3, seed=5)
    assert drawn.shape == (1, 3, 3, 28, 28) and torch.equal(drawn, m.translate_styles(x, "AtoB", k=3, seed=5))
    with pytest.raises(ConfigError):
        m.translate_styles(ex, "AtoB")  # 3-channel images where grey ones are translated


def test_diversity_measures():
    img = -torch.ones(1, 1, 3, 8, 8)  # black paper
    img[..., 2:6, 2:6] = 1.0  # white ink
    same = img.expand(1, 4, 3, 8, 8)
    assert l1_diversity(same) == 0 and colour_diversity(same) == 0
    other = img.clone()
    other[:, :, 0] = -1  # ink cyan instead of white: red channel off (the paper stays black)
    pair = torch.cat([img, other], 1)
    assert colour_diversity(pair) == pytest.approx(0.5)  # ink 1 apart, paper the same
    assert l1_diversity(pair) == pytest.approx(16 / (3 * 64))  # 16 pixels of 64, one channel of 3, 0 -> 1


def _sets(d):
    return [x for k, v in d.items() for x in ("--set", f"{k}={v}")]


def test_cli_styles_and_style_from_and_eval_diversity(tmp_path, capsys):
    from PIL import Image

    run = tmp_path / "munit"
    assert main(["train", "munit", "--data", "digits-color-unpaired", "--steps", "1", "--batch-size", "2",
                 "--out", str(run), "--quiet", *_sets({**TINY, "sample_every": 0})]) == 0
    Image.fromarray((torch.rand(28, 28) * 255).byte().numpy()).save(tmp_path / "digit.png")
    Image.fromarray((torch.rand(28, 28, 3) * 255).byte().numpy()).save(tmp_path / "style.png")
    assert main(["sample", str(run), "--input", str(tmp_path / "digit.png"), "--styles", "3",
                 "--out", str(tmp_path / "s")]) == 0
    assert Image.open(tmp_path / "s" / "digit.png").size[0] >= 4 * 28  # the input and three styles
    assert main(["sample", str(run), "--input", str(tmp_path / "digit.png"), "--style-from",
                 str(tmp_path / "style.png"), "--out", str(tmp_path / "f")]) == 0
    assert (tmp_path / "f" / "digit.png").exists()
    capsys.readouterr()
    assert main(["eval", str(run), "--quiet", "--n", "20"]) == 0
    rec = json.loads((run / "eval.jsonl").read_text().splitlines()[-1])
    assert rec["diversity_styles"] == 8 and rec["diversity_colour_real"] > 0.5
    assert 0 <= rec["diversity_colour"] and "BtoA_diversity_l1" in rec and "label_preservation" in rec
