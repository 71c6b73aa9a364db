"""Kernel Inception Distance: unbiased polynomial-kernel MMD^2 averaged over random subsets.

Binkowski et al., "Demystifying MMD GANs", ICLR 2018. The definition matches the reference
implementations torch-fidelity (``metric_kid.py``: subsets drawn without replacement by
``np.random.RandomState(seed)``, mean and population std over subsets) and clean-fid
(``kernel_distance``: subset size clipped to the smaller set), except for sets smaller than
four subsets (see :func:`kid_subset_size`), where those would make the std meaningless.
"""
from __future__ import annotations

import numpy as np

from ganforge.errors import GanforgeError
from ganforge.metrics.frechet import as_float64


def _polynomial_kernel(x: np.ndarray, y: np.ndarray, degree: int, gamma: float, coef0: float) -> np.ndarray:
    return (x @ y.T * gamma + coef0) ** degree


def _mmd2_unbiased(x: np.ndarray, y: np.ndarray, degree: int, gamma: float, coef0: float) -> float:
    """Unbiased MMD^2 of two equal-size sets: within-set means drop the diagonal (i == j)."""
    m = x.shape[0]
    k_xx = _polynomial_kernel(x, x, degree, gamma, coef0)
    k_yy = _polynomial_kernel(y, y, degree, gamma, coef0)
    k_xy = _polynomial_kernel(x, y, degree, gamma, coef0)
    within = (k_xx.sum() - np.trace(k_xx) + k_yy.sum() - np.trace(k_yy)) / (m * (m - 1))
    return float(within - 2.0 * k_xy.sum() / (m * m))


def kid_subset_size(n_a: int, n_b: int, subset_size: int = 1000, subsets: int = 100) -> int:
    """The subset size :func:`kid` uses for sets of ``n_a`` and ``n_b`` rows.

    ``subset_size``, but at most a quarter of the smaller set (and at least 2). Subsets of m rows
    drawn from a pool of n overlap, and their spread understates that of independent draws of m
    by about sqrt(1 - m / n) (the finite-population correction): at m = n, as with 1,000 samples
    and the usual 1,000, every subset is the whole set and that side contributes no spread at all.
    A quarter keeps the understatement near 13%; the mean is unbiased at any size. A single subset
    has no spread to estimate, so it takes as many rows as both sets have (up to ``subset_size``).
    """
    m = min(int(subset_size), n_a, n_b)
    return m if subsets == 1 else max(2, min(m, min(n_a, n_b) // 4))


def kid(
    a,
    b,
    subsets: int = 100,
    subset_size: int = 1000,
    degree: int = 3,
    gamma: float | None = None,
    coef0: float = 1,
    seed: int = 0,
) -> tuple[float, float]:
    """(mean, std) of the unbiased MMD^2 between features a (N, D) and b (M, D).

    Kernel k(x, y) = (gamma * x.y + coef0) ** degree with gamma = 1/D by default, i.e. the
    KID kernel (x.y / D + 1)^3. Each of ``subsets`` rounds draws ``subset_size`` rows of a and
    of b without replacement; for sets smaller than 4 * ``subset_size`` the subsets are smaller,
    ``kid_subset_size(N, M, subset_size, subsets)``, so that they differ. The std is the
    population std over subsets (``np.std``), as torch-fidelity reports it: the spread of one
    subset's estimate.
    """
    a = as_float64(a, "features a", ndim=2)
    b = as_float64(b, "features b", ndim=2)
    if a.shape[1] != b.shape[1]:
        raise GanforgeError(f"feature dimensions differ: a has {a.shape[1]}, b has {b.shape[1]}")
    if subsets < 1:
        raise GanforgeError(f"KID needs subsets >= 1, got {subsets}")
    m = kid_subset_size(len(a), len(b), subset_size, subsets)
    if min(int(subset_size), len(a), len(b)) < 2:
        raise GanforgeError(
            f"KID needs at least 2 samples per set and subset_size >= 2 "
            f"(got {len(a)} and {len(b)} samples, subset_size={subset_size})"
        )
    gamma = 1.0 / a.shape[1] if gamma is None else float(gamma)

    rng = np.random.RandomState(seed)
    mmds = np.empty(subsets)
    for i in range(subsets):
        x = a[rng.choice(len(a), m, replace=False)]
        y = b[rng.choice(len(b), m, replace=False)]
        mmds[i] = _mmd2_unbiased(x, y, degree, gamma, coef0)
    return float(mmds.mean()), float(mmds.std())
