"""ProGAN and StyleGAN against DCGAN at the same CPU time (docs/progressive.md).

    python benchmarks/progressive.py --model progan --cpu-seconds 600 --out runs/bench-progan \\
        -- --set image_size=32 --set fmap_base=1024 ...

Trains ``ganforge train MODEL --data mnist ... ARGS`` in a child process and stops it (Ctrl-C: the
engine saves a checkpoint) once the child has used ``--cpu-seconds`` of CPU time (user + system,
read from /proc), so that models are compared at equal compute on a shared, busy machine where
wall time says little. Then ``ganforge eval RUN`` (Frechet distance in the digit classifier's
features against the MNIST test split) and one JSON line with steps, CPU and wall seconds and FD.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / tick  # utime, stime


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--model", required=True)
    p.add_argument("--cpu-seconds", type=float, required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--eval-n", type=int, default=10000)
    p.add_argument("--also-no-ema", action="store_true", help="also measure G itself (the run has an EMA copy)")
    p.add_argument("rest", nargs=argparse.REMAINDER, help="after --: more `ganforge train` arguments")
    a = p.parse_args()
    rest = [x for x in a.rest if x != "--"]
    py = sys.executable
    cmd = [py, "-m", "ganforge.cli", "train", a.model, "--data", "mnist", "--steps", "10000000", "--out", a.out,
           "--force", *rest]
    t0 = time.time()
    child = subprocess.Popen(cmd)
    used = 0.0
    while child.poll() is None:
        time.sleep(1.0)
        try:
            used = cpu_seconds(child.pid)
        except (FileNotFoundError, ProcessLookupError):
            break
        if used >= a.cpu_seconds:
            child.send_signal(signal.SIGINT)  # the engine checkpoints after this step and exits
            break
    child.wait()
    wall = time.time() - t0
    ckpt = Path(a.out) / "checkpoints" / "last.pt"
    import torch

    step = torch.load(ckpt, map_location="cpu", weights_only=True)["step"]
    t1 = time.time()
    for extra in ([], ["--no-ema"]) if a.also_no_ema else ([],):
        ev = subprocess.run([py, "-m", "ganforge.cli", "eval", a.out, "--n", str(a.eval_n), "--quiet", *extra],
                            capture_output=True, text=True)
        print(ev.stdout, ev.stderr, file=sys.stderr)
    row = {"model": a.model, "args": rest, "steps": step, "cpu_s": round(used, 1), "wall_s": round(wall, 1),
           "eval_wall_s": round(time.time() - t1, 1)}
    rows = [json.loads(line) for line in (Path(a.out) / "eval.jsonl").read_text().splitlines() if line.strip()] \
        if (Path(a.out) / "eval.jsonl").is_file() else []
    if rows:
        row["eval"] = rows[-2:] if a.also_no_ema else rows[-1]
    print(json.dumps(row))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
