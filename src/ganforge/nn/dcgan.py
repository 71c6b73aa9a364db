"""DCGAN networks (Radford et al. 2015), sized from the image size.

All-convolutional: strided (transposed) convolutions instead of pooling, batch norm in G and D
except G's output and D's input, ReLU in G with a tanh output, LeakyReLU(0.2) in D. Many later
models (CGAN, AC-GAN, InfoGAN, LSGAN, WGAN) reuse these with extra inputs or heads, so both
networks take options for that rather than being copied.
"""
from __future__ import annotations

from torch import nn

from ..errors import ConfigError
from .blocks import View, init_module_
from .improved import MinibatchDiscrimination
from .spectral import spectral_norm_ready


def dcgan_stages(image_size: int) -> tuple[int, int]:
    """(base, k): the image is base x base after k halvings (28 -> (7, 2), 32 -> (4, 3))."""
    base, k = image_size, 0
    while base % 2 == 0 and base > 4:
        base, k = base // 2, k + 1
    if k == 0 or base > 8:
        raise ConfigError(f"DCGAN-style networks need an image size b * 2^k with b <= 8, k >= 1 (28, 32, 64, ...), "
                          f"got {image_size}: pass --set image_size=64")
    return base, k


def dcgan_init(module: nn.Module) -> None:
    """The paper's initialisation: weights from N(0, 0.02), norm scales from N(1, 0.02).

    A minibatch-discrimination tensor T counts as a weight too. Salimans et al.'s code instead
    weight-normalises T with a data-dependent scale that puts each sample's nearest neighbour at an
    L1 distance of about 2. On the default DCGAN D's features of 28 x 28 digits, N(0, 0.02) gives
    about 1.4; N(0, 0.1), T's own init, gives about 7, where exp(-distance), the statistic, all but
    vanishes.
    """
    # One pass in module order, T in its place, so that a seed gives the same weights as ever.
    for m in module.modules():
        if isinstance(m, MinibatchDiscrimination):
            nn.init.normal_(m.T, 0.0, 0.02)
        else:
            init_module_(m, "normal", 0.02)


def _norm(kind: str, ch: int):
    if kind == "batch":
        return nn.BatchNorm2d(ch)
    if kind == "instance":
        return nn.InstanceNorm2d(ch, affine=True)
    if kind == "layer":  # per-sample, so safe inside a gradient penalty (Gulrajani et al. 2017)
        return nn.GroupNorm(1, ch)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"unknown norm {kind!r}")


class DCGANGenerator(nn.Module):
    """z (B, z_dim) -> image (B, channels, size, size) in [-1, 1]."""

    def __init__(self, z_dim: int, channels: int, image_size: int, width: int = 64, norm: str = "batch"):
        super().__init__()
        base, k = dcgan_stages(image_size)
        ch = width * 2 ** (k - 1)
        # "Project and reshape": one matrix multiply to a small spatial map (the paper's first layer).
        layers = [nn.Linear(z_dim, ch * base * base, bias=norm == "none"), View(ch, base, base),
                  _norm(norm, ch), nn.ReLU(True)]
        for _ in range(k - 1):
            layers += [nn.ConvTranspose2d(ch, ch // 2, 4, 2, 1, bias=norm == "none"), _norm(norm, ch // 2),
                       nn.ReLU(True)]
            ch //= 2
        layers += [nn.ConvTranspose2d(ch, channels, 4, 2, 1), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        self.z_dim = z_dim
        dcgan_init(self)

    def forward(self, z):
        return self.net(z)


@spectral_norm_ready
class DCGANDiscriminator(nn.Module):
    """image -> D's output (B,) or (B, out_dim); ``features(x)`` gives the flattened body output.

    ``in_channels`` may exceed the image's channels when a model concatenates condition maps.
    """

    def __init__(self, in_channels: int, image_size: int, width: int = 64, norm: str = "batch",
                 out_dim: int = 1):
        super().__init__()
        base, k = dcgan_stages(image_size)
        layers, ch = [], in_channels
        for i in range(k):
            out = width * 2 ** i
            layers += [nn.Conv2d(ch, out, 4, 2, 1, bias=i == 0 or norm == "none")]
            if i > 0:  # no normalisation on D's input layer
                layers.append(_norm(norm, out))
            layers.append(nn.LeakyReLU(0.2, True))
            ch = out
        layers.append(nn.Flatten())
        self.body = nn.Sequential(*layers)
        self.feature_dim = ch * base * base
        self.head = nn.Linear(self.feature_dim, out_dim)
        self.out_dim = out_dim
        dcgan_init(self)

    def features(self, x):
        return self.body(x)

    def forward(self, x):
        out = self.head(self.body(x))
        return out.squeeze(1) if self.out_dim == 1 else out
