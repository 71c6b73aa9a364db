"""Tests of the pure metric functions in ganforge.metrics, each against an independent computation."""
import math
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

import ganforge
from ganforge.errors import GanforgeError
from ganforge.metrics import (
    TOY_MIXTURES,
    density_coverage,
    feature_stats,
    frechet_distance,
    frechet_distance_from_features,
    inception_score,
    kid,
    kid_subset_size,
    knn_radii,
    prdc,
    precision_recall,
    sample_mixture,
    toy_modes,
)


def _spd(rng, d):
    m = rng.randn(d, d)
    return m @ m.T + 0.1 * np.eye(d)


# --------------------------------------------------------------------------- Frechet distance


def test_frechet_diagonal_closed_form_accepts_torch_and_numpy():
    rng = np.random.RandomState(0)
    mu1, mu2 = rng.randn(5), rng.randn(5)
    s1, s2 = rng.uniform(0.1, 3, 5), rng.uniform(0.1, 3, 5)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum(s1 + s2 - 2 * np.sqrt(s1 * s2))
    got = frechet_distance(torch.tensor(mu1), torch.tensor(np.diag(s1)).float(), mu2, np.diag(s2))
    assert isinstance(got, float)
    assert got == pytest.approx(expected, rel=1e-5)


def test_frechet_full_covariance_matches_eigendecomposition():
    rng = np.random.RandomState(1)
    d = 6
    mu1, mu2 = rng.randn(d), rng.randn(d)
    s1, s2 = _spd(rng, d), _spd(rng, d)
    # Tr((S1 S2)^1/2) = Tr((S1^1/2 S2 S1^1/2)^1/2): the latter is symmetric PSD, so use eigh.
    w, v = np.linalg.eigh(s1)
    root1 = v @ np.diag(np.sqrt(w)) @ v.T
    tr_covmean = np.sum(np.sqrt(np.linalg.eigvalsh(root1 @ s2 @ root1)))
    expected = np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * tr_covmean
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-9)


def test_frechet_from_features_is_zero_on_itself_and_uses_unbiased_stats():
    rng = np.random.RandomState(2)
    a, b = rng.randn(200, 8), rng.randn(300, 8) + 0.5
    assert frechet_distance_from_features(a, a) == pytest.approx(0.0, abs=1e-8)
    mu, sigma = feature_stats(a)
    np.testing.assert_allclose(sigma, np.cov(a.T, ddof=1))
    np.testing.assert_allclose(mu, a.mean(0))
    direct = frechet_distance(*feature_stats(a), *feature_stats(b))
    assert frechet_distance_from_features(a, b) == pytest.approx(direct)
    assert direct > 8 * 0.5**2 * 0.5  # a mean shift of 0.5 in 8 dims is clearly visible


def test_frechet_rank_deficient_covariance_stays_finite():
    # Fewer samples than dimensions: singular covariances, where the eps * I retry kicks in.
    rng = np.random.RandomState(3)
    a = rng.randn(10, 32)
    assert frechet_distance_from_features(a, a) == pytest.approx(0.0, abs=1e-3)
    assert math.isfinite(frechet_distance_from_features(a, rng.randn(10, 32)))


@pytest.mark.parametrize(
    "args",
    [
        (np.array([np.nan, 0.0]), np.eye(2), np.zeros(2), np.eye(2)),  # NaN mean
        (np.zeros(2), np.eye(2), np.zeros(2), np.full((2, 2), np.inf)),  # Inf covariance
        (np.zeros(2), np.eye(2), np.zeros(3), np.eye(3)),  # dimension mismatch
        (np.zeros(2), np.eye(3), np.zeros(2), np.eye(2)),  # sigma does not match mu
        (np.zeros(2), np.diag([1.0, -1.0]), np.zeros(2), np.eye(2)),  # not a covariance: imaginary root
    ],
)
def test_frechet_rejects_bad_inputs(args):
    with pytest.raises(GanforgeError):
        frechet_distance(*args)


def test_frechet_from_features_rejects_bad_inputs():
    rng = np.random.RandomState(4)
    with pytest.raises(GanforgeError, match="dimensions differ"):
        frechet_distance_from_features(rng.randn(10, 3), rng.randn(10, 4))
    with pytest.raises(GanforgeError, match="at least 2"):
        frechet_distance_from_features(rng.randn(1, 3), rng.randn(10, 3))
    bad = rng.randn(10, 3)
    bad[4, 1] = np.nan
    with pytest.raises(GanforgeError, match="NaN"):
        frechet_distance_from_features(bad, rng.randn(10, 3))


# --------------------------------------------------------------------------- KID


def _naive_unbiased_mmd2(x, y, degree=3, gamma=None, coef0=1.0):
    """Unbiased MMD^2 written as explicit loops over pairs."""
    m, d = x.shape
    gamma = 1.0 / d if gamma is None else gamma

    def k(u, v):
        return (gamma * float(np.dot(u, v)) + coef0) ** degree

    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / (m * m)
    return xx + yy - 2 * xy


@pytest.mark.parametrize("kernel", [{}, {"degree": 2, "gamma": 0.3, "coef0": 0.5}])
def test_kid_matches_naive_unbiased_mmd(kernel):
    rng = np.random.RandomState(5)
    a, b = rng.randn(12, 5), rng.randn(12, 5) + 0.3
    # One subset takes both whole sets (subset_size clipped to 12): MMD^2 is permutation
    # invariant, so it equals the naive full-set value.
    mean, std = kid(torch.tensor(a), b, subsets=1, subset_size=1000, **kernel)
    assert mean == pytest.approx(_naive_unbiased_mmd2(a, b, **kernel), rel=1e-10)
    assert std == pytest.approx(0.0, abs=1e-12)


def test_kid_near_zero_for_same_distribution_and_positive_when_shifted():
    rng = np.random.RandomState(6)
    a, b = rng.randn(400, 16), rng.randn(400, 16)
    same, _ = kid(a, b, subsets=20, subset_size=200)
    shifted, shifted_std = kid(a, b + 0.5, subsets=20, subset_size=200)
    assert shifted > 0 and shifted > 5 * shifted_std
    assert abs(same) < 0.05 * shifted


def test_kid_std_is_a_fair_spread_when_a_set_is_the_subset_size():
    # Training evaluates 1,000 samples and KID asks for subsets of 1,000: each subset used to be
    # the whole fake set, so kid_std held only the real side's spread (0.3 of the spread below).
    rng = np.random.RandomState(13)
    d = 16
    real, fake = rng.randn(1797, d), 1.5 * rng.randn(1000, d)
    mean, std = kid(real, fake)
    m = kid_subset_size(len(real), len(fake))
    assert m == 250
    # The spread of KID between independent draws of m real and m fake points.
    independent = [kid(rng.randn(m, d), 1.5 * rng.randn(m, d), subsets=1, subset_size=m)[0] for _ in range(100)]
    assert 0.6 < std / np.std(independent) < 1.6, (std, np.std(independent))
    assert abs(mean - np.mean(independent)) < np.std(independent)
    assert kid_subset_size(10_000, 10_000) == 1000 and kid_subset_size(3, 3) == 2


def test_kid_is_seeded_and_rejects_bad_inputs():
    rng = np.random.RandomState(7)
    a, b = rng.randn(50, 4), rng.randn(60, 4)
    assert kid(a, b, subsets=5, subset_size=20, seed=3) == kid(a, b, subsets=5, subset_size=20, seed=3)
    with pytest.raises(GanforgeError, match="at least 2"):
        kid(a[:1], b)
    with pytest.raises(GanforgeError, match="dimensions differ"):
        kid(a, rng.randn(60, 5))
    with pytest.raises(GanforgeError, match="subsets"):
        kid(a, b, subsets=0)


# --------------------------------------------------------------------------- Inception Score


def test_is_confident_uniform_predictions_give_number_of_classes():
    c = 7
    logits = 100.0 * torch.eye(c)[torch.arange(700) % c]
    # Unshuffled, every split of 70 holds each class 10 times: p(y) is exactly uniform.
    mean, std = inception_score(logits, splits=10, shuffle=False)
    assert mean == pytest.approx(c, rel=1e-6)
    assert std == pytest.approx(0.0, abs=1e-6)
    mean_shuffled, _ = inception_score(logits, splits=1)
    assert mean_shuffled == pytest.approx(c, rel=1e-6)


def test_is_identical_predictions_give_one():
    row = np.random.RandomState(8).randn(10)
    mean, std = inception_score(np.tile(row, (100, 1)), splits=5)
    assert mean == pytest.approx(1.0, abs=1e-9)
    assert std == pytest.approx(0.0, abs=1e-9)


def test_is_equals_exp_of_entropy_difference():
    # exp(E KL(p(y|x) || p(y))) = exp(H(p(y)) - E H(p(y|x))): an independent formula.
    logits = np.random.RandomState(9).randn(300, 6) * 3
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    marginal = p.mean(0)
    entropy_marginal = -np.sum(marginal * np.log(marginal))
    mean_entropy = -np.mean(np.sum(p * np.log(p), axis=1))
    mean, _ = inception_score(logits, splits=1)
    assert mean == pytest.approx(np.exp(entropy_marginal - mean_entropy), rel=1e-9)


def test_is_rejects_bad_inputs():
    with pytest.raises(GanforgeError, match="dimensions"):
        inception_score(np.zeros(10))
    with pytest.raises(GanforgeError, match="splits"):
        inception_score(np.zeros((5, 3)), splits=6)
    with pytest.raises(GanforgeError, match="NaN"):
        inception_score(np.full((5, 3), np.nan), splits=1)


# --------------------------------------------------------------------------- PRDC


def _naive_prdc(real, fake, k):
    """All four metrics from full distance matrices, radii by sorting (clovaai definitions)."""

    def dists(x, y):
        return np.sqrt(((x[:, None, :] - y[None, :, :]) ** 2).sum(-1))

    r_real = np.sort(dists(real, real), axis=1)[:, k]  # index k = (k+1)-th smallest, self included
    r_fake = np.sort(dists(fake, fake), axis=1)[:, k]
    d = dists(real, fake)  # (real, fake)
    return {
        "precision": np.mean((d < r_real[:, None]).any(0)),
        "recall": np.mean((d < r_fake[None, :]).any(1)),
        "density": np.mean((d < r_real[:, None]).sum(0)) / k,
        "coverage": np.mean(d.min(1) < r_real),
    }


def test_prdc_chunked_matches_naive_full_matrix():
    rng = np.random.RandomState(10)
    real, fake = rng.randn(60, 4), rng.randn(45, 4) * 1.3 + 0.4
    expected = _naive_prdc(real, fake, k=3)
    got = prdc(torch.tensor(real).float(), fake, k=3, chunk=7)  # chunk splits rows unevenly
    got_real = prdc(real, fake, k=3)
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, abs=1e-9), key
        assert got_real[key] == pytest.approx(value, abs=1e-9), key
    assert 0 < got["precision"] < 1 and 0 < got["recall"] < 1  # the case is not degenerate


def test_prdc_identical_sets_and_far_away_fakes():
    rng = np.random.RandomState(11)
    real = rng.randn(300, 8)
    pr = precision_recall(real, real.copy(), k=3)
    assert pr == {"precision": 1.0, "recall": 1.0}
    dc = density_coverage(real, real.copy(), k=5)
    assert dc["coverage"] == 1.0
    assert dc["density"] == pytest.approx(1.0, abs=0.05)  # each ball: itself + k-1 neighbours
    far = prdc(real, rng.randn(300, 8) + 100.0, k=5)
    assert far == {"precision": 0.0, "recall": 0.0, "density": 0.0, "coverage": 0.0}


def test_prdc_takes_precomputed_real_radii():
    rng = np.random.RandomState(16)
    real, fake = rng.randn(80, 6), rng.randn(70, 6) + 0.2
    assert prdc(real, fake, k=4, real_radii=knn_radii(real, 4)) == prdc(real, fake, k=4)
    with pytest.raises(GanforgeError, match="real_radii has 79"):
        prdc(real, fake, k=4, real_radii=knn_radii(real[:79], 4))
    with pytest.raises(GanforgeError, match="k must be"):
        knn_radii(real[:4], 4)


def test_prdc_rejects_bad_inputs():
    rng = np.random.RandomState(12)
    with pytest.raises(GanforgeError, match="k must be"):
        prdc(rng.randn(5, 2), rng.randn(5, 2), k=5)
    with pytest.raises(GanforgeError, match="dimensions differ"):
        prdc(rng.randn(10, 2), rng.randn(10, 3), k=2)


# --------------------------------------------------------------------------- toy mixtures


def test_toy_mixture_definitions():
    ring, ring_std = TOY_MIXTURES["ring8"]
    grid, grid_std = TOY_MIXTURES["grid25"]
    assert ring.shape == (8, 2) and ring.dtype == torch.float32 and ring_std == 0.01
    torch.testing.assert_close(ring.norm(dim=1), torch.ones(8))
    assert grid.shape == (25, 2) and grid_std == 0.05
    assert {tuple(p) for p in grid.tolist()} == {(x, y) for x in (-4, -2, 0, 2, 4) for y in (-4, -2, 0, 2, 4)}


def test_sample_mixture_is_seeded_and_restricted_to_modes():
    g = torch.Generator().manual_seed(0)
    x = sample_mixture("ring8", 100, generator=g)
    assert x.shape == (100, 2) and x.dtype == torch.float32
    torch.testing.assert_close(x, sample_mixture("ring8", 100, generator=torch.Generator().manual_seed(0)))
    centers, _ = TOY_MIXTURES["grid25"]
    y = sample_mixture("grid25", 200, generator=g, modes=[3, 7])
    nearest = torch.cdist(y, centers).argmin(dim=1)
    assert set(nearest.tolist()) == {3, 7}


@pytest.mark.parametrize("name", ["ring8", "grid25"])
def test_toy_modes_true_samples_capture_everything(name):
    x = sample_mixture(name, 2500, generator=torch.Generator().manual_seed(1))
    out = toy_modes(x, name)
    assert out["modes"] == out["n_modes"] == len(TOY_MIXTURES[name][0])
    # Within 3 std in 2-D: P(Rayleigh < 3) = 1 - exp(-4.5) ~ 0.989 (binomial sd ~0.002 here).
    assert out["high_quality"] > 0.98
    assert out["high_quality"] == pytest.approx(1 - math.exp(-4.5), abs=0.008)
    assert 0 <= out["kl"] < 0.05


@pytest.mark.parametrize("name,modes", [("ring8", [0, 3, 5]), ("grid25", [0, 2, 4, 6, 8, 11, 13, 17, 20, 24])])
def test_toy_modes_counts_a_collapsed_subset(name, modes):
    x = sample_mixture(name, 2500, generator=torch.Generator().manual_seed(2), modes=modes)
    out = toy_modes(x.numpy(), name)
    assert out["modes"] == len(modes)
    # Uniform over m of K modes: KL(p || uniform_K) = log(K / m).
    assert out["kl"] == pytest.approx(math.log(out["n_modes"] / len(modes)), abs=0.05)


def test_toy_modes_far_points_are_not_high_quality():
    centers, std = TOY_MIXTURES["grid25"]
    between = torch.tensor([[1.0, 1.0], [3.0, -1.0], [10.0, 10.0], [0.0, 4 * std]])
    out = toy_modes(between, "grid25")
    assert out == {"modes": 0, "n_modes": 25, "high_quality": 0.0, "kl": pytest.approx(math.log(25))}
    half = toy_modes(torch.cat([between, centers[:4]]), "grid25")
    assert half["high_quality"] == 0.5 and half["modes"] == 4


def test_toy_modes_rejects_bad_inputs():
    with pytest.raises(GanforgeError, match="did you mean ring8"):
        toy_modes(np.zeros((3, 2)), "ring9")
    with pytest.raises(GanforgeError, match=r"\(N, 2\)"):
        toy_modes(np.zeros((3, 3)), "ring8")
    with pytest.raises(GanforgeError, match="modes"):
        sample_mixture("ring8", 10, modes=[8])


def test_metrics_import_without_scipy():
    # The data module takes its toy mixtures from ganforge.metrics; that import must stay light.
    code = "import sys, ganforge.metrics; assert 'scipy' not in sys.modules, 'scipy imported'"
    src = os.path.dirname(os.path.dirname(ganforge.__file__))  # works installed or via PYTHONPATH
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])}
    subprocess.run([sys.executable, "-c", code], check=True, env=env)
