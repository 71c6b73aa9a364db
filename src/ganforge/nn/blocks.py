"""Small generic blocks."""
from __future__ import annotations

import contextlib

import torch
from torch import nn

from ..errors import ConfigError, closest


@contextlib.contextmanager
def evaluating(module: nn.Module):
    """Eval mode (batch norm on running statistics, no dropout) inside the block, then back."""
    was = module.training
    module.eval()
    try:
        yield module
    finally:
        module.train(was)


class View(nn.Module):
    """Reshape to ``(batch, *shape)``."""

    def __init__(self, *shape):
        super().__init__()
        self.shape = shape

    def forward(self, x):
        return x.view(x.shape[0], *self.shape)


class Maxout(nn.Module):
    """Maxout unit (Goodfellow et al. 2013): the max over ``pieces`` linear maps."""

    def __init__(self, d_in: int, d_out: int, pieces: int):
        super().__init__()
        self.d_out, self.pieces = d_out, pieces
        self.lin = nn.Linear(d_in, d_out * pieces)

    def forward(self, x):
        return self.lin(x).view(x.shape[0], self.d_out, self.pieces).amax(-1)


class MLP(nn.Sequential):
    """Linear layers with an activation (and optional dropout) between them; ``norm`` (e.g.
    ``nn.BatchNorm1d``) makes a normalisation of each hidden layer's width, before its activation."""

    def __init__(self, sizes, act=nn.ReLU, dropout: float = 0.0, out_act=None, norm=None):
        layers = []
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
            layers.append(nn.Linear(a, b))
            if i < len(sizes) - 2:
                if norm is not None:
                    layers.append(norm(b))
                layers.append(act())
                if dropout:
                    layers.append(nn.Dropout(dropout))
        if out_act is not None:
            layers.append(out_act)
        super().__init__(*layers)


def flat_size(shape) -> int:
    return int(torch.tensor(shape).prod())


@torch.no_grad()
def moving_average_(avg: nn.Module, net: nn.Module, decay: float) -> None:
    """``avg``'s parameters <- decay * avg + (1 - decay) * net's; buffers (batch-norm statistics)
    copied. For an EMA of G (the engine) or SGAN's averaged D."""
    torch._foreach_lerp_(list(avg.parameters()), list(net.parameters()), 1.0 - decay)
    for a, b in zip(avg.buffers(), net.buffers()):
        a.copy_(b)


INIT_KINDS = ("normal", "xavier", "kaiming", "orthogonal")
# The norms whose scales are drawn around 1: the set DCGAN's init has always used, kept as is so
# that seeded DCGAN runs stay the same.
_SCALED_NORMS = (nn.BatchNorm2d, nn.InstanceNorm2d, nn.GroupNorm)


def init_module_(m: nn.Module, kind: str = "normal", gain: float = 0.02) -> None:
    """Initialise one module's own conv/linear weights (biases 0) or norm scales (N(1, gain))."""
    if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
        if kind == "normal":
            nn.init.normal_(m.weight, 0.0, gain)
        elif kind == "xavier":
            nn.init.xavier_normal_(m.weight, gain=gain)
        elif kind == "kaiming":  # He et al.'s std sqrt(2 / fan_in) is the point: gain plays no part
            nn.init.kaiming_normal_(m.weight, a=0, mode="fan_in")
        else:
            nn.init.orthogonal_(m.weight, gain=gain)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, _SCALED_NORMS) and m.weight is not None:
        nn.init.normal_(m.weight, 1.0, gain)
        nn.init.zeros_(m.bias)


def init_weights(module: nn.Module, kind: str = "normal", gain: float = 0.02) -> nn.Module:
    """pix2pix/CycleGAN's initialisations (Isola et al. 2017; Zhu et al. 2017), for every submodule.

    Conv/linear weights: "normal" N(0, gain), "xavier" Glorot's normal scaled by gain, "kaiming"
    He's N(0, 2 / fan_in), "orthogonal" scaled by gain; biases 0; norm scales N(1, gain).
    """
    if kind not in INIT_KINDS:
        raise ConfigError(f"unknown init {kind!r}{closest(kind, INIT_KINDS)}: use one of {', '.join(INIT_KINDS)}")
    for m in module.modules():
        init_module_(m, kind, gain)
    return module


def adain(x, gamma, beta, eps: float = 1e-5):
    """Adaptive instance normalisation (Huang & Belongie 2017): each channel of each image
    normalised by its own spatial mean and deviation, then scaled by ``gamma`` and shifted by
    ``beta`` (N, C), which come from the style rather than from learnt constants."""
    mu = x.mean((2, 3), keepdim=True)
    sd = (x.var((2, 3), keepdim=True, unbiased=False) + eps).sqrt()
    return (x - mu) / sd * gamma[:, :, None, None] + beta[:, :, None, None]
