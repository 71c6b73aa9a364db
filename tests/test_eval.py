"""Built-in evaluation: feature extractors, cached reference statistics, class/mode metrics, `ganforge eval`."""
import json
import math

import numpy as np
import pytest
import yaml
import torch

import ganforge
from ganforge.cli import main
from ganforge.data import load_data
from ganforge.errors import ConfigError, GanforgeError
from ganforge import run_eval
from ganforge.metrics import (class_metrics, conditional_accuracy, density_coverage, get_extractor, reference_stats,
                              sample_mixture)
from ganforge.metrics import evaluate as E
from ganforge.metrics import features as Fe

from conftest import TINY_DCGAN

TINY = ["--batch-size", "16", "--quiet", "--set", "g_width=8", "--set", "d_width=8", "--set", "z_dim=16",
        "--set", "sample_every=0"]


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("GANFORGE_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("GANFORGE_INCEPTION_WEIGHTS", raising=False)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    assert main(["train", "dcgan", "--steps", "2", "--out", str(out), "--force", *TINY]) == 0
    return out


def one_line_error(capsys, argv, *needles):
    code = main([str(a) for a in argv])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("ganforge: error:"), err
    for n in needles:
        assert n in lines[0], lines[0]
    return lines[0]


# ---------------------------------------------------------------------------- features
def test_digits_features_shapes_and_weights_follow_the_data_set():
    x = torch.rand(7, 1, 28, 28) * 2 - 1
    for data in ("digits", "mnist"):
        ex = get_extractor("digits", data=data)
        f, logits = ex.extract(x)
        assert f.shape == (7, 128) and logits.shape == (7, 10) and ex.dim == 128
        assert data in ex.key
    assert get_extractor("digits", "digits").key != get_extractor("digits", "mnist").key
    # RGB and other sizes are converted, not rejected.
    f, _ = get_extractor("digits", "mnist").extract(torch.rand(3, 3, 32, 32))
    assert f.shape == (3, 128)


def test_unknown_features_name_suggests_the_closest():
    with pytest.raises(ConfigError, match="did you mean inception"):
        get_extractor("incepton")


# ---------------------------------------------------------------------------- reference cache
def test_reference_stats_are_cached_and_keyed(monkeypatch):
    ex = get_extractor("digits", "digits")
    calls = []
    real_extract = ex.extract
    monkeypatch.setattr(ex, "extract", lambda *a, **k: calls.append(1) or real_extract(*a, **k))
    x = load_data("digits").x[:300]

    first = reference_stats("digits", x, ex)
    assert not first["cached"] and first["path"].is_file() and len(calls) == 1
    second = reference_stats("digits", x, ex)
    assert second["cached"] and len(calls) == 1  # read back, not recomputed
    np.testing.assert_array_equal(first["mu"], second["mu"])
    np.testing.assert_array_equal(first["feats"], second["feats"])

    # A different image set, image size or extractor is a different entry.
    reference_stats("digits", x[:200], ex)
    reference_stats("digits", torch.nn.functional.interpolate(x.float(), size=32).to(torch.uint8), ex)
    assert len(calls) == 3
    other = get_extractor("digits", "mnist")
    third = reference_stats("digits", x, other)
    assert not third["cached"] and third["path"] != first["path"]

    # A damaged entry is recomputed, not trusted.
    first["path"].write_bytes(b"garbage")
    again = reference_stats("digits", x, ex)
    assert not again["cached"] and len(calls) == 4
    np.testing.assert_allclose(again["mu"], first["mu"])


# ---------------------------------------------------------------------------- metrics
def test_class_metrics():
    one = torch.zeros(100, 10)
    one[:, 3] = 5
    r = class_metrics(one)
    assert r["classes"] == 1 and r["class_kl"] == pytest.approx(math.log(10))
    even = torch.eye(10).repeat(10, 1)
    r = class_metrics(even)
    assert r["classes"] == 10 and r["class_kl"] == pytest.approx(0.0, abs=1e-12)
    # A stray sample does not cover a class: 1 of 1000 is below 10% of the uniform share (100).
    lab = torch.zeros(1000, dtype=torch.long)
    lab[0] = 7
    r = class_metrics(torch.nn.functional.one_hot(lab, 10).float())
    assert r["classes"] == 1


class _RealDigits:
    """A stand-in conditional generator that returns real digits of the asked class (or a wrong one)."""

    def __init__(self, shift=0):
        raw = load_data("digits")
        self.x, self.y, self.shift = raw.x.float() / 127.5 - 1, raw.y, shift
        self.cfg = {"data": "digits"}

    def sample(self, n, seed=0, use_ema=True, label=0):
        pool = self.x[self.y == (label + self.shift) % 10]
        idx = torch.randperm(len(pool), generator=torch.Generator().manual_seed(seed))[:n]
        return pool[idx]


def test_conditional_accuracy_tells_right_from_wrong_classes():
    acc, per_class = conditional_accuracy(_RealDigits(), n_per_class=30, per_class=True)
    assert acc >= 0.95 and len(per_class) == 10
    assert conditional_accuracy(_RealDigits(shift=1), n_per_class=30) <= 0.05


def test_modes_for_the_2d_mixtures():
    ev = E.Evaluator("grid25", "points")
    assert ev.metrics == ["modes"]
    full = ev.evaluate_samples(sample_mixture("grid25", 2500, torch.Generator().manual_seed(0)))
    assert full["modes"] == 25 and full["high_quality"] > 0.95
    few = ev.evaluate_samples(sample_mixture("grid25", 2500, torch.Generator().manual_seed(0), modes=[0, 5, 9]))
    assert few["modes"] == 3 and few["mode_kl"] > 2


def test_fd_of_real_halves_is_far_below_an_untrained_generator():
    raw = load_data("digits")
    a, b = run_eval._halves(len(raw))
    ev = E.Evaluator("digits", "image", raw.x[a], metrics="fd,classes", n=len(b))
    real = ev.evaluate_samples(raw.x[b])
    untrained = ev.evaluate(ganforge.create("dcgan", data="digits", **TINY_DCGAN))
    assert real["fd"] * 20 < untrained["fd"], (real["fd"], untrained["fd"])
    assert real["classes"] == 10 and real["class_kl"] < 0.05
    assert untrained["classes"] < 10


class _Identity:
    """An extractor whose features are its inputs: the metrics see chosen feature vectors."""

    name = key = "identity"
    has_logits = False

    def extract(self, x, total=None, progress=False, desc=""):
        return torch.as_tensor(x).float(), None


def _feature_evaluator(real: np.ndarray, n: int, metrics="pr,dc") -> E.Evaluator:
    ev = E.Evaluator("digits", "image", None, metrics=metrics, n=n)
    ev._ex, ev._ref = _Identity(), {"feats": real.astype(np.float32)}
    return ev


def _equal_size_coverage(n: int, k: int = 5) -> float:
    """Coverage of n against n i.i.d. points of one distribution: a real point's k nearest others
    (n - 1 real, n fake, exchangeable) are all real with probability C(n-1, k) / C(2n-1, k)."""
    return 1 - math.comb(n - 1, k) / math.comb(2 * n - 1, k)


@pytest.mark.parametrize("n", [10, 100, 1000, 3000])
def test_coverage_compares_equal_size_sets_at_every_n(n):
    # Against the whole pool of 5,000 real points the real balls shrink and coverage fell with n
    # (0.01 at n=10, 0.61 at 1,000, 0.90 at 3,000); on equal-size sets it stays near 0.97.
    rng = np.random.RandomState(n)
    d = 16
    expected = _equal_size_coverage(n)
    tol = 0.02 + 4 * math.sqrt(expected * (1 - expected) / n)
    independent = density_coverage(rng.randn(n, d), rng.randn(n, d), k=5)["coverage"]
    assert abs(independent - expected) < tol  # the band fits two independent equal-size draws
    got = _feature_evaluator(rng.randn(5000, d), n).evaluate_samples(torch.from_numpy(rng.randn(n, d)))
    assert got["prdc_n"] == n
    assert abs(got["coverage"] - expected) < tol, (got["coverage"], expected)
    assert abs(got["density"] - 1) < 0.1 + 4 / math.sqrt(n)


def test_prdc_cuts_both_sides_to_a_smaller_data_set_and_caches_the_radii(monkeypatch):
    rng = np.random.RandomState(14)
    calls = []
    real_knn = E.knn_radii
    monkeypatch.setattr(E, "knn_radii", lambda x, k: calls.append(k) or real_knn(x, k))
    ev = _feature_evaluator(rng.randn(300, 16), n=1000)
    got = ev.evaluate_samples(torch.from_numpy(rng.randn(1000, 16)))
    assert got["prdc_n"] == 300 and abs(got["coverage"] - _equal_size_coverage(300)) < 0.06
    ev.evaluate_samples(torch.from_numpy(rng.randn(1000, 16)))
    assert sorted(calls) == [3, 5]  # once per k, not once per evaluation

    # On disk beside the reference statistics: a new Evaluator (a new process) reads them back.
    ref = reference_stats("digits", load_data("digits").x[:200], get_extractor("digits", "digits"))
    first = E.reference_radii(ref, 150, 5)
    again = E.reference_radii(ref, 150, 5)
    assert len(calls) == 3 and len(first["idx"]) == 150
    np.testing.assert_array_equal(first["radii"], again["radii"])
    with pytest.raises(GanforgeError, match="k-NN radii"):
        E.reference_radii(ref, 201, 5)
    with pytest.raises(ConfigError, match="dc needs more than k = 5"):
        E.Evaluator("digits", "image", None, metrics="dc", n=5)


def test_kid_subsets_differ_when_the_fake_set_is_the_subset_size():
    rng = np.random.RandomState(15)
    ev = _feature_evaluator(rng.randn(1797, 16), n=1000, metrics="kid")
    got = ev.evaluate_samples(torch.from_numpy(rng.randn(1000, 16)))
    assert got["kid_subset"] == 250 and got["kid_std"] > 0


# ---------------------------------------------------------------------------- ganforge eval
def test_eval_cli_end_to_end(capsys, run_dir):
    assert main(["eval", str(run_dir), "--n", "300", "--quiet"]) == 0
    out = capsys.readouterr().out
    for name in ("fd", "kid", "precision", "recall", "density", "coverage", "classes", "eval.jsonl"):
        assert name in out, out
    rows = [json.loads(line) for line in (run_dir / "eval.jsonl").read_text().splitlines()]
    assert len(rows) == 1
    r = rows[0]
    assert r["n"] == 300 and r["features"] == "digits" and r["step"] == 2 and r["net"] == "G"  # no EMA in this run
    assert r["fd"] > 0 and 0 <= r["precision"] <= 1 and 0 <= r["classes"] <= 10

    assert main(["eval", str(run_dir), "--n", "300", "--metrics", "fd", "--baseline", "real", "--quiet"]) == 0
    rows = [json.loads(line) for line in (run_dir / "eval.jsonl").read_text().splitlines()]
    assert len(rows) == 2 and rows[1]["baseline"] == "real" and rows[1]["fd"] < r["fd"]
    assert "kid" not in rows[1]


def test_eval_every_logs_metrics_beside_the_losses(tmp_path):
    out = tmp_path / "run"
    assert main(["train", "dcgan", "--steps", "4", "--out", str(out), *TINY, "--set", "log_every=4",
                 "--eval-every", "2", "--set", "eval_n=64", "--set", "eval_metrics=fd,classes"]) == 0
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [2, 4]
    assert all("eval_fd" in r and "eval_classes" in r for r in rows)
    assert "G_loss" in rows[-1]


def test_eval_errors_are_one_line(capsys, run_dir, tmp_path, monkeypatch):
    line = one_line_error(capsys, ["eval", run_dir, "--metrics", "fd,kdi"], "unknown metric", "kid")
    assert "did you mean" in line
    one_line_error(capsys, ["eval", tmp_path], "not a ganforge run")
    one_line_error(capsys, ["eval", run_dir, "--metrics", "modes"], "modes")
    one_line_error(capsys, ["eval", run_dir, "--features", "incepton"], "inception")
    # No Inception weights anywhere here: one line saying so and how to point ganforge at a file.
    monkeypatch.setattr(Fe, "fid_helper_weights", lambda: None)
    monkeypatch.setattr(Fe, "_hub_weights", lambda: None)
    line = one_line_error(capsys, ["eval", run_dir, "--features", "inception"], "Inception")
    assert "GANFORGE_INCEPTION_WEIGHTS" in line and "--inception-weights" in line
    one_line_error(capsys, ["eval", run_dir, "--features", "inception", "--inception-weights", tmp_path / "nope.pth"],
                   "not found")
    # Nothing was written for the failed evaluations.
    assert not (run_dir / "eval.jsonl").exists() or all(
        "fd" in json.loads(r) for r in (run_dir / "eval.jsonl").read_text().splitlines())


def test_is_needs_a_classifier_head():
    ex = Fe.Extractor()
    ex.key, ex.name = "fake", "inception"
    ev = E.Evaluator("digits", "image", load_data("digits").x[:50], metrics="is", features="digits", n=50)
    ev._ex = ex
    ex._batch = lambda x: (torch.randn(len(x), 4), None)
    with pytest.raises(GanforgeError, match="no classifier head"):
        ev.evaluate_samples(torch.rand(50, 1, 28, 28))


def test_one_rule_for_which_network_is_measured_and_sampled(tmp_path, capsys):
    # The EMA copy when the run has one, during training, in `ganforge eval` and in `ganforge sample`;
    # --no-ema chooses G; every record names the network it measured.
    out = tmp_path / "run"
    assert main(["train", "dcgan", "--steps", "4", "--out", str(out), *TINY, "--set", "ema=0.5", "--set", "log_every=4",
                 "--eval-every", "4", "--set", "eval_n=64", "--set", "eval_metrics=fd"]) == 0
    logged = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()][-1]
    assert logged["eval_net"] == "G_ema"
    assert main(["eval", str(out), "--n", "64", "--metrics", "fd", "--quiet"]) == 0
    assert main(["eval", str(out), "--n", "64", "--metrics", "fd", "--quiet", "--no-ema"]) == 0
    ema, plain = [json.loads(line) for line in (out / "eval.jsonl").read_text().splitlines()]
    assert ema["net"] == "G_ema" and plain["net"] == "G"
    assert ema["fd"] == pytest.approx(logged["eval_fd"], rel=1e-6), "eval must measure what training measured"
    assert plain["fd"] != ema["fd"]  # a different network (4 steps in, they are still close)
    assert main(["sample", str(out), "--n", "4", "--out", str(tmp_path / "s.png")]) == 0
    assert "of G_ema" in capsys.readouterr().out


def test_untrained_baseline_reads_an_older_runs_settings(tmp_path):
    # A run recorded before a setting existed (here InfoGAN's c1_invariance and q_leak) is read
    # through run_config like any other, so the baseline builds the model it was trained as.
    out = tmp_path / "old"
    assert main(["train", "infogan", "--steps", "1", "--out", str(out), "--batch-size", "16", "--quiet",
                 "--set", "sample_every=0", "--set", "ckpt_every=0"]) == 0
    cfg = yaml.safe_load((out / "config.yaml").read_text())
    for key in ("c1_invariance", "q_leak"):
        cfg.pop(key, None)
    (out / "config.yaml").write_text(yaml.safe_dump(cfg))
    rec = run_eval.evaluate_run(out, metrics="fd", n=32, baseline="untrained", progress=False)
    assert rec["baseline"] == "untrained" and rec["fd"] > 0


def test_every_model_declares_a_known_evaluation_protocol():
    from ganforge.registry import all_models

    for name, cls in all_models().items():
        assert cls.evaluation == "samples" or cls.evaluation in run_eval.PROTOCOLS, name
    by_protocol = {name: cls.evaluation for name, cls in all_models().items()}
    assert by_protocol["dcgan"] == "samples" and by_protocol["pix2pix"] == "translation"
    assert by_protocol["munit"] == "translation" and by_protocol["cogan"] == "pairs"
    assert by_protocol["srgan"] == "restoration" and by_protocol["stackgan"] == "text"


@pytest.mark.parametrize("name,data", [("gan-int-cls", "digits-captions"), ("cogan", "digits-edges-unpaired"),
                                       ("context-encoder", "digits"), ("cyclegan", "digits-edges-unpaired")])
def test_models_measured_after_training_refuse_eval_every(name, data):
    # The engine's evaluator draws samples from noise; these models are measured by their own protocol.
    with pytest.raises(ConfigError, match="ganforge eval RUN"):
        ganforge.create(name, data, eval_every=5)


def test_format_result_shows_every_metric_and_no_counts():
    rec = {"time": "t", "step": 3, "data": "mnist", "n": 100, "seed": 0, "n_ref": 5, "net": "G", "baseline": None,
           "fd": 1.5, "kid": 2.0, "kid_std": 0.1, "kid_subset": 1000, "classes": 9, "n_classes": 10,
           "diversity_colour": 0.25, "diversity_styles": 8, "n_test": 52000, "knn_n_query": 100, "text_n": 5,
           "BtoA_l1": 0.2, "BtoA_kid": 3.0, "BtoA_kid_std": 0.2, "bicubic_psnr": 20.0, "confident_pairs": None}
    rows = {line.split("  ")[0].strip(): line.split("  ", 1)[1].strip()
            for line in E.format_result(rec).splitlines()[2:]}
    assert rows == {"fd": "1.5", "kid": "2 +- 0.1", "classes": "9 / 10", "diversity_colour": "0.25",
                    "BtoA l1": "0.2", "BtoA kid": "3 +- 0.2", "bicubic psnr": "20"}
