"""Laplacian pyramids and the per-level networks of LAPGAN (Denton et al. 2015).

``downsample`` (d: 2x2 average) and ``upsample`` (u: bilinear) are the pyramid's two operators.
A level's band-pass image is h_k = I_k - u(d(I_k)); by construction I_k = u(I_{k+1}) + h_k with
I_{k+1} = d(I_k), so the coarsest image and the residuals reconstruct the image exactly (up to
float rounding). Average pooling keeps each coarse pixel the mean of the pixels it covers, so the
coarse images stay in [-1, 1] like the data.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from .blocks import MLP


def downsample(x: torch.Tensor) -> torch.Tensor:
    return F.avg_pool2d(x, 2)


def upsample(x: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)


def check_levels(image_size: int, levels: int) -> int:
    """The coarsest side after ``levels`` halvings; refuses a size that does not halve exactly."""
    if levels < 1:
        raise ConfigError(f"levels must be at least 1 (one conditional level above the coarsest), got {levels}")
    if image_size % (1 << levels) or image_size >> levels < 4:
        raise ConfigError(f"a {levels}-level Laplacian pyramid needs an image side divisible by {1 << levels} "
                          f"leaving at least 4 pixels at the coarsest level, got {image_size}")
    return image_size >> levels


def laplacian_pyramid(x: torch.Tensor, levels: int) -> tuple[list[torch.Tensor], torch.Tensor]:
    """([h_0, ..., h_{K-1}], I_K): the band-pass residuals from the finest (h_0, full size) down,
    and the coarsest image I_K = d^K(x)."""
    residuals = []
    for _ in range(levels):
        coarse = downsample(x)
        residuals.append(x - upsample(coarse))
        x = coarse
    return residuals, x


def reconstruct(residuals: list[torch.Tensor], coarsest: torch.Tensor) -> torch.Tensor:
    """The inverse of ``laplacian_pyramid``: I_k = u(I_{k+1}) + h_k from the coarsest up."""
    x = coarsest
    for h in reversed(residuals):
        x = upsample(x) + h
    return x


class CoarseGenerator(nn.Module):
    """The coarsest level, an ordinary GAN's G: z -> a small image (an MLP, as the paper's 8x8 CIFAR G).
    ``norm="batch"`` puts batch norm after each hidden layer (DCGAN's rule for G); ``"none"`` is the
    plain MLP."""

    def __init__(self, z_dim: int, channels: int, side: int, hidden: int, norm: str = "batch"):
        super().__init__()
        if norm not in ("batch", "none"):
            raise ConfigError(f"coarse_norm must be batch or none, got {norm!r}")
        self.shape = (channels, side, side)
        self.net = MLP([z_dim, hidden, hidden, channels * side * side], act=nn.ReLU, out_act=nn.Tanh(),
                       norm=nn.BatchNorm1d if norm == "batch" else None)

    def forward(self, z):
        return self.net(z).view(len(z), *self.shape)


class CoarseDiscriminator(nn.Module):
    """The coarsest level's D: a small image -> one logit (an MLP with dropout)."""

    def __init__(self, channels: int, side: int, hidden: int, dropout: float = 0.5):
        super().__init__()
        self.net = MLP([channels * side * side, hidden, hidden, 1], act=lambda: nn.LeakyReLU(0.2), dropout=dropout)

    def forward(self, x):
        return self.net(x.flatten(1)).squeeze(1)


class ResidualGenerator(nn.Module):
    """A finer level's G: (u(I_{k+1}), a noise plane) -> the band-pass image h_k.

    The upsampled coarser image is the condition, entering as input channels beside the noise
    (the paper's CIFAR G_k: 3 conv layers, ReLU, 5x5 here 3x3 on small digits). The output is
    linear: a residual is signed and unbounded."""

    def __init__(self, channels: int, width: int, noise_channels: int = 1, depth: int = 3):
        super().__init__()
        layers, ch = [], channels + noise_channels
        for _ in range(depth - 1):
            layers += [nn.Conv2d(ch, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU(True)]
            ch = width
        layers.append(nn.Conv2d(ch, channels, 3, 1, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, coarse_up, noise):
        return self.net(torch.cat([coarse_up, noise], 1))


class ResidualDiscriminator(nn.Module):
    """A finer level's D: (u(I_{k+1}), h_k) -> one logit. It judges the residual *given* the
    coarser image, so a G that ignores its condition is caught."""

    def __init__(self, channels: int, side: int, width: int, dropout: float = 0.5):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(2 * channels, width, 3, 2, 1), nn.LeakyReLU(0.2, True),
            nn.Conv2d(width, 2 * width, 3, 2, 1), nn.LeakyReLU(0.2, True), nn.Flatten(), nn.Dropout(dropout))
        s = -(-(-(-side // 2)) // 2)  # two stride-2 convs with padding 1: ceil(ceil(side / 2) / 2)
        self.head = nn.Linear(2 * width * s * s, 1)

    def forward(self, coarse_up, h):
        return self.head(self.net(torch.cat([coarse_up, h], 1))).squeeze(1)


class LaplacianGenerator(nn.Module):
    """The pyramid of generators, ``levels[k]`` = G_k (0 the finest, K the coarsest, as in the
    paper). Sampling chains them: I_K = G_K(z_K), then I_k = u(I_{k+1}) + G_k(u(I_{k+1}), z_k)."""

    def __init__(self, coarse: nn.Module, finer: list[nn.Module]):
        super().__init__()
        self.levels = nn.ModuleList([*finer, coarse])

    @property
    def K(self) -> int:
        return len(self.levels) - 1

    def forward(self, inputs: dict, all_levels: bool = False):
        x = self.levels[self.K](inputs["z"])
        out = [x]
        for k in range(self.K - 1, -1, -1):
            up = upsample(x)
            # A coarse image plus a residual can leave [-1, 1]; the images each level was trained
            # to condition on (the data's) cannot.
            x = (up + self.levels[k](up, inputs[f"z{k}"])).clamp(-1, 1)
            out.append(x)
        return out[::-1] if all_levels else out[-1]
