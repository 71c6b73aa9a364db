"""Train and measure CC-GAN, LAPGAN and SS-GAN on digits (issue 15), printing the tables of
docs/conditioned.md. Every run is an ordinary ``ganforge train`` (the command is printed) and
every figure an ordinary ``ganforge eval RUN`` (the command is printed too).

    python benchmarks/conditioned.py --part ccgan  --runs RUNS   # CC-GAN vs the same D on the labels alone
    python benchmarks/conditioned.py --part lapgan --runs RUNS   # LAPGAN vs DCGAN at the same CPU time
    python benchmarks/conditioned.py --part ssgan  --runs RUNS   # SS-GAN vs DCGAN at the same CPU time
    python benchmarks/conditioned.py --part ssgan-facades --runs RUNS   # the same on facades photos, 64x64
    python benchmarks/conditioned.py --part table  --runs RUNS   # only print what RUNS holds
    python benchmarks/conditioned.py --part ccgan lapgan ssgan --seconds 240   # all, in one go

CC-GAN: trained on ``mnist[:8000]`` with 10 labels per class; ``ganforge eval`` reports D's accuracy on
``mnist[8000:]`` (52,000 images it never saw labelled or unlabelled). The baseline is the same
network, labelled subset, optimizer and number of D updates on the labels alone
(``--set labels_only=true``).

LAPGAN and SS-GAN: trained for ``--seconds`` of training time (the engine's own clock,
``training_seconds``), reached by training a first chunk, estimating the rate and resuming
(resume is exact) to the number of steps that fills the budget; the one-stage baseline is DCGAN
with the same widths on MNIST for the same time. FD and KID in the built-in digit classifier's
features against the MNIST training images (``ganforge eval RUN --metrics fd,kid``). The CPU is
shared, so the wall times are noisy; the training time is what is matched.

SS-GAN on facades (``--part ssgan-facades``): SS-GAN on the paired set (label map -> photo, 400
training pairs) against DCGAN on the same 400 photos as a folder (``folder:FACADES/trainA``), both
at 64x64, batch 16, the same widths and training time. The two runs' data differ in layout, so
both are measured against the same images, the 106 held-out test photos
(``ganforge eval RUN --ref folder:FACADES/testA --metrics fd,kid``), in Inception features.
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

PY = [sys.executable, "-m", "ganforge.cli"]
WIDTHS = ["--set", "g_width=32", "--set", "d_width=32"]
SETTINGS = {
    "ccgan": ["ccgan", "--data", "mnist[:8000]", "--set", "labels_per_class=10"],
    "ccgan-labels-only": ["ccgan", "--data", "mnist[:8000]", "--set", "labels_per_class=10",
                          "--set", "labels_only=true"],
    "lapgan": ["lapgan", "--data", "mnist", *WIDTHS, "--set", "coarse_hidden=256"],
    "dcgan": ["dcgan", "--data", "mnist", *WIDTHS],
    "ssgan": ["ssgan", "--data", "mnist-edges", *WIDTHS, "--set", "fcn_width=16", "--set", "joint_start=100"],
}
FACADES = ["--set", "image_size=64", "--batch-size", "16", *WIDTHS]


def facades_settings(facades: Path, joint_start: int) -> dict:
    """SS-GAN on facades' pairs and DCGAN on the same photos as a plain folder (CycleGAN layout)."""
    return {"ssgan-facades": ["ssgan", "--data", "facades", *FACADES, "--set", "fcn_width=16",
                              "--set", f"joint_start={joint_start}"],
            "dcgan-facades": ["dcgan", "--data", f"folder:{facades / 'trainA'}", *FACADES]}


def run(cmd: list[str]) -> None:
    print("$", shlex.join(["ganforge", *cmd[3:]]) if cmd[:3] == PY else shlex.join(cmd), flush=True)
    subprocess.run(cmd, check=True)


def train(name: str, runs: Path, steps: int, extra=(), resume: bool = False) -> Path:
    out = runs / name
    if resume:
        run([*PY, "train", "--resume", str(out), "--steps", str(steps)])
    else:
        run([*PY, "train", *SETTINGS[name], *extra, "--steps", str(steps), "--out", str(out), "--force",
             "--seed", "0"])
    return out


def seconds(out: Path) -> float:
    from ganforge.training.engine import training_seconds

    return float(training_seconds(out))


def steps_of(out: Path) -> int:
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if line.strip()]
    return int(rows[-1]["step"])


def train_for(name: str, runs: Path, budget: float, first: int, extra=()) -> Path:
    """Train ``name`` for about ``budget`` seconds of training time: ``first`` steps, then resumed
    to the steps the measured rate says fill the budget."""
    out = train(name, runs, first, extra)
    t = seconds(out)
    if t < 0.95 * budget:
        total = max(first + 1, round(first * budget / t))
        out = train(name, runs, total, resume=True)
    return out


def evaluate(out: Path, metrics: str, n: int = 5000, ref: str | None = None) -> dict:
    run([*PY, "eval", str(out), "--metrics", metrics, "--n", str(n), *(["--ref", ref] if ref else [])])
    return json.loads((out / "eval.jsonl").read_text().splitlines()[-1])


def table(runs: Path) -> None:
    rows = []
    for name in SETTINGS:  # after main() has added the facades runs' settings, when asked for
        out = runs / name
        if not (out / "eval.jsonl").exists():
            continue
        rec = json.loads((out / "eval.jsonl").read_text().splitlines()[-1])
        m = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if line.strip()]
        ips = [r["img_per_s"] for r in m if "img_per_s" in r]
        kid = f" +- {rec['kid_std']:.4f}" if "kid_std" in rec else ""
        fig = (f"test_accuracy {rec['test_accuracy']:.4f} on {rec['test_data']} ({rec['n_test']})"
               if "test_accuracy" in rec else
               f"FD {rec.get('fd', float('nan')):.2f}, KID {rec.get('kid', float('nan')):.4f}{kid} "
               f"({rec['n']} samples vs {rec.get('n_ref')} of {rec['data']})")
        rows.append(f"| {name} | {steps_of(out)} | {seconds(out):.0f} s | {sum(ips) / max(len(ips), 1):.0f} | {fig} |")
    print("| run | steps | training time | mean img/s | measured |\n| --- | --- | --- | --- | --- |")
    print("\n".join(rows))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--part", choices=["ccgan", "lapgan", "ssgan", "ssgan-facades", "table"], nargs="+",
                   required=True)
    p.add_argument("--runs", default="runs/conditioned")
    p.add_argument("--steps", type=int, default=1000, help="CC-GAN's steps (and its baseline's D updates)")
    p.add_argument("--seconds", type=float, default=300.0, help="training time of LAPGAN, SS-GAN and DCGAN")
    p.add_argument("--first", type=int, default=200, help="steps of the first chunk of a timed run")
    p.add_argument("--facades", type=Path, help="the facades folder in CycleGAN's layout (trainA/, testA/; "
                   "default $GANFORGE_DATA/facades)")
    p.add_argument("--joint-start", type=int, default=300, help="SS-GAN's joint_start on facades")
    p.add_argument("--n", type=int, default=500, help="samples measured on facades (Inception on a CPU is slow)")
    a = p.parse_args(argv)
    runs = Path(a.runs)
    facades = a.facades or Path(os.environ.get("GANFORGE_DATA", "data")) / "facades"
    SETTINGS.update(facades_settings(facades, a.joint_start))
    runs.mkdir(parents=True, exist_ok=True)
    for part in a.part:
        if part == "ccgan":
            for name in ("ccgan-labels-only", "ccgan"):
                evaluate(train(name, runs, a.steps), "classes", 500)  # the accuracy is what counts
        elif part in ("lapgan", "ssgan"):
            evaluate(train_for(part, runs, a.seconds, a.first), "fd,kid")
            done = (runs / "dcgan" / "eval.jsonl").exists()
            if not done or abs(seconds(runs / "dcgan") - a.seconds) > 0.1 * a.seconds:
                evaluate(train_for("dcgan", runs, a.seconds, a.first), "fd,kid")
        elif part == "ssgan-facades":
            ref = f"folder:{facades / 'testA'}"
            for name in ("ssgan-facades", "dcgan-facades"):
                evaluate(train_for(name, runs, a.seconds, a.first), "fd,kid", a.n, ref)
        table(runs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
