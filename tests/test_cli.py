"""The `ganforge` command: listing, training, sampling, and every user error as one line with exit 2."""
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from ganforge.cli import main
from ganforge.training.checkpoint import load_checkpoint

from conftest import REPO

TINY = ["--batch-size", "16", "--quiet", "--set", "g_width=8", "--set", "d_width=8", "--set", "z_dim=16",
        "--set", "sample_every=0"]


def run_cli(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code, err, *needles):
    assert code == 2, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected a one-line error, got:\n{err}"
    assert lines[0].startswith("ganforge: error:")
    for n in needles:
        assert n in lines[0], f"{n!r} not in {lines[0]!r}"


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    assert main(["train", "dcgan", "--steps", "3", "--out", str(out), "--force", *TINY]) == 0
    return out


def test_list_and_datasets(capsys):
    code, out, _ = run_cli(capsys, "list")
    assert code == 0
    for name in ("gan", "dcgan", "Goodfellow", "Radford", "2014", "2015"):
        assert name in out
    code, out, _ = run_cli(capsys, "datasets")
    assert code == 0
    assert "digits" in out and "embedded" in out and "grid25" in out and "mnist" in out


def test_train_writes_a_run(capsys, trained_run):
    for name in ("config.yaml", "metrics.jsonl", "generator.safetensors", "checkpoints/last.pt", "losses.png",
                 "samples/step_000003.png"):
        assert (trained_run / name).exists(), name


@pytest.mark.parametrize("argv,needles", [
    (["train", "dcgna"], ["dcgan", "unknown model"]),
    (["train", "dcgan", "--data", "mnits"], ["mnist", "unknown data set"]),
    (["train", "dcgan", "--steps", "-5"], ["--steps", "positive"]),
    (["train", "dcgan", "--steps", "100000000000000"], ["steps"]),
    (["train", "dcgan", "--steps", "1e20"], ["--steps"]),
    (["train", "dcgan", "--batch-size", "0"], ["--batch-size"]),
    (["train", "dcgan", "--batch-size", "5000"], ["batch size 5000", "1797"]),
    (["train", "dcgan", "--set", "z_dmi=3"], ["z_dim"]),
    (["train", "dcgan", "--set", "nonsense"], ["key=value"]),
    (["train", "dcgan", "--set", "lr=fast"], ["lr"]),
    (["train", "dcgan", "--set", "n_critic=2.5"], ["n_critic", "integer"]),
    (["train", "dcgan", "--config", "/nonexistent/x.yaml"], ["config file not found"]),
    (["train", "dcgan", "--data", "folder:/nonexistent/images"], ["/nonexistent/images"]),
    (["train", "dcgan", "--data", "mnist", "--data-root", "/nonexistent/root"], ["--download"]),
    (["train", "dcgan", "--data", "grid25"], ["dcgan", "points"]),
    (["train", "dcgan", "--device", "gpu"], ["--device"]),
    (["train", "dcgan", "--set", "image_size=36"], ["image size", "36"]),
    (["train"], ["name a model"]),
    (["frobnicate"], ["frobnicate"]),
    (["train", "--resume", "/nonexistent/run"], ["not a ganforge run"]),
    (["sample", "/nonexistent/run"], ["not a ganforge run"]),
])
def test_user_errors_are_one_line(capsys, tmp_path, argv, needles):
    with pytest.raises(SystemExit) as exc:  # argparse-level errors exit from the parser
        raise SystemExit(main(argv + ["--out", str(tmp_path / "o")] if argv[0] == "train" and
                              "--resume" not in argv else argv))
    _, err = capsys.readouterr()
    assert_one_line_error(exc.value.code, err, *needles)
    assert not (tmp_path / "o").exists(), "a failed command created its run directory"


def test_bad_config_file(capsys, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("steps: [1, 2\n")
    code, _, err = run_cli(capsys, "train", "dcgan", "--config", bad, "--out", tmp_path / "o")
    assert_one_line_error(code, err, "cannot parse")


def test_corrupt_image_in_folder(capsys, tmp_path):
    from PIL import Image

    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(4):
        Image.fromarray(np.full((16, 16), i * 60, np.uint8)).save(folder / f"ok{i}.png")
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not an image")
    code, _, err = run_cli(capsys, "train", "dcgan", "--data", f"folder:{folder}", "--out", tmp_path / "o")
    assert_one_line_error(code, err, "broken.png")


def test_existing_run_is_never_overwritten(capsys, trained_run):
    before = {p: p.read_bytes() for p in trained_run.rglob("*") if p.is_file()}
    code, _, err = run_cli(capsys, "train", "dcgan", "--steps", "2", "--out", trained_run, *TINY)
    assert_one_line_error(code, err, "already holds a run", "--resume", "--force")
    after = {p: p.read_bytes() for p in trained_run.rglob("*") if p.is_file()}
    assert before == after


def test_force_starts_over_but_keeps_foreign_files(capsys, tmp_path):
    out = tmp_path / "run"
    assert main(["train", "gan", "--steps", "4", "--out", str(out), "--batch-size", "16", "--quiet"]) == 0
    (out / "notes.txt").write_text("mine")
    assert main(["train", "gan", "--steps", "2", "--out", str(out), "--batch-size", "16", "--quiet", "--force"]) == 0
    assert load_checkpoint(out / "checkpoints" / "last.pt")["step"] == 2
    assert (out / "notes.txt").read_text() == "mine"


def test_corrupt_checkpoint_is_reported_and_kept(capsys, tmp_path):
    out = tmp_path / "run"
    assert main(["train", "gan", "--steps", "2", "--out", str(out), "--batch-size", "16", "--quiet"]) == 0
    ckpt = out / "checkpoints" / "last.pt"
    ckpt.write_bytes(b"garbage")
    code, _, err = run_cli(capsys, "train", "--resume", out, "--steps", "4")
    assert_one_line_error(code, err, "cannot load checkpoint", "last.pt")
    code, _, err = run_cli(capsys, "sample", out)
    assert_one_line_error(code, err, "cannot load checkpoint")
    assert ckpt.read_bytes() == b"garbage"


def test_resume_refuses_changed_settings(capsys, trained_run):
    code, _, err = run_cli(capsys, "train", "--resume", trained_run, "--batch-size", "8")
    assert_one_line_error(code, err, "only --steps")
    code, _, err = run_cli(capsys, "train", "--resume", trained_run, "--steps", "2")
    assert_one_line_error(code, err, "already at step 3")


def test_sample_png_and_npz(capsys, tmp_path, trained_run):
    code, out, _ = run_cli(capsys, "sample", trained_run, "--n", "10", "--seed", "1", "--out", tmp_path / "a.npz")
    assert code == 0 and "a.npz" in out
    a = np.load(tmp_path / "a.npz")["images"]
    assert a.shape == (10, 1, 28, 28) and a.dtype == np.float32 and a.min() >= -1 and a.max() <= 1
    run_cli(capsys, "sample", trained_run, "--n", "10", "--seed", "1", "--out", tmp_path / "b.npz")
    run_cli(capsys, "sample", trained_run, "--n", "10", "--seed", "2", "--out", tmp_path / "c.npz")
    assert np.array_equal(a, np.load(tmp_path / "b.npz")["images"])
    assert not np.array_equal(a, np.load(tmp_path / "c.npz")["images"])
    code, _, _ = run_cli(capsys, "sample", trained_run, "--n", "16", "--out", tmp_path / "g.png")
    from PIL import Image

    assert code == 0 and Image.open(tmp_path / "g.png").size[0] > 4 * 28
    code, _, err = run_cli(capsys, "sample", trained_run, "--out", tmp_path / "x.jpg")
    assert_one_line_error(code, err, ".png or .npz")


def test_points_run_samples_npz(capsys, tmp_path):
    out = tmp_path / "toy"
    assert main(["train", "gan", "--data", "ring8", "--steps", "3", "--out", str(out), "--quiet",
                 "--set", "g_hidden=16", "--set", "d_hidden=8"]) == 0
    assert (out / "samples" / "step_000003.png").exists()
    code, _, _ = run_cli(capsys, "sample", out, "--n", "7", "--out", tmp_path / "p.npz")
    assert code == 0 and np.load(tmp_path / "p.npz")["points"].shape == (7, 2)


def test_console_script_prints_no_traceback(tmp_path):
    exe = os.path.join(os.path.dirname(sys.executable), "ganforge")
    r = subprocess.run([exe, "train", "dcgna", "--out", str(tmp_path / "o")], capture_output=True, text=True)
    assert r.returncode == 2 and "Traceback" not in r.stderr and "dcgan" in r.stderr


def test_make_demo_path(tmp_path):
    """`make demo`'s own command line, on a few steps."""
    out = tmp_path / "demo"
    env = dict(os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"])
    r = subprocess.run(["make", "-s", "demo", "DEMO_STEPS=4", f"DEMO_OUT={out}"], cwd=REPO, env=env,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    assert (out / "samples" / "step_000004.png").exists() and (out / "losses.png").exists()
    assert str(out) in r.stdout
    assert torch.load(out / "checkpoints" / "last.pt", weights_only=True)["step"] == 4


@pytest.mark.parametrize("flags, says", [
    (["--truncation", "0.7"], "does not take --truncation"),
    (["--mix"], "does not take --mix"),
    (["--styles", "4", "--input", "x.png"], "does not take --styles"),
    (["--style-from", "x.png", "--input", "x.png"], "does not take --style-from"),
])
def test_model_specific_sample_flags_refused_in_one_line(capsys, trained_run, flags, says):
    code, _, err = run_cli(capsys, "sample", trained_run, *flags)
    assert code != 0 and says in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
