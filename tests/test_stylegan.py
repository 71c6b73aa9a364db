"""StyleGAN (Karras et al. 2019): the mapping network feeding every synthesis layer through AdaIN,
the tracked mean w and the truncation trick, style mixing at the crossover layer, the noise that
changes detail but not the styles' statistics, the figure-3 mixing grid, R1, and the CLI flags."""
import pytest
import torch

import ganforge
from ganforge.cli import main
from ganforge.errors import ConfigError
from ganforge.nn.progressive import AdaIN, EqualizedLinear, NoiseInjection

from conftest import QUIET

TINY = {"fmap_base": 64, "fmap_max": 16, "z_dim": 8, "w_dim": 8}


def tiny(**over):
    m = ganforge.create("stylegan", data="digits", image_size=16, **{**TINY, **over})
    return m.eval()


def styles_seen(G, run):
    """The w each AdaIN receives, in layer order, while ``run()`` calls G."""
    seen = []
    hooks = [m.register_forward_hook(lambda mod, args, out: seen.append(args[1].detach().clone()))
             for m in G.synthesis.modules() if isinstance(m, AdaIN)]
    try:
        run()
    finally:
        for h in hooks:
            h.remove()
    return seen


def test_mapping_network_feeds_every_layer():
    torch.manual_seed(0)
    m = tiny()
    G = m.G
    assert len(G.mapping.layers) == 8 and all(isinstance(l, EqualizedLinear) and l.lr_mul == 0.01
                                              for l in G.mapping.layers)
    z = torch.randn(3, 8)
    w = G.mapping(z)
    seen = styles_seen(G, lambda: G(z))
    assert len(seen) == G.num_layers == 6  # two per resolution: 4, 8, 16
    for s in seen:
        assert torch.equal(s, w)
    # z reaches the image only through w: the synthesis network starts from a learned constant
    noise = torch.randn(3, G.synthesis.noise_size)
    assert torch.equal(G(z, noise=noise), G.synthesis(w.unsqueeze(1).expand(-1, 6, -1), noise))
    # and each layer's style matters
    ws = w.unsqueeze(1).repeat(1, 6, 1)
    base = G.synthesis(ws, noise)
    for i in range(6):
        other = ws.clone()
        other[:, i] = G.mapping(torch.randn(3, 8))
        assert not torch.allclose(G.synthesis(other, noise), base, atol=1e-5), f"layer {i} ignores its style"


def test_mixing_switches_styles_at_the_crossover_layer():
    torch.manual_seed(0)
    G = tiny().G
    z, z2 = torch.randn(4, 8), torch.randn(4, 8)
    cross = torch.tensor([1, 2, 3, 5])
    w, w2 = G.mapping(z), G.mapping(z2)
    seen = styles_seen(G, lambda: G(z, z2=z2, cross=cross))
    for layer, s in enumerate(seen):
        for i in range(4):
            assert torch.equal(s[i], w2[i] if layer >= cross[i] else w[i])


def test_training_draws_mixing_for_90_percent_among_the_layers_in_use():
    m = tiny().train()
    torch.manual_seed(0)
    m.set_stage(1, 0.5)  # 8x8 fading in: layers 0-3 are used
    inputs = m.sample_inputs(2000)
    cross = inputs["cross"]
    mixed = cross < m.G.num_layers
    assert 0.87 < mixed.float().mean().item() < 0.93
    assert set(cross[mixed].tolist()) == {1, 2, 3}
    assert "cross" not in m.eval().sample_inputs(8)  # not when sampling
    assert "cross" not in tiny(style_mixing=0.0).train().sample_inputs(8)


def test_w_avg_is_tracked_in_training_and_psi_0_gives_the_mean_w_image():
    torch.manual_seed(0)
    m = tiny()
    G = m.G
    z = torch.randn(16, 8)
    G.eval()
    G(z)
    assert torch.equal(G.w_avg, torch.zeros(8))  # sampling leaves it alone
    G.train()
    G(z)
    assert torch.allclose(G.w_avg, 0.005 * G.mapping(z).mean(0), atol=1e-6)
    assert "G.w_avg" in m.state_dict()  # so it is in the checkpoint
    G.eval()
    G.w_avg.copy_(torch.randn(8))  # as if tracked over a long run
    g = torch.Generator().manual_seed(1)
    inputs = m.sample_inputs(5, g, truncation=0.0)
    inputs["noise"][:] = inputs["noise"][0]
    x = m.generate(inputs)
    mean_image = G.synthesis(G.w_avg.expand(1, 6, -1), inputs["noise"][:1])
    for i in range(5):
        assert torch.allclose(x[i], mean_image[0], atol=1e-5)
    # psi 1 is no truncation; psi 0.5 lies halfway in W
    inputs = m.sample_inputs(5, torch.Generator().manual_seed(1), truncation=1.0)
    plain = m.sample_inputs(5, torch.Generator().manual_seed(1))
    assert torch.allclose(m.generate(inputs), m.generate(plain), atol=1e-6)
    half = G.styles(plain["z"], psi=torch.full((5, 6), 0.5))
    assert torch.allclose(half, (G.w_avg + G.mapping(plain["z"]).unsqueeze(1)) / 2, atol=1e-5)
    with pytest.raises(ConfigError):
        m.sample(2, truncation=float("nan"))


def test_truncation_cutoff_leaves_the_later_layers_alone():
    m = tiny(truncation_cutoff=2)
    assert torch.equal(m.truncation_psi(1, 0.5), torch.tensor([[0.5, 0.5, 1.0, 1.0, 1.0, 1.0]]))


def test_noise_changes_detail_but_not_the_styles_statistics():
    torch.manual_seed(0)
    m = tiny()
    G = m.G
    strengths = [mod.weight for mod in G.modules() if isinstance(mod, NoiseInjection)]
    assert len(strengths) == 6 and all(s.shape == (s.numel(),) and not s.any() for s in strengths)
    z = torch.randn(4, 8)
    n1, n2 = (torch.randn(4, G.synthesis.noise_size) for _ in range(2))
    assert torch.equal(G(z, noise=n1), G(z, noise=n2))  # learned strengths start at 0
    with torch.no_grad():
        for s in strengths:
            s.fill_(0.5)
    a, b, c = G(z, noise=n1), G(z, noise=n2), G(torch.randn(4, 8), noise=n1)
    assert not torch.allclose(a, b, atol=1e-4)
    # The last layer's AdaIN fixes each channel's mean over the pixels from its style alone, and
    # toRGB is linear: new noise rearranges the detail, each image's mean stays; a new z moves it.
    mean = lambda x: x.mean(dim=(2, 3))  # noqa: E731
    assert torch.allclose(mean(a), mean(b), atol=1e-5)
    assert not torch.allclose(mean(a), mean(c), atol=1e-3)


def test_mixing_grid_is_figure_3():
    torch.manual_seed(0)
    m = tiny()
    images, nrow = m.mixing_grid(seed=3)
    groups = m.style_groups()
    assert [list(r) for r in groups.values()] == [[0, 1], [2, 3], [4, 5]]
    assert nrow == 6 and images.shape == (7 * 6, 1, 16, 16)
    again, _ = m.mixing_grid(seed=3)
    assert torch.equal(images, again)
    grid = images.view(7, 6, 1, 16, 16)
    a, b = grid[0, 1:], grid[1:, 0]  # sources A (top row), sources B (left column)
    assert (grid[0, 0] == 1).all()
    # row 1 takes B's coarse styles: its cells differ from A's images and from each other's source
    for j in range(5):
        assert not torch.allclose(grid[1, 1 + j], a[j], atol=1e-4)
    # a cell with all of B's styles would be B: check one group's copy against a hand-built mix
    g = torch.Generator().manual_seed(3)
    za, zb = torch.randn(5, 8, generator=g), torch.randn(6, 8, generator=g)
    noise = torch.randn(1, m.G.synthesis.noise_size, generator=g)
    with torch.no_grad():
        wa, wb = m.G.styles(za), m.G.styles(zb)  # G_ema is G's copy in a fresh model
        mix = wa[2].clone()
        mix[4:] = wb[4, 4:]  # row 5: fine styles of B_4
        cell = m.G.synthesis(mix.unsqueeze(0), noise)
        assert torch.allclose(grid[5, 3], cell[0], atol=1e-5)
        assert torch.allclose(b[0], m.G.synthesis(wb[:1], noise)[0], atol=1e-5)


def test_nonsaturating_loss_with_r1():
    torch.manual_seed(0)
    m = tiny()
    assert (m.cfg["loss"], m.cfg["r1_gamma"], m.cfg["lambda_gp"]) == ("nonsaturating", 10.0, 0.0)
    out = m.train().d_step({"x": torch.randn(8, 1, 16, 16)})
    assert out["R1"].item() > 0 and "GP" not in out and "drift" not in out


def test_progressive_false_trains_at_full_size(tmp_path):
    sets = {**QUIET, **TINY, "mapping_layers": 2, "progressive": False, "batch_size": 16}
    r = ganforge.train("stylegan", out=tmp_path, data="digits", image_size=16, steps=2, progress=False, sets=sets)
    assert r["step"] == 2
    from ganforge.training import load_run

    run = load_run(tmp_path)
    assert (run.G.synthesis.level, run.G.synthesis.alpha) == (2, 1.0)


def test_cli_truncation_and_mix(tmp_path, capsys):
    sets = {**QUIET, **TINY, "mapping_layers": 2, "fade_images": 16, "stage_images": 16,
            "batch_sizes": {4: 8, 8: 8, 16: 8}}
    ganforge.train("stylegan", out=tmp_path, data="digits", image_size=16, steps=3, progress=False, sets=sets)
    assert main(["sample", str(tmp_path), "--truncation", "0.7", "--n", "8"]) == 0
    assert main(["sample", str(tmp_path), "--mix", "--seed", "2"]) == 0
    out = capsys.readouterr().out
    assert (tmp_path / "sample_seed0.png").is_file() and (tmp_path / "mix_seed2.png").is_file(), out
