"""2-D Gaussian-mixture toy problems and their mode-collapse metrics.

Mixtures as in PacGAN (Lin et al., "PacGAN: The power of two samples in generative adversarial
networks", NeurIPS 2018), following VEEGAN (Srivastava et al., NeurIPS 2017):

* ``ring8``: 8 equally weighted modes on the unit circle, std 0.01;
* ``grid25``: 25 equally weighted modes at {-4, -2, 0, 2, 4}^2, std 0.05.

``toy_modes`` scores samples with the VEEGAN / PacGAN protocol: a sample is *high quality* when
it lies within three standard deviations of its nearest mode; a mode is *captured* when it is
the nearest mode of at least one high-quality sample; ``kl`` is KL(p || uniform) of the histogram
p of high-quality samples over their nearest modes (PacGAN's mode-distribution KL).

The mixtures themselves (``TOY_MIXTURES``, ``sample_mixture``) are defined in the data layer,
``ganforge.data.toy``, and re-exported here: metrics sit above data, never below it.
"""
from __future__ import annotations

import math

import numpy as np

from ganforge.data.toy import TOY_MIXTURES, mixture, sample_mixture  # noqa: F401 - part of this API
from ganforge.errors import GanforgeError


def toy_modes(samples, name: str) -> dict:
    """Mode-collapse metrics of 2-D ``samples`` (N, 2) for the ``ring8`` or ``grid25`` mixture.

    Returns ``dict(modes=<modes captured>, n_modes=<modes in the mixture>, high_quality=<fraction
    of high-quality samples>, kl=<KL(p || uniform) in nats>)``. Empty modes contribute 0 to the
    KL (0 log 0 = 0), so it lies in [0, log n_modes]; with no high-quality sample at all, p is
    undefined and ``kl`` is reported as its worst value, log n_modes.
    """
    centers, std = mixture(name)
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
