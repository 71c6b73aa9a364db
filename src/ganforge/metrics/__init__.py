"""Sample-quality metrics for GANs, as pure functions of features, logits or 2-D samples.

All functions accept torch tensors or numpy arrays, compute in float64, return python floats
(or small dicts / tuples of them), and raise ``ganforge.errors.GanforgeError`` with a one-line
message on bad input (NaN/Inf, wrong shapes, too few samples, unknown names).

Feature-set metrics (features are (N, D) arrays, e.g. Inception pool3 activations):

* ``frechet_distance(mu1, sigma1, mu2, sigma2) -> float``: Frechet distance between two
  Gaussians (FID; Heusel et al. 2017). ``feature_stats(feats) -> (mu, sigma)`` and
  ``frechet_distance_from_features(a, b) -> float`` fit the Gaussians first.
* ``kid(a, b, subsets=100, subset_size=1000, degree=3, gamma=None, coef0=1, seed=0)
  -> (mean, std)``: Kernel Inception Distance (Binkowski et al. 2018), unbiased cubic-kernel
  MMD^2 over random subsets, as torch-fidelity / clean-fid compute it (smaller subsets for sets
  under four subsets: ``kid_subset_size(n_a, n_b)``).
* ``prdc(real, fake, k=5, real_radii=None) -> dict(precision, recall, density, coverage)``;
  ``precision_recall(real, fake, k=3)`` (Kynkaanniemi et al. 2019) and
  ``density_coverage(real, fake, k=5)`` (Naeem et al. 2020) return the matching pairs;
  ``knn_radii(real, k)`` gives the real balls' radii once for repeated calls. Compare sets of
  equal size: the radii shrink as a set grows.

Classifier metric:

* ``inception_score(logits, splits=10) -> (mean, std)``: Inception Score (Salimans et al.
  2016) from (N, C) logits, as torch-fidelity computes it.

Paired metrics, for image-to-image translation (``paired.py``; images (N, C, H, W) in [-1, 1]
or uint8, compared in [0, 1] units):

* ``l1(a, b)``, ``psnr(a, b, data_range=1.0, max_db=100.0)`` (mean per-image dB, identical pairs
  count as ``max_db``), ``ssim(a, b)`` (Wang et al. 2004, 11x11 Gaussian window, sigma 1.5) and
  ``label_preservation(logits, labels)`` (a classifier's accuracy against the sources' labels).

2-D toy mixtures (``ring8``, ``grid25`` of PacGAN / VEEGAN):

* ``TOY_MIXTURES``: name -> (centres (K, 2) float32 tensor, std).
* ``sample_mixture(name, n, generator=None, modes=None) -> (n, 2) float32 tensor``.
* ``toy_modes(samples, name) -> dict(modes, n_modes, high_quality, kl)``.

Evaluation (``ganforge eval``; see ``ganforge.metrics.evaluate``):

* ``get_extractor("digits" | "inception", data=...)``: feature extractors (``features.py``).
* ``class_metrics(logits) -> dict(classes, n_classes, class_kl)``: classes covered and KL of the
  predicted-class histogram from uniform.
* ``conditional_accuracy(model, n_per_class=100, features="digits", seed=0) -> float``: the
  fraction of ``model.sample(n, seed=..., label=y)`` that the digit classifier labels y.
* ``Evaluator``, ``reference_stats(...)`` (cached real statistics); ``Evaluator.evaluate_pairs(
  outputs, targets=None, labels=None)`` for translated images.
* ``REGISTRY`` (name -> ``Metric``) and ``register(Metric(name, needs, compute))``: every metric
  the Evaluator knows, with the inputs it needs (``registry.py``). A run directory is measured
  by ``ganforge.run_eval.evaluate_run(dir, ...)``, one layer up (it reads runs through the engine).

Importing this package needs only torch and numpy (the data module takes its toy mixtures from
here); scipy is loaded on the first Frechet-distance call.
"""
from ganforge.metrics.frechet import feature_stats, frechet_distance, frechet_distance_from_features
from ganforge.metrics.inception_score import inception_score
from ganforge.metrics.kid import kid, kid_subset_size
from ganforge.metrics.prdc import density_coverage, knn_radii, prdc, precision_recall
from ganforge.metrics.toy import TOY_MIXTURES, sample_mixture, toy_modes
from ganforge.metrics.paired import l1, label_preservation, psnr, ssim
from ganforge.metrics.registry import REGISTRY, Metric, register
from ganforge.metrics.classifier import load_classifier, train_classifier
from ganforge.metrics.evaluate import Evaluator, class_metrics, conditional_accuracy, reference_stats
from ganforge.metrics.features import get_extractor

__all__ = [
    "Evaluator",
    "Metric",
    "REGISTRY",
    "TOY_MIXTURES",
    "l1",
    "label_preservation",
    "psnr",
    "register",
    "ssim",
    "class_metrics",
    "conditional_accuracy",
    "get_extractor",
    "load_classifier",
    "reference_stats",
    "train_classifier",
    "density_coverage",
    "feature_stats",
    "frechet_distance",
    "frechet_distance_from_features",
    "inception_score",
    "kid",
    "kid_subset_size",
    "knn_radii",
    "prdc",
    "precision_recall",
    "sample_mixture",
    "toy_modes",
]
