"""The 2-D mixtures of Gaussians used to measure mode collapse (ring8, grid25).

Mixtures as in PacGAN (Lin et al., "PacGAN: The power of two samples in generative adversarial
networks", NeurIPS 2018), following VEEGAN (Srivastava et al., NeurIPS 2017):

* ``ring8``: 8 equally weighted modes on the unit circle, std 0.01;
* ``grid25``: 25 equally weighted modes at {-4, -2, 0, 2, 4}^2, std 0.05.

Defined once, here, so that the data a model trains on and the protocol that counts its modes
(``ganforge.metrics.toy``, which imports these) cannot drift apart.
"""
from __future__ import annotations

import math

import torch

from ..errors import GanforgeError, closest
from .base import RawData

TOY_SIZE = 100_000  # large enough that a fixed sample behaves like the distribution


def _ring(n_modes: int, radius: float) -> torch.Tensor:
    angles = torch.arange(n_modes, dtype=torch.float64) * (2 * math.pi / n_modes)
    return (radius * torch.stack([angles.cos(), angles.sin()], dim=1)).float()


def _grid(values) -> torch.Tensor:
    v = torch.tensor(values, dtype=torch.float32)
    return torch.cartesian_prod(v, v)


# name -> (mode centres (K, 2) float32, per-coordinate std of each isotropic Gaussian)
TOY_MIXTURES: dict[str, tuple[torch.Tensor, float]] = {
    "ring8": (_ring(8, 1.0), 0.01),
    "grid25": (_grid([-4.0, -2.0, 0.0, 2.0, 4.0]), 0.05),
}


def mixture(name: str) -> tuple[torch.Tensor, float]:
    if name not in TOY_MIXTURES:
        raise GanforgeError(
            f"unknown toy mixture {name!r}; choose from {', '.join(TOY_MIXTURES)}{closest(name, TOY_MIXTURES)}"
        )
    return TOY_MIXTURES[name]


def sample_mixture(name: str, n: int, generator: torch.Generator | None = None, modes=None) -> torch.Tensor:
    """``n`` float32 samples (n, 2) from the named mixture, modes chosen uniformly.

    ``modes`` optionally restricts sampling to those mode indices (e.g. to fake a collapsed
    generator in tests); ``generator`` makes the draw reproducible.
    """
    centers, std = mixture(name)
    if n < 0:
        raise GanforgeError(f"number of samples must be >= 0, got {n}")
    idx = torch.arange(len(centers)) if modes is None else torch.as_tensor(modes, dtype=torch.long).flatten()
    if idx.numel() == 0 or idx.min() < 0 or idx.max() >= len(centers):
        raise GanforgeError(f"modes must be a non-empty list of indices in [0, {len(centers) - 1}] for {name}")
    pick = idx[torch.randint(len(idx), (n,), generator=generator)]
    return centers[pick] + std * torch.randn(n, 2, generator=generator)


def load_toy(name: str, n: int = TOY_SIZE, seed: int = 1234) -> RawData:
    g = torch.Generator().manual_seed(seed)
    x = sample_mixture(name, n, generator=g).float()
    n_modes = len(TOY_MIXTURES[name][0])
    return RawData(name, "points", x, None, None, note=f"{n:,} points from {n_modes} Gaussians")
