"""GAN (Goodfellow et al. 2014) and DCGAN (Radford et al. 2015): the architecture each paper defines."""
import pytest
import torch
from torch import nn

import ganforge
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
