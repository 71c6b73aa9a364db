"""GAN (Goodfellow et al. 2014) and DCGAN (Radford et al. 2015): the architecture each paper defines."""
import pytest
import torch
from torch import nn

import ganforge
from ganforge.cli import main
from ganforge.models.gan import MaxoutD
from ganforge.nn import Maxout


def test_gan_is_fully_connected_with_maxout_and_dropout_in_d():
    m = ganforge.create("gan")
    assert not any(isinstance(l, (nn.Conv2d, nn.ConvTranspose2d)) for l in m.modules())
    assert isinstance(m.D, MaxoutD)
    assert sum(isinstance(l, Maxout) for l in m.D.modules()) == 2
    assert any(isinstance(l, nn.Dropout) and l.p > 0 for l in m.D.modules())
    assert any(isinstance(l, nn.ReLU) for l in m.G.modules())
    x = m.sample(4, seed=0)
    assert x.shape == (4, 1, 28, 28) and x.abs().max() <= 1


def test_maxout_takes_the_max_over_pieces():
    mo = Maxout(3, 2, 4)
    x = torch.randn(5, 3)
    pieces = mo.lin(x).view(5, 2, 4)
    assert torch.equal(mo(x), pieces.max(-1).values)


def test_gan_on_points_has_a_linear_output():
    m = ganforge.create("gan", data="grid25")
    assert not isinstance(list(m.G.modules())[-2], nn.Tanh)
    assert m.sample(3, seed=0).shape == (3, 2)


SMALL_GAN = {"g_hidden": 32, "d_hidden": 16, "z_dim": 8}


def test_gan_offers_the_papers_sgd_with_momentum():
    # Goodfellow et al. 2014, Algorithm 1: "We used momentum"; their MNIST config: SGD, lr 0.1, momentum 0.5.
    m = ganforge.create("gan", optimizer="sgd", momentum=0.5, lr=0.1, **SMALL_GAN)
    opts = m.optimizers()
    assert set(opts) == {"G", "D"}
    for o in opts.values():
        assert type(o) is torch.optim.SGD and o.defaults["momentum"] == 0.5 and o.defaults["lr"] == 0.1
    assert {id(p) for p in opts["D"].param_groups[0]["params"]} == {id(p) for p in m.D.parameters()}
    assert ganforge.create("gan", optimizer="sgd", momentum=0.9, lr_d=0.05, **SMALL_GAN).optimizers()[
        "D"].defaults == pytest.approx({**opts["D"].defaults, "momentum": 0.9, "lr": 0.05})
    assert all(type(o) is torch.optim.Adam for o in ganforge.create("gan", **SMALL_GAN).optimizers().values())


def test_gan_z_dist_uniform_has_unit_variance_as_in_the_authors_code():
    m = ganforge.create("gan", z_dist="uniform", **SMALL_GAN)
    z = m.sample_inputs(4000)["z"]
    # U(-sqrt(3), sqrt(3)): variance 1, every value within sqrt(3)
    assert z.abs().max() <= 3 ** 0.5 and z.abs().max() > 1.7 and abs(z.var().item() - 1) < 0.03
    assert m.sample(3, seed=0).shape == (3, 1, 28, 28)
    normal = ganforge.create("gan", **SMALL_GAN)
    assert normal.sample_inputs(4000)["z"].abs().max() > 3  # N(0, I), the default
    g = torch.Generator().manual_seed(0)
    assert torch.equal(normal.sample_inputs(5, g)["z"], torch.randn(5, 8, generator=torch.Generator().manual_seed(0)))


def test_gan_d_input_dropout_acts_in_training_only():
    m = ganforge.create("gan", d_input_dropout=0.2, dropout=0.0, **SMALL_GAN)
    x = torch.rand(256, 1, 28, 28) + 0.5
    m.train()
    seen = []
    m.D.body[1].register_forward_pre_hook(lambda mod, args: seen.append(args[0]))  # the first maxout's input
    m.D(x)
    dropped = (seen[-1] == 0).float().mean().item()
    assert 0.18 < dropped < 0.22
    kept = seen[-1] != 0
    assert torch.allclose(seen[-1][kept], (x.flatten(1) / 0.8)[kept])  # survivors scaled by 1 / (1 - p)
    m.eval()
    m.D(x)
    assert torch.equal(seen[-1], x.flatten(1))
    # Off by default, and the parameter names (checkpoints) are the same either way.
    plain = ganforge.create("gan", **SMALL_GAN)
    assert isinstance(plain.D.in_drop, nn.Identity) and plain.state_dict().keys() == m.state_dict().keys()


@pytest.mark.parametrize("key,value", [("optimizer", "foo"), ("momentum", 1.5), ("z_dist", "beta"),
                                       ("d_input_dropout", 1.0), ("d_input_dropout", -0.1)])
def test_gan_paper_options_reject_bad_values_in_one_line(capsys, tmp_path, key, value):
    with pytest.raises(ganforge.ConfigError, match=f"{key} must"):  # a known setting, with a bad value
        ganforge.create("gan", **{key: value}, **SMALL_GAN)
    assert main(["train", "gan", "--steps", "1", "--set", f"{key}={value}", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"{key} must" in err and not (tmp_path / "o").exists()


def test_gan_trains_from_the_cli_with_the_papers_options(tmp_path):
    out = tmp_path / "x"
    assert main(["train", "gan", "--data", "digits", "--steps", "20", "--set", "optimizer=sgd", "--set",
                 "z_dist=uniform", "--set", "d_input_dropout=0.2", "--set", "lr=0.1", "--set", "g_hidden=64",
                 "--set", "d_hidden=32", "--set", "sample_every=0", "--out", str(out)]) == 0
    m = ganforge.load_run(out)
    assert (m.cfg["optimizer"], m.cfg["z_dist"], m.cfg["d_input_dropout"], m.step) == ("sgd", "uniform", 0.2, 20)
    assert torch.isfinite(m.sample(4, seed=0)).all()
    r = ganforge.train(resume=out, steps=22, progress=False)  # the SGD momentum buffers resume too
    assert r["step"] == 22


@pytest.mark.parametrize("size,data", [(28, "mnist"), (32, "digits"), (64, "digits"), (32, "cifar10")])
def test_dcgan_architecture(size, data):
    m = ganforge.create("dcgan", data=data, image_size=size)
    ch = 3 if data == "cifar10" else 1
    assert m.sample(2, seed=0).shape == (2, ch, size, size)
    assert m.D(torch.zeros(2, ch, size, size)).shape == (2,)
    mods = list(m.modules())
    assert not any(isinstance(l, (nn.MaxPool2d, nn.AvgPool2d)) for l in mods), "DCGAN uses no pooling"
    g, d = list(m.G.net), list(m.D.body)
    # G: batch norm everywhere but the output, ReLU inside, tanh out
    assert isinstance(g[-1], nn.Tanh) and isinstance(g[-2], nn.ConvTranspose2d)
    assert all(isinstance(l, nn.ReLU) for l in g if isinstance(l, (nn.ReLU, nn.LeakyReLU)))
    ups = [l for l in g if isinstance(l, nn.ConvTranspose2d)]
    assert all(l.stride == (2, 2) for l in ups)
    assert sum(isinstance(l, nn.BatchNorm2d) for l in g) == len(ups)  # after the projection and every up but the last
    # D: strided convolutions, no batch norm on the input layer, LeakyReLU(0.2)
    convs = [l for l in d if isinstance(l, nn.Conv2d)]
    assert all(c.stride == (2, 2) for c in convs)
    assert isinstance(d[0], nn.Conv2d) and isinstance(d[1], nn.LeakyReLU)
    assert sum(isinstance(l, nn.BatchNorm2d) for l in d) == len(convs) - 1
    assert all(l.negative_slope == 0.2 for l in d if isinstance(l, nn.LeakyReLU))


def test_dcgan_uses_the_papers_adam_and_init():
    m = ganforge.create("dcgan")
    opts = m.optimizers()
    for o in opts.values():
        assert isinstance(o, torch.optim.Adam)
        assert o.defaults["lr"] == 2e-4 and o.defaults["betas"] == (0.5, 0.999)
    w = m.G.net[0].weight
    assert abs(w.std().item() - 0.02) < 0.002


def test_unsupported_image_size_is_a_clear_error():
    with pytest.raises(ganforge.ConfigError, match="image size"):
        ganforge.create("dcgan", image_size=36)
