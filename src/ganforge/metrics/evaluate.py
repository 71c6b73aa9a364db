"""Evaluating a generator: samples -> features -> metrics, against cached reference statistics.

``ganforge eval DIR`` (through ``ganforge.run_eval``) and ``--eval-every N`` both run an
:class:`Evaluator`. The real side of
every comparison (features, their mean and covariance, classifier logits) is computed once per
(data set, images, image size, extractor) and cached as ``.npz`` (atomic write, loaded with
``allow_pickle=False``) under ``$GANFORGE_CACHE`` or ``~/.cache/ganforge/stats``.

FD and KID use every real image. Precision/recall and density/coverage depend on set sizes
through their k-NN radii, so they compare n samples with a fixed random subset of n real images
(both sides cut to the smaller size if the data set has fewer than n; the result's ``prdc_n``),
whose radii are cached beside the reference statistics and kept by the Evaluator.

Metrics (``--metrics``):

=========  ==========================================================================
fd         Frechet distance of the features (FID with ``--features inception``)
kid        Kernel Inception Distance, mean and std over subsets (Binkowski et al. 2018)
is         Inception Score of the extractor's logits (Salimans et al. 2016)
pr         precision and recall, k = 3 (Kynkaanniemi et al. 2019), on equal-size sets
dc         density and coverage, k = 5 (Naeem et al. 2020), on equal-size sets
classes    classes covered and KL of the predicted-class histogram from uniform
modes      modes captured, high-quality fraction, KL (ring8 / grid25; VEEGAN, PacGAN)
=========  ==========================================================================
"""
from __future__ import annotations

import hashlib
import io
import os
import time
from pathlib import Path

import numpy as np
import torch

from ..errors import ConfigError, GanforgeError, closest
from .frechet import feature_stats, frechet_distance
from .inception_score import inception_score
from .kid import kid, kid_subset_size
from .prdc import density_coverage, knn_radii, precision_recall
from .toy import TOY_MIXTURES, toy_modes

METRICS = ("fd", "kid", "is", "pr", "dc", "classes", "modes")
DIGIT_DATA = ("mnist", "digits")
TOY_N = 2500  # the VEEGAN / PacGAN protocol's sample count
# A class counts as covered when it gets at least this share of what a uniform spread would give
# it (10% of n / n_classes): a stray misclassification does not cover a class.
MIN_CLASS_SHARE = 0.1
PRDC_K = {"pr": 3, "dc": 5}  # the papers' neighbour counts


def cache_dir() -> Path:
    env = os.environ.get("GANFORGE_CACHE")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "ganforge" / "stats"


def default_metrics(kind: str, data: str) -> list[str]:
    if kind == "points":
        return ["modes"]
    if _base(data) in DIGIT_DATA:
        return ["fd", "kid", "pr", "dc", "classes"]
    return ["fd", "kid", "pr", "dc"]


def default_features(data: str) -> str:
    return "digits" if _base(data) in DIGIT_DATA else "inception"


def _base(data: str) -> str:
    """``mnist[:8000]`` -> ``mnist``: a part of a data set is measured like the whole."""
    from ..data import split_name

    return split_name(data)[0]


def parse_metrics(text, kind: str = "image", data: str = "") -> list[str]:
    """``"fd,kid"`` (or a list, or None/"auto" for the defaults) -> checked metric names."""
    if text is None or text == "auto" or text == []:
        return default_metrics(kind, data)
    names = [m.strip().lower() for m in (text.split(",") if isinstance(text, str) else text) if m.strip()]
    if not names:
        raise ConfigError("no metrics named; choose from " + ", ".join(METRICS))
    for m in names:
        if m not in METRICS:
            raise ConfigError(f"unknown metric {m!r}{closest(m, METRICS)}; choose from {', '.join(METRICS)}")
    if kind == "points" and set(names) - {"modes"}:
        raise ConfigError(f"2-D point data is measured with the modes metric, not {', '.join(set(names) - {'modes'})}")
    if kind == "image" and "modes" in names:
        raise ConfigError("the modes metric is for the 2-D mixtures ring8 and grid25; for images use classes")
    return list(dict.fromkeys(names))


# ---------------------------------------------------------------------------- class metrics
def class_metrics(logits, n_classes: int | None = None, min_share: float = MIN_CLASS_SHARE) -> dict:
    """Classes covered and KL(predicted-class histogram || uniform) in nats, from logits (N, C).

    A class is covered when at least ``min_share * N / C`` samples are classified as it. The KL
    is 0 for a perfectly even spread and log C when every sample falls in one class.
    """
    logits = torch.as_tensor(logits)
    if logits.ndim != 2 or len(logits) == 0:
        raise GanforgeError(f"logits must be (N, C) with N >= 1, got shape {tuple(logits.shape)}")
    c = n_classes or logits.shape[1]
    counts = torch.bincount(logits.argmax(1), minlength=c).double()
    p = counts / counts.sum()
    nz = p > 0
    kl = float((p[nz] * (p[nz] * c).log()).sum())
    covered = int((counts >= max(1.0, min_share * len(logits) / c)).sum())
    return {"classes": covered, "n_classes": c, "class_kl": kl}


def conditional_accuracy(model, n_per_class: int = 100, features: str = "digits", data: str | None = None,
                         seed: int = 0, use_ema: bool = True, per_class: bool = False, device="cpu"):
    """The fraction of samples asked for class y that the digit classifier labels y.

    ``model`` is any class-conditional ganforge model: ``model.sample(n, seed=..., label=y,
    use_ema=...)`` must return images of class ``y``. The classifier is the built-in one for
    ``data`` (default: the model's data set, ``model.cfg["data"]``). Returns a float in [0, 1];
    with ``per_class=True``, ``(accuracy, [accuracy of class 0, 1, ...])``.
    """
    if features != "digits":
        raise ConfigError("conditional accuracy uses the digit classifier: features must be 'digits'")
    from .features import DigitsExtractor

    cfg = getattr(model, "cfg", {}) or {}
    data = data or cfg.get("data")
    n_classes = getattr(getattr(model, "spec", None), "n_classes", None) or 10
    ex = DigitsExtractor(data, device)
    right = []
    for y in range(n_classes):
        x = model.sample(n_per_class, seed=seed + y, use_ema=use_ema, label=y)
        _, logits = ex.extract(x)
        right.append(float((logits.argmax(1) == y).float().mean()))
    acc = float(np.mean(right))
    return (acc, right) if per_class else acc


# ---------------------------------------------------------------------------- reference stats
def _data_id(x: torch.Tensor) -> str:
    return hashlib.sha1(x.contiguous().numpy().tobytes()).hexdigest()[:12]


def _save_npz(path: Path, arrays: dict) -> None:
    from ..files import atomic_write_bytes

    buf = io.BytesIO()
    np.savez(buf, **arrays)
    atomic_write_bytes(path, buf.getvalue())


def _load_npz(path: Path) -> dict | None:
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (OSError, ValueError, EOFError, KeyError):
        return None  # a damaged cache entry is simply recomputed


def reference_stats(name: str, images: torch.Tensor, extractor, progress: bool = False, cache: bool = True) -> dict:
    """Features, logits, mean and covariance of real ``images`` (uint8), cached on disk.

    The cache key is the data set name, the number and size of images, a hash of their bytes and
    the extractor's key, so a different split, size or network never reuses a stale entry.
    Returns a dict with ``feats``, ``mu``, ``sigma``, optionally ``logits``, ``path`` and
    ``cached`` (True when read from the cache).
    """
    size = "x".join(str(s) for s in images.shape[1:])
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)
    key = f"{safe}-{len(images)}-{size}-{_data_id(images)}-{extractor.key}"
    path = cache_dir() / f"{key}.npz"
    if cache and path.is_file():
        got = _load_npz(path)
        if got is not None and {"feats", "mu", "sigma"} <= set(got):
            return {**got, "path": path, "cached": True}
    feats, logits = extractor.extract(images, progress=progress and len(images) >= 2000, desc=f"features of {name}")
    mu, sigma = feature_stats(feats)
    out = {"feats": feats.numpy().astype(np.float32), "mu": mu, "sigma": sigma}
    if logits is not None:
        out["logits"] = logits.numpy().astype(np.float32)
    if cache:
        try:
            _save_npz(path, out)
        except OSError:
            pass  # a read-only cache costs time, not correctness
    return {**out, "path": path, "cached": False}


def equal_size_subset(total: int, n: int, seed: int = 0) -> torch.Tensor:
    """A fixed random subset of ``n`` of ``range(total)``, sorted; all of it when ``n >= total``."""
    if n >= total:
        return torch.arange(total)
    return torch.randperm(total, generator=torch.Generator().manual_seed(seed))[:n].sort().values


def reference_radii(ref: dict, n: int, k: int, seed: int = 0, cache: bool = True) -> dict:
    """A fixed random subset of ``n`` of ``ref``'s real features and their k-NN radii.

    Returns ``idx`` (the rows of ``ref["feats"]``) and ``radii``. Cached on disk beside ``ref``'s
    own entry (when it has a ``path``), keyed by ``n``, ``k`` and ``seed``.
    """
    feats = ref["feats"]
    if not k < n <= len(feats):
        raise GanforgeError(f"k-NN radii need k < n <= {len(feats)} real features, got k={k}, n={n}")
    idx = equal_size_subset(len(feats), n, seed).numpy()
    path = Path(ref["path"]).with_name(f"{Path(ref['path']).stem}-radii-n{n}-k{k}-s{seed}.npz") \
        if ref.get("path") else None
    if cache and path is not None and path.is_file():
        got = _load_npz(path)
        if got is not None and "radii" in got and np.array_equal(got.get("idx"), idx):
            return {"idx": idx, "radii": got["radii"]}
    out = {"idx": idx, "radii": knn_radii(feats[idx], k).numpy()}
    if cache and path is not None:
        try:
            _save_npz(path, out)
        except OSError:
            pass  # a read-only cache costs time, not correctness
    return out


# ---------------------------------------------------------------------------- the evaluator
def _sample_batches(model, n: int, seed: int, use_ema: bool, chunk: int = 500):
    for i in range(0, n, chunk):
        # One seed per chunk: the same (n, seed) always gives the same samples.
        yield model.sample(min(chunk, n - i), seed=seed * 1_000_003 + i, use_ema=use_ema)


class Evaluator:
    """Measures generators of one data set with fixed metrics, features and sample count.

    ``real`` is the data set's images (uint8 (N, C, H, W), as the model was trained on them) or,
    for the 2-D mixtures, ignored. The extractor and the reference statistics are built on first
    use and kept, so evaluating every N training steps pays for them once.
    """

    def __init__(self, data: str, kind: str, real: torch.Tensor | None = None, metrics=None,
                 features: str | None = None, n: int = 10_000, seed: int = 0, device="cpu",
                 inception_weights=None, download: bool = False, progress: bool = False, ref_name: str | None = None):
        self.data, self.kind, self.real = data, kind, real
        self.metrics = parse_metrics(metrics, kind, data)
        if kind == "points" and _base(data) not in TOY_MIXTURES:
            raise ConfigError(f"the modes metric knows the mixtures {', '.join(TOY_MIXTURES)}, not {data!r}")
        self.features = features or default_features(data)
        self.n, self.seed, self.device, self.progress = int(n), int(seed), device, progress
        self.ref_name = ref_name or data
        self._opts = {"inception_weights": inception_weights, "download": download}
        self._ex, self._ref, self._digits, self._digits_ref = None, None, None, None
        self._radii: dict = {}  # (n, k) -> reference_radii(...): evaluating every N steps pays once
        if n < 2:
            raise ConfigError(f"--n must be at least 2, got {n}")
        smallest = min(self.n, len(real)) if real is not None else self.n
        for metric, k in PRDC_K.items():
            if metric in self.metrics and smallest <= k:
                raise ConfigError(f"{metric} needs more than k = {k} samples on each side, got {smallest}: "
                                  f"raise --n or drop {metric}")

    # extractors and references, built lazily
    def extractor(self):
        if self._ex is None:
            from .features import get_extractor

            self._ex = get_extractor(self.features, self.data, self.device, **self._opts)
        return self._ex

    def _needs_features(self) -> bool:
        return bool(set(self.metrics) & {"fd", "kid", "pr", "dc", "is"})

    def settings(self) -> dict:
        s = {"data": self.data, "metrics": ",".join(self.metrics), "n": self.n, "seed": self.seed}
        if self.kind == "image":
            s["features"] = self.features
            if self._needs_features():
                s["extractor"] = self.extractor().key
            if self.real is not None:
                s["n_ref"] = len(self.real)
        return s

    def reference(self) -> dict:
        if self._ref is None:
            if self.real is None:
                raise GanforgeError("no real images to compare with")
            self._ref = reference_stats(self.ref_name, self.real, self.extractor(), self.progress)
        return self._ref

    def evaluate(self, model, use_ema: bool = False) -> dict:
        """Metrics of ``model``'s samples (see :meth:`evaluate_samples`)."""
        if self.kind == "points":
            return self.evaluate_samples(model.sample(self.n, seed=self.seed, use_ema=use_ema))
        return self.evaluate_samples(_sample_batches(model, self.n, self.seed, use_ema), total=self.n)

    def evaluate_samples(self, samples, total: int | None = None) -> dict:
        """Metrics of samples: a tensor (images in [-1, 1] or uint8, or 2-D points) or batches of images."""
        if self.kind == "points":
            r = toy_modes(samples, _base(self.data))
            return {"modes": r["modes"], "n_modes": r["n_modes"], "high_quality": round(r["high_quality"], 6),
                    "mode_kl": round(r["kl"], 6)}
        out: dict = {}
        t0 = time.time()
        feats = logits = None
        digit_logits = None
        if torch.is_tensor(samples):
            total = len(samples)
        if self._needs_features():
            ex = self.extractor()
            if "is" in self.metrics and not ex.has_logits:  # say so before the slow part
                raise GanforgeError(f"the {ex.key} extractor has no classifier head, so no Inception Score: "
                                    "use torch-fidelity's weights, or drop is")
            want_digits = "classes" in self.metrics and ex.name != "digits"
            if want_digits:
                samples = list(samples) if not torch.is_tensor(samples) else samples
            feats, logits = ex.extract(samples, total=total, progress=self.progress and (total or 0) >= 2000,
                                       desc="features of samples")
            if "classes" in self.metrics:
                digit_logits = logits if ex.name == "digits" else self._digit_extractor().extract(samples)[1]
        elif "classes" in self.metrics:
            digit_logits = self._digit_extractor().extract(samples, total=total)[1]

        if feats is not None:
            ref = self.reference()
            real = ref["feats"]
            fake = feats.numpy().astype(np.float64)
            if "fd" in self.metrics:
                out["fd"] = frechet_distance(*feature_stats(fake), ref["mu"], ref["sigma"])
            if "kid" in self.metrics:
                out["kid"], out["kid_std"] = kid(fake, real)
                out["kid_subset"] = kid_subset_size(len(fake), len(real))
            if "is" in self.metrics:
                out["is"], out["is_std"] = inception_score(logits)
            if {"pr", "dc"} & set(self.metrics):
                out.update(self._prdc(real, fake))
        if digit_logits is not None:
            out.update(class_metrics(digit_logits, 10))
        out = {k: (round(v, 6) if isinstance(v, float) else v) for k, v in out.items()}
        out["eval_seconds"] = round(time.time() - t0, 2)
        return out

    def _prdc(self, real: np.ndarray, fake: np.ndarray) -> dict:
        """Precision/recall and density/coverage of n fakes against a fixed subset of n real features."""
        n = min(len(real), len(fake))
        fake = fake[equal_size_subset(len(fake), n, self.seed).numpy()]
        out = {"prdc_n": n}
        for metric, k in PRDC_K.items():
            if metric not in self.metrics:
                continue
            if (n, k) not in self._radii:
                self._radii[(n, k)] = reference_radii(self.reference(), n, k, self.seed)
            r = self._radii[(n, k)]
            fn = precision_recall if metric == "pr" else density_coverage
            out.update(fn(real[r["idx"]], fake, k=k, real_radii=r["radii"]))
        return out

    def _digit_extractor(self):
        if self._digits is None:
            from .features import DigitsExtractor

            self._digits = DigitsExtractor(self.data, self.device)
        return self._digits


def format_result(record: dict) -> str:
    """The metrics of a record as a two-column table."""
    def fmt(v):
        if isinstance(v, float):
            return f"{v:.4g}" if abs(v) >= 1e-3 or v == 0 else f"{v:.3e}"
        return str(v)

    rows = []
    pairs = {"kid": "kid_std", "is": "is_std"}
    skip = set(pairs.values()) | {"n_classes", "n_modes"}
    for k in ("fd", "kid", "is", "precision", "recall", "density", "coverage", "classes", "class_kl", "modes",
              "high_quality", "mode_kl", "test_accuracy"):
        if k not in record or k in skip:
            continue
        v = fmt(record[k])
        if k in pairs and pairs[k] in record:
            v += f" +- {fmt(record[pairs[k]])}"
        if k == "classes":
            v += f" / {record.get('n_classes', 10)}"
        if k == "modes":
            v += f" / {record.get('n_modes')}"
        rows.append((k, v))
    width = max(len(k) for k, _ in rows) if rows else 6
    lines = [f"{'metric':<{width}}  value", f"{'-' * width}  -----"]
    lines += [f"{k:<{width}}  {v}" for k, v in rows]
    return "\n".join(lines)


__all__ = ["METRICS", "Evaluator", "cache_dir", "class_metrics", "conditional_accuracy", "default_metrics",
           "format_result", "parse_metrics", "reference_stats"]
