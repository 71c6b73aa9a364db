"""Maximum mean discrepancy with a Gaussian kernel (Gretton et al., JMLR 2012), on raw vectors.

For how well a model's codes q(z) match a prior p(z) (the adversarial autoencoder's claim):
``gaussian_mmd2(codes, prior_samples)``. MMD^2 = E k(x, x') + E k(y, y') - 2 E k(x, y) with
k(a, b) = exp(-||a - b||^2 / (2 sigma^2)); the unbiased estimate (within-set means without the
diagonal) is 0 in expectation when both sets come from one distribution, so it can be slightly
negative. ``sigma`` defaults to the median distance between points of the reference set ``y``
(the median heuristic), so two models measured against the same prior samples share one kernel.
KID (``metrics/kid.py``) is the same estimator with a polynomial kernel on Inception features.
"""
from __future__ import annotations

import numpy as np
import torch

from ..errors import GanforgeError


def _as_2d(a, name: str) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(a, dtype=np.float64)) if not torch.is_tensor(a) else a.detach().double().cpu()
    if t.ndim != 2 or len(t) < 2:
        raise GanforgeError(f"{name} must be a 2-D array of at least two vectors, got shape {tuple(t.shape)}")
    return t


def median_distance(y, n: int = 1000, seed: int = 0) -> float:
    """The median Euclidean distance between distinct points of (at most ``n`` rows of) ``y``."""
    y = _as_2d(y, "y")
    if len(y) > n:
        y = y[torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))[:n]]
    d = torch.cdist(y, y)
    return float(d[~torch.eye(len(y), dtype=torch.bool)].median())


def _kernel_sum(a: torch.Tensor, b: torch.Tensor, sigma: float, chunk: int) -> float:
    total = 0.0
    for i in range(0, len(a), chunk):
        # Exact differences, not the |a|^2 + |b|^2 - 2ab shortcut, which loses digits at small distances.
        d2 = torch.cdist(a[i:i + chunk], b, compute_mode="donot_use_mm_for_euclid_dist").pow(2)
        total += float(torch.exp(-d2 / (2 * sigma ** 2)).sum())
    return total


def gaussian_mmd2(x, y, sigma: float | None = None, chunk: int = 2048) -> float:
    """Unbiased MMD^2 between the rows of ``x`` (N, D) and ``y`` (M, D), Gaussian kernel of width
    ``sigma`` (default: ``median_distance(y)``). Memory stays at ``chunk`` rows at a time."""
    x, y = _as_2d(x, "x"), _as_2d(y, "y")
    if x.shape[1] != y.shape[1]:
        raise GanforgeError(f"x and y must have the same dimension, got {x.shape[1]} and {y.shape[1]}")
    sigma = median_distance(y) if sigma is None else float(sigma)
    if not sigma > 0:
        raise GanforgeError(f"the kernel width sigma must be positive, got {sigma}")
    n, m = len(x), len(y)
    # k(a, a) = 1 on each diagonal: dropping it is subtracting the set's size.
    k_xx = (_kernel_sum(x, x, sigma, chunk) - n) / (n * (n - 1))
    k_yy = (_kernel_sum(y, y, sigma, chunk) - m) / (m * (m - 1))
    k_xy = _kernel_sum(x, y, sigma, chunk) / (n * m)
    return k_xx + k_yy - 2 * k_xy
