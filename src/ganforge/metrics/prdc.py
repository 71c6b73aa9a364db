"""k-NN manifold metrics: precision/recall and density/coverage.

* Precision and recall: Kynkaanniemi et al., "Improved Precision and Recall Metric for
  Assessing Generative Models", NeurIPS 2019. Each set's manifold is the union of balls around
  its points with radius the distance to the point's k-th nearest neighbour (self excluded).
  precision = fraction of fake points inside the real manifold; recall = fraction of real
  points inside the fake manifold.
* Density and coverage: Naeem et al., "Reliable Fidelity and Diversity Metrics for Generative
  Models", ICML 2020. density = (1 / (k M)) * sum over fake points of the number of real balls
  containing them; coverage = fraction of real points whose ball contains some fake point.

Definitions follow clovaai/generative-evaluation-prdc (``compute_prdc``): the radius is the
(k+1)-th smallest distance counting the zero distance to itself, and membership is the strict
``distance < radius`` (NVlabs' precision/recall code uses ``<=``; the two differ only on exact
ties). So for two identical sets density is about 1 (each ball holds its centre and k - 1
neighbours), as Naeem et al. intend. Distances are computed with ``torch.cdist`` in float64, in
row chunks, so 10k x 10k feature sets never hold a full distance matrix.

The radii shrink as a set grows, so the four numbers compare like with like only between sets
of equal size, as both papers measure them; ``ganforge.metrics.evaluate`` draws equal-size
subsets and passes the real side's radii (``real_radii=knn_radii(real, k)``), which it caches.
"""
from __future__ import annotations

import torch

from ganforge.errors import GanforgeError
from ganforge.metrics.frechet import as_float64

# Rows per cdist block: a (chunk, N) float64 block for N = 10k is ~80 MB at 1024.
DEFAULT_CHUNK = 1024


def _features(real, fake, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    real = torch.from_numpy(as_float64(real, "real features", ndim=2))
    fake = torch.from_numpy(as_float64(fake, "fake features", ndim=2))
    if real.shape[1] != fake.shape[1]:
        raise GanforgeError(f"feature dimensions differ: real has {real.shape[1]}, fake has {fake.shape[1]}")
    if k < 1 or k >= min(len(real), len(fake)):
        raise GanforgeError(
            f"k must be in [1, n - 1] for both sets (got k={k}, {len(real)} real, {len(fake)} fake)"
        )
    return real, fake


def _knn_radii(x: torch.Tensor, k: int, chunk: int) -> torch.Tensor:
    """Distance from each row of x to its k-th nearest other row (self excluded)."""
    # The k+1-th smallest distance counting the point's zero distance to itself.
    blocks = (torch.cdist(x[i : i + chunk], x) for i in range(0, len(x), chunk))
    return torch.cat([block.kthvalue(k + 1, dim=1).values for block in blocks])


def knn_radii(x, k: int = 5, chunk: int = DEFAULT_CHUNK) -> torch.Tensor:
    """The k-NN ball radius of each row of features x (N, D), as :func:`prdc` uses them: float64 (N,)."""
    x = torch.from_numpy(as_float64(x, "features", ndim=2))
    if k < 1 or k >= len(x):
        raise GanforgeError(f"k must be in [1, n - 1] (got k={k} for {len(x)} features)")
    return _knn_radii(x, k, chunk)


def prdc(real, fake, k: int = 5, chunk: int = DEFAULT_CHUNK, real_radii=None) -> dict[str, float]:
    """Precision, recall, density and coverage of fake features (M, D) against real (N, D).

    Returns ``dict(precision=, recall=, density=, coverage=)`` of python floats. ``k`` is the
    neighbour count for the ball radii (clovaai's ``nearest_k``); ``chunk`` bounds memory.
    ``real_radii`` (N,) are the real balls' radii if already known (``knn_radii(real, k)``).
    """
    real, fake = _features(real, fake, k)
    if real_radii is None:
        real_radii = _knn_radii(real, k, chunk)
    else:
        real_radii = torch.from_numpy(as_float64(real_radii, "real radii", ndim=1))
        if len(real_radii) != len(real):
            raise GanforgeError(f"real_radii has {len(real_radii)} entries for {len(real)} real features")
    fake_radii = _knn_radii(fake, k, chunk)

    in_real_balls = torch.zeros(len(fake), dtype=torch.float64)  # per fake: how many real balls
    real_in_fake_manifold = torch.zeros(len(real), dtype=torch.bool)  # per real: in some fake ball
    nearest_fake = torch.full((len(real),), float("inf"), dtype=torch.float64)  # per real
    for i in range(0, len(fake), chunk):
        d = torch.cdist(fake[i : i + chunk], real)  # (chunk, N): fake rows, real columns
        in_real_balls[i : i + chunk] = (d < real_radii[None, :]).sum(dim=1, dtype=torch.float64)
        real_in_fake_manifold |= (d < fake_radii[i : i + chunk, None]).any(dim=0)
        nearest_fake = torch.minimum(nearest_fake, d.min(dim=0).values)

    return {
        "precision": float((in_real_balls > 0).double().mean()),
        "recall": float(real_in_fake_manifold.double().mean()),
        "density": float(in_real_balls.mean() / k),
        "coverage": float((nearest_fake < real_radii).double().mean()),
    }


def precision_recall(real, fake, k: int = 3, chunk: int = DEFAULT_CHUNK, real_radii=None) -> dict[str, float]:
    """Improved precision and recall (Kynkaanniemi et al. 2019; their default k=3)."""
    out = prdc(real, fake, k, chunk, real_radii)
    return {"precision": out["precision"], "recall": out["recall"]}


def density_coverage(real, fake, k: int = 5, chunk: int = DEFAULT_CHUNK, real_radii=None) -> dict[str, float]:
    """Density and coverage (Naeem et al. 2020; their default k=5)."""
    out = prdc(real, fake, k, chunk, real_radii)
    return {"density": out["density"], "coverage": out["coverage"]}
