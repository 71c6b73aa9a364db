"""Paired (image-to-image) metrics and the metric registry: l1, psnr, ssim, label preservation."""
import math

import numpy as np
import pytest
import torch

from ganforge.data import load_data
from ganforge.errors import ConfigError, GanforgeError
from ganforge.metrics import evaluate as E
from ganforge.metrics import l1, label_preservation, psnr, ssim
from ganforge.metrics.paired import ssim_per_image
from ganforge.metrics.registry import INPUTS, REGISTRY, Metric, register


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("GANFORGE_CACHE", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def digits():
    raw = load_data("digits")
    return raw.x, raw.y


def _unit(x):
    """The documented unit mapping, written independently: uint8 / 255, floats (x + 1) / 2."""
    x = np.asarray(x)
    return x.astype(np.float64) / 255 if x.dtype == np.uint8 else (x.astype(np.float64) + 1) / 2


def _rand_pair(seed, shape=(3, 2, 12, 13)):
    g = np.random.default_rng(seed)
    a = g.integers(0, 256, shape, dtype=np.uint8)
    b = g.uniform(-1, 1, shape)
    return a, b


# ---------------------------------------------------------------------------- l1 / psnr
def test_l1_and_psnr_match_numpy_on_mixed_uint8_and_float_images():
    a, b = _rand_pair(0)
    ua, ub = _unit(a), _unit(b)
    assert l1(torch.from_numpy(a), torch.from_numpy(b)) == pytest.approx(np.abs(ua - ub).mean(), rel=1e-12)
    per_image = [10 * math.log10(1 / ((ua[i] - ub[i]) ** 2).mean()) for i in range(len(a))]
    assert psnr(a, b) == pytest.approx(np.mean(per_image), rel=1e-12)
    # data_range only scales the peak: +20 log10(2) dB per image
    assert psnr(a, b, data_range=2.0) == pytest.approx(np.mean(per_image) + 20 * math.log10(2), rel=1e-12)
    # uint8 and its [-1, 1] float twin are the same image
    assert l1(a, a.astype(np.float64) / 127.5 - 1) == pytest.approx(0, abs=1e-12)


def test_psnr_of_identical_images_is_capped_not_infinite():
    a, b = _rand_pair(1)
    assert psnr(a, a) == 100.0
    assert psnr(a, a, max_db=80.0) == 80.0
    # one identical pair among others: the cap enters the mean as one value, the rest stay exact
    b2 = _unit(a).copy()
    b2[1:] = _unit(b)[1:]
    others = [10 * math.log10(1 / ((_unit(a)[i] - b2[i]) ** 2).mean()) for i in (1, 2)]
    assert psnr(a, b2 * 2 - 1) == pytest.approx((100.0 + sum(others)) / 3, rel=1e-12)


# ---------------------------------------------------------------------------- ssim
def _ssim_loops(a, b, sigma=1.5, radius=5, k1=0.01, k2=0.03, data_range=1.0):
    """Wang et al. 2004 written out: every window position where the 11x11 window fits, explicit sums."""
    taps = np.array([math.exp(-(i * i) / (2 * sigma * sigma)) for i in range(-radius, radius + 1)])
    w = np.outer(taps, taps)
    w /= w.sum()
    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
    size = 2 * radius + 1
    per_image = []
    for x_img, y_img in zip(a, b):
        vals = []
        for x_ch, y_ch in zip(x_img, y_img):
            for i in range(x_ch.shape[0] - size + 1):
                for j in range(x_ch.shape[1] - size + 1):
                    x, y = x_ch[i:i + size, j:j + size], y_ch[i:i + size, j:j + size]
                    mx, my = (w * x).sum(), (w * y).sum()
                    vx, vy = (w * (x - mx) ** 2).sum(), (w * (y - my) ** 2).sum()
                    cxy = (w * (x - mx) * (y - my)).sum()
                    vals.append((2 * mx * my + c1) * (2 * cxy + c2) / ((mx * mx + my * my + c1) * (vx + vy + c2)))
        per_image.append(np.mean(vals))
    return np.array(per_image)


def test_ssim_matches_the_explicit_formula():
    a, b = _rand_pair(2, (2, 2, 13, 15))
    b = np.clip(_unit(a) + np.random.default_rng(3).normal(0, 0.1, a.shape), 0, 1) * 2 - 1  # correlated pair
    want = _ssim_loops(_unit(a), _unit(b))
    assert ssim_per_image(a, b).numpy() == pytest.approx(want, rel=1e-10, abs=1e-12)
    assert ssim(a, b) == pytest.approx(want.mean(), rel=1e-10)
    assert 0.2 < ssim(a, b) < 0.95  # a real test: neither identical nor unrelated


def test_ssim_matches_scikit_images_recipe_on_digits(digits):
    """scikit-image is not installed here; its recipe is scipy's Gaussian filter, then a 5-pixel crop."""
    ndimage = pytest.importorskip("scipy.ndimage")
    x = digits[0][:4]
    y = torch.roll(x, 1, dims=3)  # a one-pixel shift: similar but not equal
    ux, uy = _unit(x), _unit(y)
    want = []
    for i in range(len(x)):
        s = []
        for ch in range(x.shape[1]):
            f = lambda im: ndimage.gaussian_filter(im, sigma=1.5, truncate=3.5, mode="reflect")  # noqa: E731
            p, q = ux[i, ch], uy[i, ch]
            mp, mq = f(p), f(q)
            vp, vq, cpq = f(p * p) - mp * mp, f(q * q) - mq * mq, f(p * q) - mp * mq
            m = ((2 * mp * mq + 1e-4) * (2 * cpq + 9e-4)) / ((mp ** 2 + mq ** 2 + 1e-4) * (vp + vq + 9e-4))
            s.append(m[5:-5, 5:-5].mean())
        want.append(np.mean(s))
    assert ssim_per_image(x, y).numpy() == pytest.approx(np.array(want), rel=1e-9)


def test_ssim_properties(digits):
    x = digits[0][:20].double() / 127.5 - 1
    g = torch.Generator().manual_seed(0)
    assert ssim(x, x) == pytest.approx(1.0, abs=1e-12)
    y = (x + 0.3 * torch.randn(x.shape, generator=g)).clamp(-1, 1)
    assert ssim(x, y) == pytest.approx(ssim(y, x), abs=1e-12)
    scores = [ssim(x, (x + s * torch.randn(x.shape, generator=g)).clamp(-1, 1)) for s in (0.02, 0.1, 0.3, 1.0)]
    assert all(hi > lo for hi, lo in zip(scores, scores[1:])), scores
    assert scores[0] > 0.9 and scores[-1] < 0.5
    neg = ssim(x, -x)  # contrast-inverted images: negative structure term
    assert -1 <= neg < 0


# ---------------------------------------------------------------------------- label preservation
def test_label_preservation_is_argmax_accuracy():
    g = np.random.default_rng(4)
    logits, labels = g.normal(size=(50, 7)), g.integers(0, 7, 50)
    assert label_preservation(logits, labels) == pytest.approx(np.mean(logits.argmax(1) == labels), abs=0)
    assert label_preservation(logits, logits.argmax(1)) == 1.0


@pytest.mark.parametrize("call, needle", [
    (lambda: l1(np.zeros((2, 1, 4, 4), np.uint8), np.zeros((2, 1, 4, 5), np.uint8)), "same shape"),
    (lambda: psnr(np.full((1, 1, 4, 4), np.nan), np.zeros((1, 1, 4, 4))), "NaN"),
    (lambda: l1(np.zeros((0, 1, 4, 4)), np.zeros((0, 1, 4, 4))), "non-empty"),
    (lambda: l1(np.zeros((1, 4, 4)), np.zeros((1, 4, 4))), "(N, C, H, W)"),
    (lambda: psnr(np.full((1, 1, 4, 4), 255.0), np.zeros((1, 1, 4, 4))), "[-1, 1]"),
    (lambda: ssim(np.zeros((1, 1, 10, 30)), np.zeros((1, 1, 10, 30))), "11x11"),
    (lambda: label_preservation(np.zeros((3, 10)), np.zeros(4, np.int64)), "labels must be"),
    (lambda: label_preservation(np.zeros((3, 10)), np.array([0, 1, 10])), "[0, 9]"),
])
def test_bad_inputs_give_one_line_errors(call, needle):
    with pytest.raises(GanforgeError) as err:
        call()
    assert needle in str(err.value) and "\n" not in str(err.value)


# ---------------------------------------------------------------------------- the registry
def test_the_registry_holds_every_metric_and_parse_metrics_reads_it():
    assert list(REGISTRY) == ["fd", "kid", "is", "pr", "dc", "classes", "modes", "l1", "psnr", "ssim", "labels"]
    assert all(m.needs <= set(INPUTS) and m.compute for m in REGISTRY.values())
    assert {m.name for m in REGISTRY.values() if m.paired} == {"l1", "psnr", "ssim", "labels"}
    assert E.parse_metrics("SSIM, l1,psnr,l1") == ["ssim", "l1", "psnr"]
    with pytest.raises(ConfigError, match=r"unknown metric 'ssmi' \(did you mean ssim"):
        E.parse_metrics("ssmi")
    with pytest.raises(ConfigError, match="measured with the modes metric, not l1"):
        E.parse_metrics("l1", kind="points")
    with pytest.raises(GanforgeError, match="taken"):
        register(Metric("fd", {"features"}, lambda inp: {}))


def test_a_registered_metric_is_computed_without_touching_the_evaluator(digits):
    # The point of the registry: one entry, no branch. Its inputs are gathered like the built-ins'.
    m = register(Metric("confidence", {"digit_logits"},
                        lambda inp: {"confidence": float(inp.digit_logits.softmax(1).max(1).values.mean())}))
    try:
        ev = E.Evaluator("digits", "image", None, metrics="confidence,classes", n=100)
        r = ev.evaluate_samples(digits[0][:100])
        assert 0.5 < r["confidence"] <= 1 and r["classes"] == 10
        assert list(r)[:4] == ["classes", "n_classes", "class_kl", "confidence"]  # registry order
    finally:
        del REGISTRY[m.name]
    with pytest.raises(ConfigError, match="unknown metric"):
        E.parse_metrics("confidence")


def test_paired_metrics_are_refused_by_evaluate_samples(digits):
    ev = E.Evaluator("digits", "image", None, metrics="classes,ssim", n=10)
    with pytest.raises(ConfigError, match="ssim compare outputs with their targets.*evaluate_pairs"):
        ev.evaluate_samples(digits[0][:10])


# ---------------------------------------------------------------------------- evaluate_pairs
def test_evaluate_pairs_on_digits(digits):
    x, y = digits[0][:400], digits[1][:400]
    g = torch.Generator().manual_seed(0)
    noisy = (x.double() / 127.5 - 1 + 0.02 * torch.randn(x.shape, generator=g, dtype=torch.float64)).clamp(-1, 1)
    perm = torch.randperm(len(x), generator=g)
    ev = E.Evaluator("digits", "image", digits[0][400:1400], n=400)
    close = ev.evaluate_pairs(noisy, x, labels=y)
    far = ev.evaluate_pairs(x[perm], x, labels=y)
    assert set(close) == {"fd", "kid", "kid_std", "kid_subset", "l1", "psnr", "ssim", "label_preservation",
                          "eval_seconds"}
    assert close["l1"] < 0.02 and 30 < close["psnr"] < 100 and close["ssim"] > 0.9
    assert close["label_preservation"] > 0.9
    assert far["l1"] > 5 * close["l1"] and far["psnr"] < close["psnr"] - 15 and far["ssim"] < 0.5
    assert far["label_preservation"] < 0.25  # shuffled images no longer carry their sources' labels
    # the same numbers as the pure functions
    assert close["ssim"] == round(ssim(noisy, x), 6) and close["psnr"] == round(psnr(noisy, x), 6)

    # labels only, shuffled: chance level; no real images given: no fd / kid
    bare = E.Evaluator("digits", "image", None, n=400)
    own = bare.evaluate_pairs(x, labels=y)
    shuffled = bare.evaluate_pairs(x, labels=y[perm])
    assert set(own) == {"label_preservation", "eval_seconds"}
    assert own["label_preservation"] > 0.9 and 0.03 < shuffled["label_preservation"] < 0.2
    with pytest.raises(GanforgeError, match="nothing to compare"):
        bare.evaluate_pairs(x)


def test_evaluate_pairs_with_named_metrics_needs_their_inputs(digits):
    x, y = digits
    ev = E.Evaluator("digits", "image", None, metrics="ssim,labels", n=50)
    r = ev.evaluate_pairs(x[:50], x[:50], labels=y[:50])
    assert set(r) == {"ssim", "label_preservation", "eval_seconds"} and r["ssim"] == 1.0
    with pytest.raises(GanforgeError, match="labels needs labels"):
        ev.evaluate_pairs(x[:50], x[:50])
    with pytest.raises(GanforgeError, match="3 labels for 50 outputs"):
        ev.evaluate_pairs(x[:50], x[:50], labels=y[:3])
