"""2-D Gaussian-mixture toy problems and their mode-collapse metrics.

Mixtures as in PacGAN (Lin et al., "PacGAN: The power of two samples in generative adversarial
networks", NeurIPS 2018), following VEEGAN (Srivastava et al., NeurIPS 2017):

* ``ring8``: 8 equally weighted modes on the unit circle, std 0.01;
* ``grid25``: 25 equally weighted modes at {-4, -2, 0, 2, 4}^2, std 0.05.

``toy_modes`` scores samples with the VEEGAN / PacGAN protocol: a sample is *high quality* when
it lies within three standard deviations of its nearest mode; a mode is *captured* when it is
the nearest mode of at least one high-quality sample; ``kl`` is KL(p || uniform) of the histogram
p of high-quality samples over their nearest modes (PacGAN's mode-distribution KL).

This module imports only torch and numpy so the data module can use ``TOY_MIXTURES`` and
``sample_mixture`` without pulling in scipy.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from ganforge.errors import GanforgeError, closest


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


def _mixture(name: str) -> tuple[torch.Tensor, float]:
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
    centers, std = _mixture(name)
    if n < 0:
        raise GanforgeError(f"number of samples must be >= 0, got {n}")
    idx = torch.arange(len(centers)) if modes is None else torch.as_tensor(modes, dtype=torch.long).flatten()
    if idx.numel() == 0 or idx.min() < 0 or idx.max() >= len(centers):
        raise GanforgeError(f"modes must be a non-empty list of indices in [0, {len(centers) - 1}] for {name}")
    pick = idx[torch.randint(len(idx), (n,), generator=generator)]
    return centers[pick] + std * torch.randn(n, 2, generator=generator)


def toy_modes(samples, name: str) -> dict:
    """Mode-collapse metrics of 2-D ``samples`` (N, 2) for the ``ring8`` or ``grid25`` mixture.

    Returns ``dict(modes=<modes captured>, n_modes=<modes in the mixture>, high_quality=<fraction
    of high-quality samples>, kl=<KL(p || uniform) in nats>)``. Empty modes contribute 0 to the
    KL (0 log 0 = 0), so it lies in [0, log n_modes]; with no high-quality sample at all, p is
    undefined and ``kl`` is reported as its worst value, log n_modes.
    """
    centers, std = _mixture(name)
    if hasattr(samples, "detach"):
        samples = samples.detach().cpu().double().numpy()
    x = np.asarray(samples, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != 2 or len(x) == 0:
        raise GanforgeError(f"toy samples must have shape (N, 2) with N >= 1, got {tuple(x.shape)}")
    if not np.isfinite(x).all():
        raise GanforgeError("toy samples contain NaN or Inf values")

    c = centers.double().numpy()
    dist = np.linalg.norm(x[:, None, :] - c[None, :, :], axis=2)  # (N, K); K <= 25, cheap
    nearest = dist.argmin(axis=1)
    # Strict '<' as in PacGAN's MetricLogger (distance in units of std below 3). For samples of
    # the mixture itself the expected fraction is P(Rayleigh < 3) = 1 - exp(-4.5) ~ 0.989.
    good = dist[np.arange(len(x)), nearest] < 3 * std

    k = len(c)
    counts = np.bincount(nearest[good], minlength=k)
    if counts.sum() == 0:
        kl = math.log(k)
    else:
        p = counts[counts > 0] / counts.sum()
        kl = float(np.sum(p * np.log(p * k)))
    return {
        "modes": int((counts > 0).sum()),
        "n_modes": k,
        "high_quality": float(good.mean()),
        "kl": kl,
    }
