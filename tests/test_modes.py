"""Mode collapse on grid25: a short run of our best objective, through the benchmark's own code
path (benchmarks/modes.py), captures far more modes than an untrained generator; the benchmark's
declared settings are valid for every model; the toy-network options of ganforge.nn.points."""
import importlib.util
import json
import subprocess
import sys
from argparse import Namespace
from pathlib import Path

import pytest
import torch

import ganforge
from ganforge.errors import ConfigError
from ganforge.metrics import toy_modes
from ganforge.nn import MLPCritic

REPO = Path(__file__).resolve().parents[1]
BEST = "lsgan+r1"  # ours that gets furthest on grid25 (benchmarks/modes.py, a named variant of lsgan)


def load_benchmark():
    spec = importlib.util.spec_from_file_location("modes_benchmark", REPO / "benchmarks" / "modes.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.slow
def test_best_objective_captures_grid25_modes(tmp_path):
    bench = load_benchmark()
    torch.set_num_threads(1)
    model, extra = bench.VARIANTS[BEST]
    settings = {**bench.COMMON, **bench.OVERRIDES[model], **extra}
    untrained = toy_modes(ganforge.create(model, data="grid25", **settings).sample(2500, seed=10_000), "grid25")
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


def test_benchmark_settings_build_every_model_and_score_the_ema():
    bench = load_benchmark()
    assert set(bench.OVERRIDES) == set(bench.MODELS)
    for name in bench.MODELS:
        model = ganforge.create(name, data="grid25", **{**bench.COMMON, **bench.OVERRIDES[name]})
        assert model.cfg["z_dim"] == 2 and model.G(torch.randn(4, 2)).shape == (4, 2), name
    for name, (model, extra) in bench.VARIANTS.items():  # a variant is a registered model plus valid options
        m = ganforge.create(model, data="grid25", **{**bench.COMMON, **bench.OVERRIDES[model], **extra})
        assert all(m.cfg[k] == v for k, v in extra.items()), name
    # The EMA decay is one setting for all models; with it the scored network is G_ema.
    assert bench.COMMON["ema"] > 0
    model = ganforge.create("lsgan", data="grid25", **bench.COMMON)
    assert model.generator_net() is model.G_ema


def test_toy_generator_options():
    plain = ganforge.create("lsgan", data="grid25", z_dim=2)
    # Without options G is the former plain MLP: same layers, same state-dict keys (old runs load).
    assert list(plain.G.state_dict()) == [f"{i}.{k}" for i in (0, 2, 4, 6) for k in ("weight", "bias")]
    assert not any(isinstance(m, torch.nn.BatchNorm1d) for m in plain.G.modules())
    bn = ganforge.create("lsgan", data="grid25", z_dim=2, toy_g_norm="batch", toy_g_hidden=32, toy_g_layers=4)
    linears = [m for m in bn.G.modules() if isinstance(m, torch.nn.Linear)]
    assert sum(isinstance(m, torch.nn.BatchNorm1d) for m in bn.G.modules()) == 4
    assert [m.out_features for m in linears] == [32, 32, 32, 32, 2] and linears[-1].bias is not None
    assert bn.D.body[1].out_features == 128  # D keeps toy_hidden
    with pytest.raises(ConfigError, match="toy_g_norm"):
        ganforge.create("lsgan", data="grid25", toy_g_norm="layer")


def test_packed_critic_judges_samples_in_groups():
    d = MLPCritic(2, 16, 2, pack=2)
    x = torch.randn(8, 2)
    assert d(x).shape == (4,) and d.body[1].in_features == 4
    # A pack is two consecutive samples side by side: (x0, x1) is judged as one 4-vector.
    flat = MLPCritic(4, 16, 2)
    flat.load_state_dict(d.state_dict())
    torch.testing.assert_close(d(x), flat(x.reshape(4, 4)))
    with pytest.raises(ConfigError, match="multiple of 2"):
        d(torch.randn(7, 2))
    model = ganforge.create("lsgan", data="grid25", z_dim=2, toy_pack=2)
    out = model.d_step({"x": torch.randn(16, 2)})
    assert out["loss"].ndim == 0 and torch.isfinite(out["loss"])
