"""Small generic blocks."""
from __future__ import annotations

import contextlib

import torch
from torch import nn


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
    """Linear layers with an activation (and optional dropout) between them."""

    def __init__(self, sizes, act=nn.ReLU, dropout: float = 0.0, out_act=None):
        layers = []
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
            layers.append(nn.Linear(a, b))
            if i < len(sizes) - 2:
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
