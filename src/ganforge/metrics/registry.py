"""The metric registry: each metric names the inputs it needs and computes its result keys.

The :class:`~ganforge.metrics.evaluate.Evaluator` gathers only the inputs that the chosen
metrics need (features, logits, ... see ``INPUTS``), hands them over as one :class:`Inputs`
and merges the dicts the metrics return. A new metric is therefore one :func:`register` call,
not a branch in the Evaluator; the built-in ones are registered in ``evaluate.py``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from ganforge.errors import GanforgeError

# What a metric may ask for; the Evaluator computes each at most once per evaluation.
INPUTS = {
    "features": "the samples' features (inp.fake, float64 (N, D)) and the real reference (inp.ref: feats, mu, sigma)",
    "logits": "the extractor's classifier logits of the samples (inp.logits)",
    "digit_logits": "the built-in digit classifier's logits of the samples (inp.digit_logits)",
    "points": "2-D samples (inp.points)",
    "targets": "paired target images, one per output (inp.outputs, inp.targets)",
    "labels": "the class labels of the images the outputs were translated from (inp.labels)",
}
# Inputs that only paired evaluation (Evaluator.evaluate_pairs) can supply.
PAIRED_INPUTS = frozenset({"targets", "labels"})


@dataclass
class Inputs:
    """Everything a metric may read; fields a metric did not ask for stay None."""

    data: str = ""
    seed: int = 0
    fake: Any = None
    ref: dict | None = None
    logits: Any = None
    digit_logits: Any = None
    points: Any = None
    outputs: Any = None
    targets: Any = None
    labels: Any = None
    # (n, k) -> {"idx", "radii"}: a fixed subset of n real features and their k-NN radii, cached
    # by the Evaluator so that evaluating every N steps pays for them once.
    radii: Callable[[int, int], dict] | None = None


@dataclass(frozen=True)
class Metric:
    """A metric: ``compute(Inputs) -> dict`` of result keys, from the ``needs`` it declares."""

    name: str
    needs: frozenset
    compute: Callable[[Inputs], dict]
    about: str = ""
    kind: str = "image"  # the data it measures: "image" or "points"
    title: str = ""  # its long name, for messages
    k: int | None = None  # k-NN metrics: the neighbour count; they need more than k samples a side
    keys: tuple = field(default=())  # the result keys it returns, for documentation

    def __post_init__(self):
        object.__setattr__(self, "needs", frozenset(self.needs))  # accept any iterable of names

    @property
    def paired(self) -> bool:
        """True when it compares each output with its own target or label (``evaluate_pairs`` only)."""
        return bool(self.needs & PAIRED_INPUTS)


REGISTRY: dict[str, Metric] = {}


def register(metric: Metric) -> Metric:
    """Add ``metric`` to the registry (its name must be new and lower-case)."""
    unknown = set(metric.needs) - set(INPUTS)
    if unknown:
        raise GanforgeError(f"metric {metric.name!r} needs unknown inputs {sorted(unknown)}; known: {', '.join(INPUTS)}")
    if metric.name != metric.name.lower() or metric.name in REGISTRY:
        raise GanforgeError(f"metric name {metric.name!r} is taken or not lower-case")
    if metric.kind not in ("image", "points"):
        raise GanforgeError(f"metric {metric.name!r}: kind must be image or points, got {metric.kind!r}")
    REGISTRY[metric.name] = metric
    return metric


__all__ = ["INPUTS", "Inputs", "Metric", "PAIRED_INPUTS", "REGISTRY", "register"]
