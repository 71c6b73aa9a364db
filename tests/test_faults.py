"""Faults, each shown by a test with real processes and real files (docs/faults.md lists them).

Diverging losses, checkpoints killed mid-write, a full disk, two processes in one run directory,
hostile or foreign checkpoints, corrupt images, and memory over a long run.
"""
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

import ganforge
from ganforge import config as C
from ganforge.cli import main
from ganforge.registry import get_model_class
from ganforge.training.checkpoint import load_checkpoint
from ganforge.training.engine import Trainer

from conftest import QUIET, REPO, TINY_GAN

CKPT = "checkpoints/last.pt"
SRC = str(REPO / "src")


def run_cli(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(code, err, *needles):
    assert code == 2, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("ganforge: error:"), f"not a one-line error:\n{err}"
    for n in needles:
        assert n in lines[0], f"{n!r} not in {lines[0]!r}"
    return lines[0]


def all_finite(state):
    return all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())


# -- losses that become NaN or infinite -------------------------------------------------------------

@pytest.fixture
def nan_from(monkeypatch):
    """``nan_from(k, until)``: gan's D loss gets a NaN term ``boom`` from its k-th D update on (0-based)
    up to ``until``, as a diverging model would give it."""
    def arm(k, until=None):
        calls = []

        def d_regularizer(self, real, fake):
            calls.append(1)
            bad = k <= len(calls) - 1 < (until if until is not None else 1 << 30)
            return {"boom": real.new_full((), float("nan")) if bad else real.new_zeros(())}

        monkeypatch.setattr(get_model_class("gan"), "d_regularizer", d_regularizer)
    return arm


def test_nan_loss_stops_with_step_phase_and_term_and_keeps_the_last_good_checkpoint(capsys, tmp_path, nan_from):
    out = tmp_path / "run"
    nan_from(5)  # the 6th iteration, step 6; checkpoints every 2 steps: step 4 is the last good one
    code, _, err = run_cli(capsys, "train", "gan", "--steps", "20", "--batch-size", "16", "--out", out, "--quiet",
                           *[f"--set={k}={v}" for k, v in {**TINY_GAN, "log_every": 1, "ckpt_every": 2,
                                                          "sample_every": 0}.items()])
    print(one_line_error(code, err, "nan", "step 6", "phase D", "boom", "step 4", "lower lr", "nan_policy=skip"))
    state = load_checkpoint(out / CKPT)
    assert state["step"] == 4 and all_finite(state)
    rows = [json.loads(r) for r in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3, 4, 5], "a step with a NaN loss was logged"
    # the run resumes from the checkpoint like any stopped run (and diverges again, here, at once)
    code, _, err = run_cli(capsys, "train", "--resume", out, "--quiet")
    one_line_error(code, err, "phase D", "step 4")


def test_nan_policy_skip_skips_the_update_and_counts_it(tmp_path, nan_from):
    cls = get_model_class("gan")
    cfg = C.resolve(cls.defaults, {"model": "gan", "batch_size": 16, **QUIET, **TINY_GAN, "nan_policy": "skip"})
    t = Trainer(cfg, tmp_path, progress=False)
    nan_from(0)
    d0, g0 = [p.detach().clone() for p in t.model.D.parameters()], [p.detach().clone() for p in t.model.G.parameters()]
    t.train_step({})
    assert all(torch.equal(a, b) for a, b in zip(d0, t.model.D.parameters())), "a skipped D update changed D"
    assert all(p.grad is None for p in t.model.D.parameters())
    assert not all(torch.equal(a, b) for a, b in zip(g0, t.model.G.parameters())), "G's finite update was skipped too"
    assert t.nan_skipped == 1

    nan_from(3, until=5)  # two bad D updates in a real run: skipped, counted, logged, and training goes on
    r = ganforge.train("gan", out=tmp_path / "run", steps=8, data="digits", batch_size=16, progress=False,
                       sets={**TINY_GAN, "log_every": 2, "sample_every": 0, "nan_policy": "skip"})
    assert r["step"] == 8 and r["nan_skipped"] == 2
    rows = [json.loads(r) for r in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [row.get("nan_skipped", 0) for row in rows] == [0, 1, 2, 2]  # steps 4 and 5
    assert all(v == v for row in rows for k, v in row.items() if k.endswith("loss")), "a NaN loss was averaged in"
    assert all_finite(load_checkpoint(tmp_path / "run" / CKPT))


def test_diverged_weights_never_replace_the_last_good_checkpoint(tmp_path):
    cls = get_model_class("gan")
    cfg = C.resolve(cls.defaults, {"model": "gan", "batch_size": 16, **QUIET, **TINY_GAN})
    t = Trainer(cfg, tmp_path, progress=False)
    t.train_step({})
    t.step = 1
    t.save_checkpoint()
    with torch.no_grad():
        next(t.model.G.parameters())[0] = float("inf")  # a finite loss can still give an infinite update
    t.step = 2
    with pytest.raises(ganforge.errors.DivergedError, match="not finite at step 2.*step 1"):
        t.save_checkpoint()
    state = load_checkpoint(tmp_path / CKPT)
    assert state["step"] == 1 and all_finite(state)


def test_nan_policy_is_checked(tmp_path):
    with pytest.raises(C.ConfigError, match="nan_policy"):
        C.resolve(get_model_class("gan").defaults, {"model": "gan", "nan_policy": "ignore"})
    assert C.ENGINE_DEFAULTS["nan_policy"] == "stop"


# -- hostile and foreign checkpoints ----------------------------------------------------------------

def _tiny_run(out, steps=2, **sets):
    return ganforge.train("gan", out=out, steps=steps, data="digits", batch_size=16, progress=False,
                          sets={**QUIET, **TINY_GAN, **sets})


class _Payload:
    """Unpickling this runs a shell command: what a checkpoint from a stranger could hold."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


@pytest.mark.parametrize("how", ["torch.save", "pickle"])
def test_checkpoint_that_runs_code_is_refused_without_running_it(capsys, tmp_path, how):
    import pickle

    out = tmp_path / "run"
    _tiny_run(out)
    marker = tmp_path / "pwned"
    evil = {**torch.load(out / CKPT, weights_only=True), "model": _Payload(marker)}
    with open(out / CKPT, "wb") as f:
        torch.save(evil, f) if how == "torch.save" else pickle.dump(evil, f)
    with open(out / CKPT, "rb") as f:  # the payload is live: an unrestricted load runs it
        torch.load(f, weights_only=False) if how == "torch.save" else pickle.load(f)
    assert marker.exists()
    marker.unlink()
    for argv in (["sample", out, "--out", tmp_path / "s.png"], ["train", "--resume", out, "--steps", "4"]):
        code, _, err = run_cli(capsys, *argv)
        line = one_line_error(code, err, "last.pt", "nothing in it was run")
        # a torch checkpoint reaches the payload's global; a plain pickle fails earlier, on its framing
        assert ("refused" in line and "posix.system" in line) if how == "torch.save" else "corrupt" in line
        assert not marker.exists(), f"`ganforge {argv[0]}` ran the checkpoint's code"


def test_checkpoint_format_is_checked_and_older_ones_still_load(capsys, tmp_path):
    out = tmp_path / "run"
    _tiny_run(out)
    good = torch.load(out / CKPT, weights_only=True)
    assert good["version"] == ganforge.training.checkpoint.FORMAT

    torch.save({**good, "version": 99}, out / CKPT)  # from a future ganforge
    code, _, err = run_cli(capsys, "train", "--resume", out, "--steps", "4")
    one_line_error(code, err, "format 99", "newer", "upgrade")

    torch.save({k: v for k, v in good.items() if k not in ("optimizers", "loader")}, out / CKPT)
    code, _, err = run_cli(capsys, "sample", out, "--out", tmp_path / "s.png")
    one_line_error(code, err, "not a ganforge checkpoint", "optimizers, loader")

    torch.save([1, 2, 3], out / CKPT)
    code, _, err = run_cli(capsys, "train", "--resume", out, "--steps", "4")
    one_line_error(code, err, "not a ganforge checkpoint", "list")

    torch.save({k: v for k, v in good.items() if k != "version"}, out / CKPT)  # before the field existed
    assert ganforge.train(resume=out, steps=4, progress=False)["step"] == 4


# -- processes in one run directory, and processes killed ------------------------------------------

def _env(**extra):
    return dict(os.environ, PYTHONPATH=SRC + os.pathsep + os.environ.get("PYTHONPATH", ""), OMP_NUM_THREADS="1",
                **extra)


def _start(out, *argv, env=None):
    """A real `ganforge train` process: a tiny gan on the digits that would run for ever."""
    cmd = [sys.executable, "-m", "ganforge", "train", *argv, "--quiet"]
    if "--resume" not in argv:
        cmd += ["gan", "--out", str(out), "--steps", "100000000", "--batch-size", "16",
                *[f"--set={k}={v}" for k, v in TINY_GAN.items()]]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env or _env())


def _wait_for(proc, what, timeout=120):
    deadline = time.time() + timeout
    while not what():
        if proc.poll() is not None or time.time() > deadline:
            proc.kill()
            pytest.fail(f"the training process never got there: {proc.communicate()[1][-2000:]}")
        time.sleep(0.02)


def _logged(out, n=1):
    log = out / "metrics.jsonl"
    return lambda: log.exists() and log.read_text().count("\n") >= n


def _kill(proc):
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL


def test_a_second_process_is_refused_and_a_killed_holders_lock_is_not_stale(capsys, tmp_path):
    out = tmp_path / "run"
    holder = _start(out, "--set=log_every=1", "--set=ckpt_every=5", "--set=sample_every=0")
    try:
        _wait_for(holder, _logged(out))
        code, _, err = run_cli(capsys, "train", "--resume", out, "--quiet")
        one_line_error(code, err, "in use by another ganforge process", f"pid {holder.pid}")
        code, _, err = run_cli(capsys, "train", "gan", "--out", out, "--force", "--steps", "3", "--quiet",
                               "--batch-size", "16")
        one_line_error(code, err, "in use", f"pid {holder.pid}")
        assert is_running(holder), "the second process disturbed the first"
        _wait_for(holder, lambda: (out / CKPT).exists())
    finally:
        _kill(holder)
    # the kernel released the dead holder's lock: the run resumes at once
    step = load_checkpoint(out / CKPT)["step"]
    assert ganforge.train(resume=out, steps=step + 2, progress=False)["step"] == step + 2


def is_running(proc):
    return proc.poll() is None


def _temps(out):
    return sorted(p.relative_to(out) for p in out.rglob(".*.tmp"))


def _check_run(out):
    """Every file of the run loads; returns the checkpoint's step (0 when there is none yet)."""
    from PIL import Image

    assert C.load_yaml(out / "config.yaml")["model"] == "gan"
    log = out / "metrics.jsonl"
    for line in log.read_text().splitlines() if log.exists() else []:
        assert isinstance(json.loads(line)["step"], int)
    for png in (out / "samples").glob("*.png"):
        with Image.open(png) as im:
            im.load()
    if not (out / CKPT).exists():
        return 0
    state = torch.load(out / CKPT, weights_only=True)
    assert all_finite(state)
    return state["step"]


@pytest.mark.slow  # four processes start (~20 s on a busy 2-core CPU)
def test_killed_at_any_point_the_run_resumes_and_nothing_is_corrupt(tmp_path):
    out = tmp_path / "run"
    # Each atomic write sleeps 0.2 s between its fsync and its rename, so a kill can be aimed into it.
    env = _env(GANFORGE_FAULT_WRITE_DELAY="0.2")
    step, in_flight, stale = 0, set(), set()

    def temp_in(folder):  # a write of this process in progress (not one a killed process left)
        return lambda: any(p.parts[0] == folder for p in set(_temps(out)) - stale)

    kill_when = [("starting", lambda: (out / "config.yaml").exists()),
                 ("writing a checkpoint", temp_in("checkpoints")),
                 ("writing a sample grid", temp_in("samples")),
                 ("between writes, 5 steps on", lambda: _logged(out, step + 5)())]
    for i, (when, ready) in enumerate(kill_when):
        argv = ["--resume", str(out)] if i else ["--set=log_every=1", "--set=ckpt_every=2", "--set=sample_every=3"]
        stale = set(_temps(out)) if out.exists() else set()
        proc = _start(out, *argv, env=env)
        _wait_for(proc, ready)
        in_flight |= set(_temps(out)) - stale
        _kill(proc)
        new = _check_run(out)
        assert new % 2 == 0 and new >= step, f"killed while {when}, the checkpoint went back from step {step} to {new}"
        step = new
    assert any(p.parts[0] == "checkpoints" for p in in_flight) and any(p.parts[0] == "samples" for p in in_flight), \
        f"no kill landed mid-write: {in_flight}"

    # the last resume runs to the end: the log has each step once, in order, and no temporary file is left
    r = ganforge.train(resume=out, steps=step + 3, progress=False)
    assert r["step"] == step + 3 and _check_run(out) == step + 3
    steps = [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(1, step + 4))
    assert _temps(out) == [], "temporary files of killed writes were left behind"


def test_a_log_row_cut_short_by_a_kill_is_dropped_on_resume(tmp_path):
    out = tmp_path / "run"
    _tiny_run(out, steps=4, ckpt_every=2)
    with open(out / "metrics.jsonl", "a") as f:
        f.write('{"step": 5, "time": 1.2, "D_lo')  # what a kill mid-append leaves
    ganforge.train(resume=out, steps=6, progress=False)
    assert [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()] == [2, 4, 6]


# -- a full disk ------------------------------------------------------------------------------------

def _small_disk(limit):
    """For a child process: files may grow to ``limit`` bytes, then writes fail with EFBIG, as on a
    full disk (ignoring SIGXFSZ, which would otherwise kill the process)."""
    import resource

    def limit_files():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return limit_files


def test_a_full_disk_while_saving_is_one_line_and_keeps_the_previous_checkpoint(tmp_path):
    out = tmp_path / "run"
    _tiny_run(out, steps=4, ckpt_every=2)
    before = (out / CKPT).read_bytes()
    # room for config.yaml and the log, not for a checkpoint
    limit = 16 << 10
    assert len(before) > 2 * limit and (out / "config.yaml").stat().st_size < limit
    r = subprocess.run([sys.executable, "-m", "ganforge", "train", "--resume", str(out), "--steps", "8", "--quiet"],
                       capture_output=True, text=True, env=_env(), timeout=300, preexec_fn=_small_disk(limit))
    one_line_error(r.returncode, r.stderr, "checkpoint of step 6", "File too large", "disk full", "step 4")
    assert (out / CKPT).read_bytes() == before and load_checkpoint(out / CKPT)["step"] == 4
    assert _temps(out) == [], "the failed write left its temporary file"
    assert ganforge.train(resume=out, steps=6, progress=False)["step"] == 6  # and with room again, it goes on


# -- corrupt images in a folder ---------------------------------------------------------------------

def _image_folder(folder, good=6, bad=()):
    import io

    import numpy as np
    from PIL import Image

    folder.mkdir()
    for i in range(good):
        Image.fromarray(np.full((16, 16), i * 40, np.uint8)).save(folder / f"ok{i}.png")
    png = io.BytesIO()
    Image.fromarray(np.arange(256, dtype=np.uint8).reshape(16, 16)).save(png, format="PNG")
    kinds = {"garbage": b"\x89PNG\r\n\x1a\n this is not an image", "empty": b"",
             "truncated": png.getvalue()[:-40]}  # a whole header, pixels cut off: fails only when decoded
    for name in bad:
        (folder / name).write_bytes(kinds[name.split(".")[0].rstrip("0123456789")])
    return folder


def test_corrupt_images_are_all_named_and_skip_bad_images_trains_on_the_rest(capsys, tmp_path):
    folder = _image_folder(tmp_path / "imgs", bad=("garbage.png", "empty.jpg", "truncated.png"))
    argv = ["train", "gan", "--data", f"folder:{folder}", "--steps", "2", "--batch-size", "4", "--quiet",
            *[f"--set={k}={v}" for k, v in {**TINY_GAN, "sample_every": 0}.items()]]
    code, _, err = run_cli(capsys, *argv, "--out", tmp_path / "a")
    one_line_error(code, err, "3 of the 9 images", "garbage.png", "empty.jpg", "truncated.png", "--skip-bad-images")
    assert not (tmp_path / "a").exists()

    code, out, err = run_cli(capsys, *argv, "--out", tmp_path / "b", "--skip-bad-images")
    assert code == 0 and "trained to step 2" in out, err
    assert "skipped 3 of the 9 images" in err and "truncated.png" in err
    assert C.load_yaml(tmp_path / "b" / "config.yaml")["skip_bad_images"] is True  # a resume skips them too
    assert ganforge.train(resume=tmp_path / "b", steps=3, progress=False)["step"] == 3


def test_many_corrupt_images_make_a_line_of_sensible_length(tmp_path):
    from ganforge.data.folder import load_folder

    folder = _image_folder(tmp_path / "imgs", good=2, bad=[f"garbage{i:02d}.png" for i in range(40)])
    with pytest.raises(ganforge.errors.DataError) as e:
        load_folder(folder)
    msg = str(e.value)
    assert "40 of the 42 images" in msg and "garbage04.png" in msg and "and 35 more" in msg
    assert "garbage05.png" not in msg and len(msg) < 400 and "\n" not in msg
    raw = load_folder(folder, skip_bad=True)
    assert len(raw.x) == 2 and "40 unreadable skipped" in raw.note


# -- a long run -------------------------------------------------------------------------------------

SOAK = """
import json, sys
import ganforge
from ganforge.training.engine import Trainer

def rss_kb():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))

seen, save = [], Trainer.save_checkpoint
def save_and_measure(self):
    save(self)
    seen.append((self.step, rss_kb()))
Trainer.save_checkpoint = save_and_measure
ganforge.train("dcgan", out=sys.argv[1], steps=int(sys.argv[2]), data="digits", batch_size=16, progress=False,
               eval_every=200, sets={"g_width": 8, "d_width": 8, "z_dim": 16, "log_every": 10, "ckpt_every": 20,
                                     "sample_every": 20, "eval_n": 200, "eval_metrics": "fd,classes"})
print(json.dumps(seen))
"""


@pytest.mark.slow  # about 30 s
def test_a_long_run_with_frequent_checkpoints_samples_and_evaluation_keeps_a_flat_memory_footprint(tmp_path):
    steps = 1000
    t = time.time()
    r = subprocess.run([sys.executable, "-c", SOAK, str(tmp_path / "run"), str(steps)], capture_output=True,
                       text=True, env=_env(), timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    seen = json.loads(r.stdout.splitlines()[-1])
    # after the first evaluation (which loads the feature network) the footprint is warm
    warm = [kb for step, kb in seen if step >= 200]
    base, end, peak = warm[0], warm[-1], max(warm)
    print(f"\nVmRSS over {steps} steps, {len(seen)} checkpoints and sample grids, {steps // 200} evaluations, "
          f"{time.time() - t:.0f} s: {seen[0][1] / 1024:.1f} MiB at step {seen[0][0]}, {base / 1024:.1f} MiB at "
          f"step 200, {end / 1024:.1f} MiB at the end (peak {peak / 1024:.1f} MiB)")
    assert len(warm) >= 40
    assert end - base < 24 << 10 and peak - base < 32 << 10, f"memory grew: {seen}"
