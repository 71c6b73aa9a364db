"""Watching a run: plain progress lines when the output is not a terminal, and --tensorboard event files."""
import os
import re
import subprocess
import sys

import pytest

from ganforge.cli import main

from conftest import REPO

TINY = ["--batch-size", "16", "--set", "g_width=8", "--set", "d_width=8", "--set", "z_dim=16"]


def test_progress_is_plain_lines_when_output_is_a_pipe(tmp_path):
    """A redirected run (nohup, CI) gets one line per log_every steps and the last step, never tqdm's '\\r'."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")]))
    r = subprocess.run([sys.executable, "-m", "ganforge", "train", "dcgan", "--steps", "10", "--out",
                        str(tmp_path / "run"), "--set", "log_every=4", "--set", "sample_every=0", *TINY],
                       capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "\r" not in r.stdout + r.stderr
    lines = [line for line in r.stderr.splitlines() if re.match(r"dcgan step \d+/10 ", line)]
    assert [int(re.search(r"step (\d+)/", line).group(1)) for line in lines] == [4, 8, 10], r.stderr
    assert all(re.search(r"D_loss [-\d.e]+ G_loss [-\d.e]+ \| [\d,]+ img/s \| elapsed \d:\d\d:\d\d, "
                         r"left \d:\d\d:\d\d$", line) for line in lines), lines
    assert "100%" in lines[-1]


def test_quiet_means_no_progress_lines(tmp_path, capfd):
    assert main(["train", "dcgan", "--steps", "4", "--out", str(tmp_path / "run"), "--set", "log_every=2",
                 "--set", "sample_every=0", "--quiet", *TINY]) == 0
    assert "step 2/4" not in capfd.readouterr().err


def test_tensorboard_needs_its_package(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # as if not installed
    out = tmp_path / "run"
    assert main(["train", "dcgan", "--steps", "2", "--out", str(out), "--tensorboard", "--quiet", *TINY]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and "pip install 'ganforge[tensorboard]'" in err[0], err
    assert not out.exists()  # refused before anything was written


def test_tensorboard_event_files(tmp_path, capsys):
    pytest.importorskip("tensorboard", reason="tensorboard not installed (pip install 'ganforge[tensorboard]')")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = tmp_path / "run"
    assert main(["train", "dcgan", "--steps", "6", "--out", str(out), "--tensorboard", "--quiet",
                 "--set", "log_every=2", "--set", "sample_every=3", "--eval-every", "3", "--set", "eval_n=50",
                 "--set", "eval_metrics=fd", *TINY]) == 0
    assert "tensorboard --logdir" in capsys.readouterr().out
    # Resume twice from the step-6 checkpoint, as after a crash: steps 7-8 are trained again, and
    # TensorBoard must show them once (and keep step 6).
    ckpt = (out / "checkpoints" / "last.pt").read_bytes()
    for _ in range(2):
        (out / "checkpoints" / "last.pt").write_bytes(ckpt)
        assert main(["train", "--resume", str(out), "--steps", "8", "--quiet"]) == 0
    ea = EventAccumulator(str(out / "tensorboard"), size_guidance={"scalars": 0, "images": 0})
    ea.Reload()
    tags = ea.Tags()
    assert {"loss/D_loss", "loss/G_loss", "train/img_per_s", "eval/fd"} <= set(tags["scalars"]), tags
    assert [e.step for e in ea.Scalars("loss/G_loss")] == [2, 3, 4, 6, 8]  # log steps and the eval steps
    assert [e.step for e in ea.Scalars("eval/fd")] == [3, 6]
    images = ea.Images("samples")
    assert [e.step for e in images] == [3, 6, 8] and images[0].width > 100 and images[0].height > 100
