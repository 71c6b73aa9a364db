"""Diversity of a multimodal translator: how different are the outputs for one input?

For each input, K outputs (K styles or codes drawn from the prior, ``translate_styles``); the
diversity is the mean, over inputs, of the mean distance between the K(K-1)/2 pairs of outputs of
that input (BicycleGAN's and MUNIT's measure, there with LPIPS, which is not available offline).
Three distances, by domain:

- ``l1``: mean absolute pixel difference, images scaled to [0, 1] (any domain);
- ``colour``: the distance between the two images' colours, for coloured digits
  (``mnist-color``): each image's background (median of its 1-pixel border) and ink (mean of
  the 10% of pixels farthest from the background) as RGB in [0, 1]; the distance is the mean of
  the two Euclidean RGB distances (0: same colours; two different palette colours are >= 1 apart);
- ``features``: Euclidean distance between the images' features (Inception pool features for
  photographs), given an extractor.

A one-to-one translator (pix2pix, CycleGAN) has diversity 0 by construction; a translator that
learned to ignore its code (pix2pix with noise) measures near 0 too, which is the point of the
measure. ``pair_reference`` gives the same distance between random pairs of real images of the
target domain: the diversity of the data itself, a scale for the figures.
"""
from __future__ import annotations

import torch

INK_FRACTION = 0.1


def _unit(x: torch.Tensor) -> torch.Tensor:
    """Images as floats in [0, 1], from uint8 or [-1, 1]."""
    return x.float() / 255 if x.dtype == torch.uint8 else (x.float().clamp(-1, 1) + 1) / 2


def colours(x: torch.Tensor) -> torch.Tensor:
    """(M, 3, H, W) images -> (M, 2, 3): background and ink colour, RGB in [0, 1]."""
    u = _unit(x)
    if u.shape[1] == 1:
        u = u.expand(-1, 3, -1, -1)
    border = torch.cat([u[:, :, 0], u[:, :, -1], u[:, :, 1:-1, 0], u[:, :, 1:-1, -1]], 2)
    bg = border.median(2).values  # (M, 3)
    flat = u.flatten(2)  # (M, 3, P)
    dist = (flat - bg[:, :, None]).norm(dim=1)  # (M, P)
    k = max(1, int(INK_FRACTION * flat.shape[-1]))
    idx = dist.topk(k, dim=1).indices
    ink = torch.gather(flat, 2, idx[:, None].expand(-1, 3, -1)).mean(2)
    return torch.stack([bg, ink], 1)


def _pairs(k: int):
    i, j = torch.triu_indices(k, k, 1)
    return i, j


def pairwise_mean(codes: torch.Tensor, dist) -> float:
    """codes (N, K, ...) -> mean over inputs and over the K(K-1)/2 pairs of ``dist(a, b)`` (per pair)."""
    n, k = codes.shape[:2]
    if k < 2:
        raise ValueError(f"diversity needs at least 2 outputs per input, got {k}")
    i, j = _pairs(k)
    return float(dist(codes[:, i], codes[:, j]).mean())


def l1_diversity(outputs: torch.Tensor) -> float:
    """Mean pairwise pixel L1 of (N, K, C, H, W) outputs, in [0, 1] units."""
    return pairwise_mean(_unit(outputs).flatten(2), lambda a, b: (a - b).abs().mean(-1))


def _colour_distance(a, b):
    return (a - b).norm(dim=-1).mean(-1)  # Euclidean in RGB, averaged over background and ink


def colour_diversity(outputs: torch.Tensor) -> float:
    """Mean pairwise colour distance (see module docstring) of (N, K, 3, H, W) outputs."""
    n, k = outputs.shape[:2]
    c = colours(outputs.flatten(0, 1)).view(n, k, 2, 3)
    return pairwise_mean(c, _colour_distance)


def feature_diversity(outputs: torch.Tensor, extract) -> float:
    """Mean pairwise Euclidean distance of ``extract(images) -> (M, D)`` features."""
    n, k = outputs.shape[:2]
    f = extract(outputs.flatten(0, 1)).float().view(n, k, -1)
    return pairwise_mean(f, lambda a, b: (a - b).norm(dim=-1))


def pair_reference(images: torch.Tensor, n_pairs: int = 500, seed: int = 0) -> torch.Tensor:
    """(n_pairs, 2, C, H, W): random pairs of distinct real images, for the data's own diversity."""
    g = torch.Generator().manual_seed(seed)
    m = len(images)
    i = torch.randint(m, (n_pairs,), generator=g)
    j = (i + 1 + torch.randint(m - 1, (n_pairs,), generator=g)) % m
    return torch.stack([images[i], images[j]], 1)


def diversity(outputs: torch.Tensor, colour: bool = False, extract=None) -> dict:
    """The diversity figures of (N, K, C, H, W) outputs: ``diversity_l1`` always, ``diversity_colour``
    with ``colour``, ``diversity_features`` with an ``extract`` function."""
    out = {"diversity_l1": l1_diversity(outputs)}
    if colour:
        out["diversity_colour"] = colour_diversity(outputs)
    if extract is not None:
        out["diversity_features"] = feature_diversity(outputs, extract)
    return out
