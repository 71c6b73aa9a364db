"""G's noise prior (``z_dist``), shared by the models whose papers or authors' code drew z from a
uniform rather than a normal distribution (GAN, InfoGAN)."""
from __future__ import annotations

from ..errors import ConfigError

Z_DISTS = ("normal", "uniform")


def check_z_dist(value) -> None:
    if value not in Z_DISTS:
        raise ConfigError(f"z_dist must be normal or uniform, got {value!r}")


def draw_noise(model, n: int, dim: int, dist: str, bound: float = 1.0, generator=None):
    """``n`` noise vectors of size ``dim`` drawn through ``model``'s rand/randn (so under data
    parallelism each process gets its slice of the global batch): N(0, I), or each coordinate
    uniform in [-bound, bound]."""
    if dist == "uniform":
        return (model.rand(n, dim, generator=generator) * 2 - 1) * bound
    return model.randn(n, dim, generator=generator)
