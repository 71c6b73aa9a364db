"""Paired metrics for image-to-image translation: an output compared with its own target.

Images are (N, C, H, W), either uint8 (0..255) or floats in [-1, 1] (a generator's tanh range);
both are mapped to [0, 1] first (``x / 255`` or ``(x + 1) / 2``), so every value below is in
[0, 1] pixel units whatever the input type, and the two sides of a pair may differ in type.
Everything is computed in float64.

* ``l1(a, b)``: mean absolute error in [0, 1] units (Pix2Pix's L1 term, Isola et al. 2017).
* ``psnr(a, b, data_range=1.0, max_db=100.0)``: mean over images of each image's PSNR in dB,
  ``10 log10(data_range^2 / MSE)``. An identical pair (MSE 0) counts as ``max_db`` instead of
  inf, so one perfect image does not make the mean infinite and records stay valid JSON; 100 dB
  is far above what any non-identical pair can reach at 8 bits (one grey level off in one pixel
  of a 28x28 image is ~77 dB).
* ``ssim(a, b, data_range=1.0)``: SSIM (Wang et al., "Image quality assessment: from error
  visibility to structural similarity", IEEE TIP 2004) with an 11x11 Gaussian window of sigma
  1.5, K1 = 0.01, K2 = 0.03, population (not sample) statistics, per channel, averaged over the
  positions where the whole window fits, then over channels and images: the value of
  scikit-image's ``structural_similarity(a, b, gaussian_weights=True, sigma=1.5,
  use_sample_covariance=False, data_range=1.0, channel_axis=0)`` per image, averaged.
* ``label_preservation(logits, labels)``: the accuracy of a classifier's ``logits`` (N, K) on
  translated images against the labels (N,) of the images they were translated from.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ganforge.errors import GanforgeError

SSIM_SIGMA = 1.5
SSIM_RADIUS = 5  # int(3.5 * sigma + 0.5): scikit-image's (scipy's) Gaussian truncated at 3.5 sigma -> 11 taps
SSIM_K1, SSIM_K2 = 0.01, 0.03
# Float images may overshoot [-1, 1] by rounding only; anything more is a unit mistake
# (e.g. 0..255 floats) that would silently give meaningless scores.
_RANGE_SLACK = 1e-4


def to_unit(x, name: str = "images") -> torch.Tensor:
    """Images (N, C, H, W), uint8 or floats in [-1, 1], as float64 in [0, 1]."""
    t = torch.as_tensor(x.detach().cpu() if torch.is_tensor(x) else np.asarray(x))
    if t.ndim != 4 or t.numel() == 0:
        raise GanforgeError(f"{name} must be non-empty (N, C, H, W) images, got shape {tuple(t.shape)}")
    if t.dtype == torch.uint8:
        return t.double() / 255.0
    if not t.is_floating_point():
        raise GanforgeError(f"{name} must be uint8 or floats in [-1, 1], got {t.dtype}")
    t = t.double()
    if not torch.isfinite(t).all():
        raise GanforgeError(f"{name} contain NaN or Inf values")
    lo, hi = float(t.min()), float(t.max())
    if lo < -1 - _RANGE_SLACK or hi > 1 + _RANGE_SLACK:
        raise GanforgeError(f"float {name} must lie in [-1, 1], got values in [{lo:.4g}, {hi:.4g}] "
                            "(pass 0..255 images as uint8)")
    return (t + 1) / 2


def _pair(a, b) -> tuple[torch.Tensor, torch.Tensor]:
    a, b = to_unit(a, "outputs"), to_unit(b, "targets")
    if a.shape != b.shape:
        raise GanforgeError(f"outputs and targets must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    return a, b


def l1(a, b) -> float:
    """Mean absolute difference of two image sets in [0, 1] pixel units (see the module docstring)."""
    a, b = _pair(a, b)
    return float((a - b).abs().mean())


def psnr(a, b, data_range: float = 1.0, max_db: float = 100.0) -> float:
    """Mean over images of per-image PSNR in dB; an identical pair counts as ``max_db``."""
    if not data_range > 0:
        raise GanforgeError(f"data_range must be positive, got {data_range}")
    a, b = _pair(a, b)
    mse = ((a - b) ** 2).flatten(1).mean(1)
    with np.errstate(divide="ignore"):
        db = 10 * np.log10(data_range ** 2 / mse.numpy())
    return float(np.minimum(db, max_db).mean())


def gaussian_window(sigma: float = SSIM_SIGMA, radius: int = SSIM_RADIUS) -> torch.Tensor:
    """The normalised 1-D Gaussian taps (2 * radius + 1,) in float64; the 2-D window is its outer product."""
    x = torch.arange(-radius, radius + 1, dtype=torch.float64)
    w = torch.exp(-x ** 2 / (2 * sigma ** 2))
    return w / w.sum()


def ssim_per_image(a, b, data_range: float = 1.0) -> torch.Tensor:
    """SSIM of each pair (N,), averaged over channels and window positions (see ``ssim``)."""
    a, b = _pair(a, b)
    n, c, h, w = a.shape
    size = 2 * SSIM_RADIUS + 1
    if h < size or w < size:
        raise GanforgeError(f"ssim needs images of at least {size}x{size} pixels, got {h}x{w}")
    g = gaussian_window()

    def blur(x):  # separable Gaussian, 'valid' positions only: the window never leaves the image,
        x = x.reshape(n * c, 1, h, w)  # so no border rule is needed (scikit-image crops them too)
        x = F.conv2d(x, g.view(1, 1, 1, -1))
        return F.conv2d(x, g.view(1, 1, -1, 1))

    mu_a, mu_b = blur(a), blur(b)
    # Population (weighted) variances and covariance: E[xy] - E[x]E[y] under the window.
    var_a = blur(a * a) - mu_a ** 2
    var_b = blur(b * b) - mu_b ** 2
    cov = blur(a * b) - mu_a * mu_b
    c1, c2 = (SSIM_K1 * data_range) ** 2, (SSIM_K2 * data_range) ** 2
    s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a ** 2 + mu_b ** 2 + c1) * (var_a + var_b + c2))
    return s.reshape(n, -1).mean(1)


def ssim(a, b, data_range: float = 1.0) -> float:
    """Mean SSIM over images (Wang et al. 2004; window and constants in the module docstring)."""
    if not data_range > 0:
        raise GanforgeError(f"data_range must be positive, got {data_range}")
    return float(ssim_per_image(a, b, data_range).mean())


def label_preservation(logits, labels) -> float:
    """Accuracy of ``logits`` (N, K) against ``labels`` (N,): does a translation keep the class?"""
    logits = torch.as_tensor(logits.detach().cpu() if torch.is_tensor(logits) else np.asarray(logits))
    labels = torch.as_tensor(labels.detach().cpu() if torch.is_tensor(labels) else np.asarray(labels))
    if logits.ndim != 2 or len(logits) == 0:
        raise GanforgeError(f"logits must be (N, K) with N >= 1, got shape {tuple(logits.shape)}")
    if labels.shape != (len(logits),):
        raise GanforgeError(f"labels must be (N,) = ({len(logits)},) to match the logits, got {tuple(labels.shape)}")
    if labels.is_floating_point() or labels.dtype == torch.bool:
        raise GanforgeError(f"labels must be integer class indices, got {labels.dtype}")
    if not torch.isfinite(logits.double()).all():
        raise GanforgeError("logits contain NaN or Inf values")
    if int(labels.min()) < 0 or int(labels.max()) >= logits.shape[1]:
        raise GanforgeError(f"labels must lie in [0, {logits.shape[1] - 1}], got {int(labels.min())}..{int(labels.max())}")
    return float((logits.argmax(1) == labels.long()).double().mean())


def _masked(a, b, mask) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    a, b = _pair(a, b)
    m = torch.as_tensor(mask.detach().cpu() if torch.is_tensor(mask) else np.asarray(mask)).double()
    if m.ndim != 4 or m.shape[0] != a.shape[0] or m.shape[-2:] != a.shape[-2:] or m.shape[1] not in (1, a.shape[1]):
        raise GanforgeError(f"mask must be (N, 1 or C, H, W) like the images {tuple(a.shape)}, got {tuple(m.shape)}")
    m = m.expand_as(a)
    if (m.flatten(1).sum(1) == 0).any():
        raise GanforgeError("mask selects no pixel of some image")
    return a, b, m


def l1_in(a, b, mask) -> float:
    """Mean absolute difference over the pixels where ``mask`` (N, 1, H, W) is 1 (an inpainted hole),
    in [0, 1] units, per image then averaged."""
    a, b, m = _masked(a, b, mask)
    return float((((a - b).abs() * m).flatten(1).sum(1) / m.flatten(1).sum(1)).mean())


def psnr_in(a, b, mask, data_range: float = 1.0, max_db: float = 100.0) -> float:
    """Mean over images of the PSNR of the pixels where ``mask`` is 1 (see ``psnr``)."""
    a, b, m = _masked(a, b, mask)
    mse = ((a - b) ** 2 * m).flatten(1).sum(1) / m.flatten(1).sum(1)
    with np.errstate(divide="ignore"):
        db = 10 * np.log10(data_range ** 2 / mse.numpy())
    return float(np.minimum(db, max_db).mean())


__all__ = ["gaussian_window", "l1", "l1_in", "label_preservation", "psnr", "psnr_in", "ssim", "ssim_per_image",
           "to_unit"]
