"""The 2-D mixtures of Gaussians used to measure mode collapse (ring8, grid25).

The mixtures themselves are defined once, in ``ganforge.metrics.toy``, so that the data a
model trains on and the protocol that counts its modes cannot drift apart.
"""
from __future__ import annotations

import torch

from .base import RawData

TOY_SIZE = 100_000  # large enough that a fixed sample behaves like the distribution


def load_toy(name: str, n: int = TOY_SIZE, seed: int = 1234) -> RawData:
    from ..metrics.toy import TOY_MIXTURES, sample_mixture

    g = torch.Generator().manual_seed(seed)
    x = sample_mixture(name, n, generator=g).float()
    n_modes = len(TOY_MIXTURES[name][0])
    return RawData(name, "points", x, None, None, note=f"{n:,} points from {n_modes} Gaussians")
