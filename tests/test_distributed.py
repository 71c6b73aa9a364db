"""Data-parallel training (DistributedDataParallel, one wrapper per phase): 2 CPU processes (gloo)
train exactly what one process trains."""
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import ganforge
from ganforge.cli import main
from ganforge.errors import ConfigError
from ganforge.training import distributed
from ganforge.training.checkpoint import load_checkpoint

from conftest import TINY_GAN

# gan without dropout: no batch norm and no random masks, so a process's slice of the global
# batch goes through exactly the arithmetic one process does on the whole batch.
SETS = {**TINY_GAN, "dropout": 0.0, "log_every": 2, "sample_every": 0, "ckpt_every": 0}


def _cli(out, steps, *extra):
    cmd = [sys.executable, "-m", "ganforge", "train", "gan", "--steps", str(steps), "--batch-size", "32",
           "--quiet", "--out", str(out)]
    for k, v in SETS.items():
        cmd += ["--set", f"{k}={v}"]
    return subprocess.run(cmd + list(extra), capture_output=True, text=True, timeout=300)


def _one_process(out, steps):
    return ganforge.train("gan", out=out, steps=steps, data="digits", batch_size=32, progress=False, sets=SETS)


def _close(run_a, run_b, atol=1e-5):
    a, b = load_checkpoint(run_a / "checkpoints" / "last.pt"), load_checkpoint(run_b / "checkpoints" / "last.pt")
    assert a["step"] == b["step"]
    worst = max((a["model"][k].float() - b["model"][k].float()).abs().max().item() for k in a["model"])
    assert worst < atol, f"weights differ by up to {worst}"
    return worst


def test_two_processes_train_what_one_does_and_resume_crosses_over(tmp_path):
    ddp, one = tmp_path / "ddp", tmp_path / "one"
    r = _cli(ddp, 4, "--nproc", "2")
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr
    assert r.stdout.count("trained to step 4") == 1, "only rank 0 reports"
    _one_process(one, 4)
    _close(ddp, one)
    # Only rank 0 writes: one checkpoint, one log row per log step, one final sample grid.
    assert [p.name for p in (ddp / "checkpoints").iterdir()] == ["last.pt"]
    steps = [line for line in (ddp / "metrics.jsonl").read_text().splitlines() if line.strip()]
    assert len(steps) == 2
    assert [p.name for p in (ddp / "samples").iterdir()] == ["step_000004.png"]
    # Loader position and RNG are rank-independent: the 2-process run resumes in one process.
    ganforge.train(resume=ddp, steps=6, progress=False)
    ganforge.train(resume=one, steps=6, progress=False)
    _close(ddp, one)


@pytest.mark.slow
@pytest.mark.parametrize("model,extra", [("wgan-gp", {}), ("lsgan", {"r1_gamma": 1.0, "lr_decay": 0.5})])
def test_gradient_penalty_and_n_critic_train_under_ddp_as_in_one_process(tmp_path, model, extra):
    """WGAN-GP: five critic updates per G update, each backpropagating through a gradient penalty
    (a double backward inside the DDP-wrapped step), on 2-D points with norm-free toy nets. lsgan
    with R1 (a double backward through D on real data) and the engine's learning-rate decay."""
    sets = {"toy_g_norm": "none", "log_every": 2, "sample_every": 0, "ckpt_every": 0, "toy_hidden": 32, **extra}
    flags = [a for k, v in sets.items() for a in ("--set", f"{k}={v}")]
    r = subprocess.run([sys.executable, "-m", "ganforge", "train", model, "--data", "ring8", "--steps", "3",
                        "--batch-size", "32", "--quiet", "--out", str(tmp_path / "ddp"), "--nproc", "2", *flags],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    ganforge.train(model, out=tmp_path / "one", steps=3, data="ring8", batch_size=32, progress=False, sets=sets)
    _close(tmp_path / "ddp", tmp_path / "one")


@pytest.mark.slow
def test_one_process_run_resumes_under_two(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    _one_process(a, 2)
    r = subprocess.run([sys.executable, "-m", "ganforge", "train", "--resume", str(a), "--steps", "4",
                        "--nproc", "2", "--quiet"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    _one_process(b, 4)
    _close(a, b)


def test_mismatched_runs_are_detected(tmp_path):
    # The tolerance above can fail: a run with another seed differs by far more than 1e-5.
    a, b = tmp_path / "a", tmp_path / "b"
    _one_process(a, 2)
    ganforge.train("gan", out=b, steps=2, data="digits", batch_size=32, progress=False, seed=1, sets=SETS)
    with pytest.raises(AssertionError):
        _close(a, b)


@pytest.mark.parametrize("value", ["0", "-1", "two"])
def test_nproc_rejects_nonsense(value, capsys):
    with pytest.raises(SystemExit) as e:
        main(["train", "gan", "--nproc", value])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--nproc" in err and "Traceback" not in err


def test_launcher_checks_its_argument():
    for bad in (0, -3, True, 10_000):
        with pytest.raises(ConfigError):
            distributed.launch(bad, ganforge.train, "gan")


def test_python_api_trains_on_two_processes(tmp_path):
    # The launcher takes a callable, so the Python API needs no CLI to go data-parallel.
    r = ganforge.train("gan", out=tmp_path / "ddp", steps=4, data="digits", batch_size=32, progress=False,
                       sets=SETS, nproc=2)
    assert r["step"] == 4 and r["out"] == tmp_path / "ddp"
    _one_process(tmp_path / "one", 4)
    _close(tmp_path / "ddp", tmp_path / "one")
    # A user's mistake inside the processes comes back as the same one-line error.
    with pytest.raises(ConfigError, match="does not split evenly"):
        ganforge.train("gan", out=tmp_path / "odd", steps=2, data="digits", batch_size=33, progress=False,
                       sets=SETS, nproc=2)


def _train_and_keep_each_rank(out, sets):
    """Runs in each training process: trains, then saves this process's weights as rank<R>.pt."""
    from ganforge.training import engine

    finish = engine.Trainer.finish

    def keep(self, last):
        torch.save(self.model.state_dict(), Path(out) / f"rank{self.rank}.pt")
        return finish(self, last)

    engine.Trainer.finish = keep
    return ganforge.train("sgan", out=out, steps=3, data="digits", batch_size=32, progress=False, sets=sets)


def test_sgan_data_dependent_init_is_the_same_on_every_process(tmp_path):
    # Weight norm's init sets each unit's scale and bias from a batch's statistics. On each process's
    # own slice they differed (by up to 0.67), and averaged gradients then moved different models.
    sets = {"g_hidden": [16, 16], "d_hidden": [32, 16, 16, 16, 16], "z_dim": 16, "labels_per_class": 2,
            "log_every": 2, "sample_every": 0, "ckpt_every": 0}
    distributed.launch(2, _train_and_keep_each_rank, tmp_path, sets)
    a, b = torch.load(tmp_path / "rank0.pt"), torch.load(tmp_path / "rank1.pt")
    assert bool(a["d_initialized"]) and set(a) == set(b)
    differ = {k: (a[k].float() - b[k].float()).abs().max().item() for k in a if not torch.equal(a[k], b[k])}
    assert not differ, f"the processes hold different models after 3 steps: {differ}"


def test_backend_follows_the_device():
    assert distributed.backend_for("cpu") == "gloo"
    assert distributed.backend_for("cuda") == "nccl" and distributed.backend_for("cuda:1") == "nccl"
    assert distributed.backend_for("auto") == ("nccl" if torch.cuda.is_available() else "gloo")


def test_sync_bn_converts_on_nccl_and_is_a_clear_error_on_gloo():
    model = ganforge.create("dcgan", g_width=8, d_width=8, z_dim=16)
    keys = set(model.state_dict())
    n_bn = sum(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    assert n_bn > 0
    assert distributed.convert_sync_bn(model, None) == 0  # one process: nothing to synchronise
    with pytest.raises(ConfigError, match="CUDA"):
        distributed.convert_sync_bn(model, "gloo")
    assert distributed.convert_sync_bn(model, "nccl") == n_bn
    assert sum(isinstance(m, torch.nn.SyncBatchNorm) for m in model.modules()) == n_bn
    assert set(model.state_dict()) == keys, "checkpoints must load with and without sync_bn"


@pytest.mark.slow
def test_sync_bn_under_two_cpu_processes_fails_cleanly(tmp_path):
    r = subprocess.run([sys.executable, "-m", "ganforge", "train", "dcgan", "--steps", "2", "--batch-size", "16",
                        "--nproc", "2", "--quiet", "--out", str(tmp_path / "run"), "--set", "sync_bn=true",
                        "--set", "g_width=8", "--set", "d_width=8"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 2
    assert "Traceback" not in r.stderr and "SyncBatchNorm" in r.stderr
    assert not (tmp_path / "run" / "config.yaml").exists()
