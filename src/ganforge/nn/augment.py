"""Differentiable image transforms, for losses that must not depend on a nuisance such as slant."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

# The largest rotation (degrees), shear, log-scale per axis and shift (fraction of half the image)
# at strength 1: small enough that a digit keeps its identity (a 9 stays a 9), large enough to
# change the slant and width of a stroke by as much as the writers of MNIST do.
MAX_ROTATE, MAX_SHEAR, MAX_LOG_SCALE, MAX_SHIFT = 15.0, 0.25, 0.15, 0.1


def random_affine(x: torch.Tensor, u: torch.Tensor, strength: float = 1.0) -> torch.Tensor:
    """Warp each image of ``x`` (N, C, H, W) by its own random affine map; gradients flow to ``x``.

    ``u`` (N, 6) holds uniform draws in [0, 1) (the caller draws them, so that its random streams,
    seeding and DDP slicing apply): rotation, shear, x and y log-scale, x and y shift, each
    uniform in [-max, max] * ``strength``. Pixels pulled from outside the image repeat its border,
    which for digits is background.
    """
    if u.shape != (len(x), 6):
        raise ValueError(f"random_affine needs (N, 6) uniform draws for {len(x)} images, got {tuple(u.shape)}")
    s = (2 * u.to(x.dtype) - 1) * strength
    angle = s[:, 0] * math.radians(MAX_ROTATE)
    shear = s[:, 1] * MAX_SHEAR
    sx, sy = torch.exp(s[:, 2] * MAX_LOG_SCALE), torch.exp(s[:, 3] * MAX_LOG_SCALE)
    cos, sin = torch.cos(angle), torch.sin(angle)
    # theta = rotation @ shear @ scale, then the shift; it maps output to input coordinates.
    theta = torch.stack([torch.stack([cos * sx, (cos * shear - sin) * sy, s[:, 4] * MAX_SHIFT], 1),
                         torch.stack([sin * sx, (sin * shear + cos) * sy, s[:, 5] * MAX_SHIFT], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def random_shift(x: torch.Tensor, offsets: torch.Tensor, k: int, fill: float = -1.0) -> torch.Tensor:
    """Translate each image of ``x`` (N, C, H, W) by a whole number of pixels in [-k, k] per axis.

    ``offsets`` (N, 2) holds integers in [0, 2k] (drawn by the caller, as for ``random_affine``):
    the row and column shift plus k. Pixels moved in from outside are ``fill`` (background in
    [-1, 1]). ``k`` = 0 returns ``x`` unchanged.
    """
    if k == 0:
        return x
    n, _, h, w = x.shape
    pad = F.pad(x, (k, k, k, k), value=fill)
    dy, dx = offsets.unbind(1)
    rows = (torch.arange(h, device=x.device) + dy[:, None])[:, None, :, None]
    cols = (torch.arange(w, device=x.device) + dx[:, None])[:, None, None, :]
    b = torch.arange(n, device=x.device)[:, None, None, None]
    c = torch.arange(x.shape[1], device=x.device)[None, :, None, None]
    return pad[b, c, rows, cols]
