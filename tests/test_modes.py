"""Mode collapse on grid25: a short run of our best objective, through the benchmark's own code
path (benchmarks/modes.py), captures far more modes than an untrained generator."""
import importlib.util
import json
import subprocess
import sys
from argparse import Namespace
from pathlib import Path

import pytest
import torch

import ganforge
from ganforge.metrics import toy_modes

REPO = Path(__file__).resolve().parents[1]
BEST = "lsgan"  # the best model of benchmarks/modes.py on grid25 (see docs/objectives.md)


def load_benchmark():
    spec = importlib.util.spec_from_file_location("modes_benchmark", REPO / "benchmarks" / "modes.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.slow
def test_best_objective_captures_grid25_modes(tmp_path):
    bench = load_benchmark()
    torch.set_num_threads(1)
    settings = {**bench.COMMON, **bench.OVERRIDES[BEST]}
    untrained = toy_modes(ganforge.create(BEST, data="grid25", **settings).sample(2500, seed=10_000), "grid25")
    args = Namespace(steps=1500, batch_size=128, n_samples=2500, out=str(tmp_path))
    trained = bench.run_one(BEST, "grid25", 0, args)
    assert untrained["modes"] <= 5, untrained
    assert trained["modes"] >= 12 and trained["modes"] >= untrained["modes"] + 8, (untrained, trained)
    assert trained["kl"] < untrained["kl"]


@pytest.mark.slow
def test_benchmark_prints_a_table_and_the_command(tmp_path):
    out = subprocess.run([sys.executable, str(REPO / "benchmarks" / "modes.py"), "--models", "bgan", "--data",
                          "ring8", "--steps", "20", "--seeds", "0", "1", "--out", str(tmp_path / "runs"), "--json",
                          str(tmp_path / "r.json")], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    assert "| bgan |" in out.stdout and "command: python benchmarks/modes.py --models bgan" in out.stdout
    runs = json.loads((tmp_path / "r.json").read_text())["runs"]
    assert [r["seed"] for r in runs] == [0, 1] and all(0 <= r["modes"] <= 8 for r in runs)
