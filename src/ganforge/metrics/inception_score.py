"""Inception Score from classifier logits.

Salimans et al., "Improved Techniques for Training GANs", NeurIPS 2016:
IS = exp(E_x KL(p(y|x) || p(y))), computed per split with p(y) the split's mean prediction,
reported as mean and std over splits. Numerics follow torch-fidelity ``metric_isc.py``
(float64 softmax / log-softmax, rows shuffled with ``RandomState(2020)``, split boundaries
``i * N // splits``, population std).
"""
from __future__ import annotations

import numpy as np

from ganforge.errors import GanforgeError
from ganforge.metrics.frechet import as_float64


def _logsumexp(x: np.ndarray, axis: int) -> np.ndarray:
    peak = x.max(axis=axis, keepdims=True)  # shift by the max so exp cannot overflow
    return peak + np.log(np.exp(x - peak).sum(axis=axis, keepdims=True))


def inception_score(logits, splits: int = 10, shuffle: bool = True, seed: int = 2020) -> tuple[float, float]:
    """(mean, std) over ``splits`` of exp(mean KL(p(y|x) || p(y))) for logits (N, C).

    Softmax is applied inside; pass logits, not probabilities. ``shuffle``/``seed`` permute the
    rows before splitting, as torch-fidelity does by default, so ordered inputs (e.g. grouped
    by class) do not bias the per-split marginals.
    """
    logits = as_float64(logits, "logits", ndim=2)
    n = logits.shape[0]
    if not 1 <= splits <= n:
        raise GanforgeError(f"splits must be between 1 and the number of samples ({n}), got {splits}")
    if shuffle:
        logits = logits[np.random.RandomState(seed).permutation(n)]

    log_p = logits - _logsumexp(logits, axis=1)
    p = np.exp(log_p)
    scores = []
    for i in range(splits):
        lo, hi = i * n // splits, (i + 1) * n // splits
        # log p(y) in log space: stays finite when a class's probabilities all underflow to 0.
        log_marginal = _logsumexp(log_p[lo:hi], axis=0) - np.log(hi - lo)
        kl = (p[lo:hi] * (log_p[lo:hi] - log_marginal)).sum(axis=1)
        scores.append(np.exp(kl.mean()))
    return float(np.mean(scores)), float(np.std(scores))
