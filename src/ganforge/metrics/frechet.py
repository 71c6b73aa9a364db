"""Frechet distance between Gaussians fitted to feature sets (the "FID" of Heusel et al. 2017).

    FD = ||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^{1/2})

Heusel et al., "GANs Trained by a Two Time-Scale Update Rule Converge to a Local Nash
Equilibrium", NeurIPS 2017. The numerics (float64, scipy's Schur ``sqrtm``, an ``eps * I``
offset retry for near-singular products, dropping a negligible imaginary part) follow the
reference ports TTUR ``fid.py`` and mseitzer/pytorch-fid ``calculate_frechet_distance``.
"""
from __future__ import annotations

import warnings

import numpy as np

from ganforge.errors import GanforgeError

# sqrtm is accepted when ||X @ X - A||_F / ||A||_F is below this; otherwise retry with an offset.
_SQRTM_RTOL = 1e-5


def as_float64(x, name: str, ndim: int | None = None) -> np.ndarray:
    """``x`` (torch tensor, numpy array or nested list) as a finite float64 numpy array.

    Shared input check of the metric functions: raises ``GanforgeError`` for a wrong number
    of dimensions, an empty array, or NaN/Inf values.
    """
    if hasattr(x, "detach"):  # torch.Tensor, without importing torch here
        x = x.detach().cpu().double().numpy()
    try:
        arr = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise GanforgeError(f"{name} is not numeric: {e}") from None
    if ndim is not None and arr.ndim != ndim:
        raise GanforgeError(f"{name} must have {ndim} dimensions, got shape {tuple(arr.shape)}")
    if arr.size == 0:
        raise GanforgeError(f"{name} is empty (shape {tuple(arr.shape)})")
    if not np.isfinite(arr).all():
        raise GanforgeError(f"{name} contains NaN or Inf values")
    return arr


def feature_stats(feats) -> tuple[np.ndarray, np.ndarray]:
    """Mean (D,) and unbiased covariance (D, D) of features (N, D), N >= 2, in float64."""
    feats = as_float64(feats, "features", ndim=2)
    if feats.shape[0] < 2:
        raise GanforgeError(f"need at least 2 feature vectors for a covariance, got {feats.shape[0]}")
    return feats.mean(axis=0), np.atleast_2d(np.cov(feats, rowvar=False))


def _relative_residual(root: np.ndarray, a: np.ndarray) -> float:
    norm = np.linalg.norm(a, "fro")
    return float(np.linalg.norm(root @ root - a, "fro") / norm) if norm > 0 else 0.0


def _sqrtm(a: np.ndarray) -> np.ndarray:
    # Imported here so that importing ganforge.metrics (e.g. for the toy mixtures) stays scipy-free.
    from scipy import linalg

    # scipy warns ("singular matrix") in exactly the cases the caller retries; keep quiet.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return linalg.sqrtm(a)


def frechet_distance(mu1, sigma1, mu2, sigma2, eps: float = 1e-6) -> float:
    """Frechet distance between N(mu1, sigma1) and N(mu2, sigma2), as a python float.

    ``mu*`` are (D,) vectors and ``sigma*`` (D, D) covariances (torch or numpy). When
    ``sigma1 @ sigma2`` is too close to singular for an accurate square root (e.g. fewer
    samples than feature dimensions), ``eps`` is added to both diagonals, as pytorch-fid does.
    Raises ``GanforgeError`` on NaN/Inf, mismatched shapes, or a square root with a
    non-negligible imaginary part.
    """
    mu1, mu2 = np.atleast_1d(as_float64(mu1, "mu1")), np.atleast_1d(as_float64(mu2, "mu2"))
    sigma1, sigma2 = np.atleast_2d(as_float64(sigma1, "sigma1")), np.atleast_2d(as_float64(sigma2, "sigma2"))
    if mu1.ndim != 1 or mu1.shape != mu2.shape:
        raise GanforgeError(f"mean vectors must be 1-D of one length, got {mu1.shape} and {mu2.shape}")
    d = mu1.shape[0]
    for name, s in (("sigma1", sigma1), ("sigma2", sigma2)):
        if s.shape != (d, d):
            raise GanforgeError(f"{name} must have shape {(d, d)} to match the means, got {s.shape}")

    product = sigma1 @ sigma2
    covmean = _sqrtm(product)
    if not np.isfinite(covmean).all() or _relative_residual(covmean, product) > _SQRTM_RTOL:
        offset = np.eye(d) * eps
        covmean = _sqrtm((sigma1 + offset) @ (sigma2 + offset))
    if np.iscomplexobj(covmean):
        # Round-off can give tiny imaginary parts; large ones mean the inputs are not
        # covariances (not symmetric positive semi-definite).
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            worst = float(np.max(np.abs(covmean.imag)))
            raise GanforgeError(
                f"matrix square root has imaginary component {worst:.3g}; are sigma1/sigma2 covariances?"
            )
        covmean = covmean.real
    if not np.isfinite(covmean).all():
        raise GanforgeError("matrix square root of sigma1 @ sigma2 is not finite")

    diff = mu1 - mu2
    fd = diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * np.trace(covmean)
    # The distance is >= 0; round-off on (nearly) equal inputs can give about -1e-12.
    return max(float(fd), 0.0)


def frechet_distance_from_features(a, b) -> float:
    """Frechet distance between Gaussians fitted (mean, unbiased covariance) to features a and b."""
    a = as_float64(a, "features a", ndim=2)
    b = as_float64(b, "features b", ndim=2)
    if a.shape[1] != b.shape[1]:
        raise GanforgeError(f"feature dimensions differ: a has {a.shape[1]}, b has {b.shape[1]}")
    return frechet_distance(*feature_stats(a), *feature_stats(b))
