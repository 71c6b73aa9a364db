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

Paired metrics, for image-to-image translation (:meth:`Evaluator.evaluate_pairs`; images mapped
to [0, 1], see ``metrics/paired.py``):

=========  ==========================================================================
l1         mean absolute error of each output against its target
psnr       mean per-image PSNR in dB (identical pairs count as 100 dB)
ssim       SSIM, 11x11 Gaussian window, sigma 1.5 (Wang et al. 2004)
labels     label preservation: the digit classifier's accuracy on the outputs against
           the labels of the images they were translated from
=========  ==========================================================================

Every metric is an entry of the registry (``metrics/registry.py``) naming the inputs it needs;
the Evaluator computes those inputs once and loops over the chosen entries.
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
from .paired import l1, label_preservation, psnr, ssim
from .prdc import density_coverage, knn_radii, precision_recall
from .registry import PAIRED_INPUTS, REGISTRY, Inputs, Metric, register
from .toy import TOY_MIXTURES, toy_modes

DIGIT_DATA = ("mnist", "digits", "mnist-edges", "digits-edges")  # each has its built-in classifier
TOY_N = 2500  # the VEEGAN / PacGAN protocol's sample count
# A class counts as covered when it gets at least this share of what a uniform spread would give
# it (10% of n / n_classes): a stray misclassification does not cover a class.
MIN_CLASS_SHARE = 0.1


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
    """``mnist[:8000]``, ``mnist:test`` -> ``mnist``: a part of a data set is measured like the whole."""
    from ..data import parse_name

    return parse_name(data)[0]


def parse_metrics(text, kind: str = "image", data: str = "") -> list[str]:
    """``"fd,kid"`` (or a list, or None/"auto" for the defaults) -> checked metric names."""
    if text is None or text == "auto" or text == []:
        return default_metrics(kind, data)
    known = tuple(REGISTRY)  # read now: metrics registered after import count too
    names = [m.strip().lower() for m in (text.split(",") if isinstance(text, str) else text) if m.strip()]
    if not names:
        raise ConfigError("no metrics named; choose from " + ", ".join(known))
    for m in names:
        if m not in REGISTRY:
            raise ConfigError(f"unknown metric {m!r}{closest(m, known)}; choose from {', '.join(known)}")
    names = list(dict.fromkeys(names))
    wrong = [m for m in names if REGISTRY[m].kind != kind]
    if kind == "points" and wrong:
        point_metrics = " or ".join(m.name for m in REGISTRY.values() if m.kind == "points")
        raise ConfigError(f"2-D point data is measured with the {point_metrics} metric, not {', '.join(wrong)}")
    if kind == "image" and wrong:
        raise ConfigError(f"the {wrong[0]} metric is for the 2-D mixtures {' and '.join(TOY_MIXTURES)}; "
                          "for images use classes")
    return names


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


# ---------------------------------------------------------------------------- the registry
def _knn_metric(fn, k: int):
    """pr / dc: the samples cut to n = min(real, fake), against a fixed subset of n real features."""
    def compute(inp: Inputs) -> dict:
        real, fake = inp.ref["feats"], inp.fake
        n = min(len(real), len(fake))
        fake = fake[equal_size_subset(len(fake), n, inp.seed).numpy()]
        r = inp.radii(n, k)
        return {"prdc_n": n, **fn(real[r["idx"]], fake, k=k, real_radii=r["radii"])}
    return compute


def _kid(inp: Inputs) -> dict:
    mean, std = kid(inp.fake, inp.ref["feats"])
    return {"kid": mean, "kid_std": std, "kid_subset": kid_subset_size(len(inp.fake), len(inp.ref["feats"]))}


def _inception_score(inp: Inputs) -> dict:
    mean, std = inception_score(inp.logits)
    return {"is": mean, "is_std": std}


def _modes(inp: Inputs) -> dict:
    r = toy_modes(inp.points, _base(inp.data))
    return {"modes": r["modes"], "n_modes": r["n_modes"], "high_quality": round(r["high_quality"], 6),
            "mode_kl": round(r["kl"], 6)}


# Registry order is the order of a result's keys.
for _m in (
    Metric("fd", {"features"}, lambda inp: {"fd": frechet_distance(*feature_stats(inp.fake), inp.ref["mu"],
                                                                   inp.ref["sigma"])},
           "Frechet distance of the features (Heusel et al. 2017)", keys=("fd",)),
    Metric("kid", {"features"}, _kid, "Kernel Inception Distance (Binkowski et al. 2018)",
           keys=("kid", "kid_std", "kid_subset")),
    Metric("is", {"logits"}, _inception_score, "Inception Score (Salimans et al. 2016)", title="Inception Score",
           keys=("is", "is_std")),
    Metric("pr", {"features"}, _knn_metric(precision_recall, 3), "precision and recall (Kynkaanniemi et al. 2019)",
           k=3, keys=("prdc_n", "precision", "recall")),
    Metric("dc", {"features"}, _knn_metric(density_coverage, 5), "density and coverage (Naeem et al. 2020)",
           k=5, keys=("prdc_n", "density", "coverage")),
    Metric("classes", {"digit_logits"}, lambda inp: class_metrics(inp.digit_logits, 10),
           "classes covered and KL of the class histogram from uniform", keys=("classes", "n_classes", "class_kl")),
    Metric("modes", {"points"}, _modes, "modes of ring8 / grid25 captured (VEEGAN, PacGAN)", kind="points",
           keys=("modes", "n_modes", "high_quality", "mode_kl")),
    Metric("l1", {"targets"}, lambda inp: {"l1": l1(inp.outputs, inp.targets)},
           "mean absolute error against the targets, [0, 1] pixel units", keys=("l1",)),
    Metric("psnr", {"targets"}, lambda inp: {"psnr": psnr(inp.outputs, inp.targets)},
           "mean per-image PSNR in dB against the targets", keys=("psnr",)),
    Metric("ssim", {"targets"}, lambda inp: {"ssim": ssim(inp.outputs, inp.targets)},
           "SSIM against the targets (Wang et al. 2004)", keys=("ssim",)),
    Metric("labels", {"digit_logits", "labels"},
           lambda inp: {"label_preservation": label_preservation(inp.digit_logits, inp.labels)},
           "digit classifier's accuracy on the outputs against the sources' labels", title="label preservation",
           keys=("label_preservation",)),
):
    register(_m)

METRICS = tuple(REGISTRY)  # the built-in metrics; parse_metrics reads REGISTRY itself
PRDC_K = {m.name: m.k for m in REGISTRY.values() if m.k}  # the papers' neighbour counts


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
                 inception_weights=None, download: bool = False, progress: bool = False, ref_name: str | None = None,
                 extractor=None):
        self.data, self.kind, self.real = data, kind, real
        # Left to the defaults, evaluate_pairs picks its own (the paired metrics it has inputs for).
        self._auto_metrics = metrics is None or metrics == "auto" or metrics == []
        self.metrics = parse_metrics(metrics, kind, data)
        if kind == "points" and _base(data) not in TOY_MIXTURES:
            raise ConfigError(f"the modes metric knows the mixtures {', '.join(TOY_MIXTURES)}, not {data!r}")
        self.features = features or default_features(data)
        self.n, self.seed, self.device, self.progress = int(n), int(seed), device, progress
        self.ref_name = ref_name or data
        self._opts = {"inception_weights": inception_weights, "download": download}
        # ``extractor``: one already built, shared by Evaluators of the same features (a network loaded once)
        self._ex, self._ref, self._digits, self._digits_ref = extractor, None, None, None
        self._radii: dict = {}  # (n, k) -> reference_radii(...): evaluating every N steps pays once
        if n < 2:
            raise ConfigError(f"--n must be at least 2, got {n}")
        smallest = min(self.n, len(real)) if real is not None else self.n
        for m in REGISTRY.values():
            if m.k and m.name in self.metrics and smallest <= m.k:
                raise ConfigError(f"{m.name} needs more than k = {m.k} samples on each side, got {smallest}: "
                                  f"raise --n or drop {m.name}")

    # extractors and references, built lazily
    def extractor(self):
        if self._ex is None:
            from .features import get_extractor

            self._ex = get_extractor(self.features, self.data, self.device, **self._opts)
        return self._ex

    def _needs_features(self) -> bool:
        return any(REGISTRY[m].needs & {"features", "logits"} for m in self.metrics)

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
        paired = [m for m in self.metrics if REGISTRY[m].paired]
        if paired:
            raise ConfigError(f"{', '.join(paired)} compare outputs with their targets or labels: "
                              "use Evaluator.evaluate_pairs")
        return self._evaluate(self.metrics, samples, total)

    def evaluate_pairs(self, outputs, targets=None, labels=None) -> dict:
        """Paired metrics of translated images ``outputs`` (N, C, H, W), in [-1, 1] or uint8.

        ``targets`` are the images each output should match (l1, psnr, ssim), ``labels`` (N,) the
        classes of the images they were translated from (labels: the digit classifier's accuracy
        on the outputs). With the Evaluator's metrics left to the default, computes every paired
        metric whose input is given, plus fd and kid of the outputs against the Evaluator's real
        images (the target domain) when it has them; named metrics are computed as named.
        """
        if self.kind != "image":
            raise ConfigError("paired metrics compare images, not 2-D points")
        outputs = torch.as_tensor(outputs)
        given = {name for name, v in (("targets", targets), ("labels", labels)) if v is not None}
        if self._auto_metrics:
            names = [m.name for m in REGISTRY.values() if m.paired and m.needs & PAIRED_INPUTS <= given]
            if self.real is not None:
                names = ["fd", "kid"] + names
            if not names:
                raise GanforgeError("nothing to compare the outputs with: pass targets or labels, "
                                    "or give the Evaluator the target domain's real images")
        else:
            names = self.metrics
            for m in names:
                missing = REGISTRY[m].needs & PAIRED_INPUTS - given
                if missing:
                    raise GanforgeError(f"{m} needs {' and '.join(sorted(missing))}: pass them to evaluate_pairs")
        if labels is not None and len(labels) != len(outputs):
            raise GanforgeError(f"{len(labels)} labels for {len(outputs)} outputs")
        return self._evaluate(names, outputs, len(outputs), targets, labels)

    def _evaluate(self, names, samples, total=None, targets=None, labels=None) -> dict:
        """Gather the inputs the metrics ``names`` need, once each, and merge their results."""
        t0 = time.time()
        inp = self._inputs(names, samples, total, targets, labels)
        out: dict = {}
        for m in REGISTRY.values():  # registry order, whatever order the names came in
            if m.name in names:
                out.update(m.compute(inp))
        out = {k: (round(v, 6) if isinstance(v, float) else v) for k, v in out.items()}
        if self.kind == "image":  # point records have never carried a timing
            out["eval_seconds"] = round(time.time() - t0, 2)
        return out

    def _inputs(self, names, samples, total, targets, labels) -> Inputs:
        needs = set().union(*(REGISTRY[m].needs for m in names))
        inp = Inputs(data=self.data, seed=self.seed, targets=targets, labels=labels, radii=self._reference_radii)
        if self.kind == "points":
            inp.points = samples
            return inp
        if torch.is_tensor(samples):
            total = len(samples)
            inp.outputs = samples
        ex = feats = logits = None
        if needs & {"features", "logits"}:
            ex = self.extractor()
            for m in names:  # say so before the slow part
                if "logits" in REGISTRY[m].needs and not ex.has_logits:
                    raise GanforgeError(f"the {ex.key} extractor has no classifier head, so no {REGISTRY[m].title}: "
                                        f"use torch-fidelity's weights, or drop {m}")
            if "digit_logits" in needs and ex.name != "digits" and not torch.is_tensor(samples):
                samples = list(samples)  # read twice: by the extractor and by the digit classifier
            feats, logits = ex.extract(samples, total=total, progress=self.progress and (total or 0) >= 2000,
                                       desc="features of samples")
            inp.logits = logits
        if "digit_logits" in needs:
            inp.digit_logits = logits if ex is not None and ex.name == "digits" else \
                self._digit_extractor().extract(samples, total=total)[1]
        if "features" in needs:
            inp.ref = self.reference()
            inp.fake = feats.numpy().astype(np.float64)
        return inp

    def _reference_radii(self, n: int, k: int) -> dict:
        if (n, k) not in self._radii:
            self._radii[(n, k)] = reference_radii(self.reference(), n, k, self.seed)
        return self._radii[(n, k)]

    def _digit_extractor(self):
        if self._digits is None:
            from .features import DigitsExtractor

            self._digits = DigitsExtractor(self.data, self.device)
        return self._digits


# Numbers in an eval record that describe how it was measured, not what: not shown as metrics.
# Besides these, every count: a key ``n``, ``n_...``, ``..._n`` or ``..._n_...`` (n_ref, text_n, knn_n_query).
RECORD_SETTINGS = frozenset({"step", "seed", "kid_subset", "eval_seconds", "diversity_styles"})


def _is_count(key: str) -> bool:
    return key in RECORD_SETTINGS or key == "n" or key.startswith("n_") or key.endswith("_n") or "_n_" in key


# Prefixes of a record's keys that name another output measured beside the model's: a two-way
# translator's second direction (run_eval) and a restorer's baseline.
RECORD_PREFIXES = ("BtoA_", "bicubic_", "mean_fill_")


def format_result(record: dict) -> str:
    """Every metric of a record, in the record's order, as a two-column table: a ``_std`` beside its
    value, ``classes`` and ``modes`` out of their totals; ``BtoA_l1`` shows as ``BtoA l1``."""
    def fmt(v):
        if isinstance(v, float):
            return f"{v:.4g}" if abs(v) >= 1e-3 or v == 0 else f"{v:.3e}"
        return str(v)

    rows = []
    for key, value in record.items():
        prefix = next((p for p in RECORD_PREFIXES if key.startswith(p)), "")
        k = key[len(prefix):]
        if (not isinstance(value, (int, float)) or isinstance(value, bool) or _is_count(k)
                or (k.endswith("_std") and prefix + k[:-4] in record)):
            continue
        v = fmt(value)
        if prefix + k + "_std" in record:
            v += f" +- {fmt(record[prefix + k + '_std'])}"
        if k in ("classes", "modes"):
            v += f" / {record.get(prefix + 'n_' + k, 10 if k == 'classes' else '?')}"
        rows.append((f"{prefix[:-1]} {k}" if prefix else k, v))
    width = max(len(k) for k, _ in rows) if rows else 6
    lines = [f"{'metric':<{width}}  value", f"{'-' * width}  -----"]
    lines += [f"{k:<{width}}  {v}" for k, v in rows]
    return "\n".join(lines)


__all__ = ["METRICS", "REGISTRY", "Evaluator", "Metric", "register", "cache_dir", "class_metrics", "conditional_accuracy", "default_metrics",
           "format_result", "parse_metrics", "reference_stats"]
