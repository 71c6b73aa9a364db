"""Mode-collapse benchmark: gan, lsgan, wgan, wgan-gp, ebgan and bgan on the 2-D mixtures.

Every model trains through the ganforge engine (``ganforge.train``) on ring8 and grid25 with the
same budget (generator steps, batch size) and the same seeds, with its own registered defaults
and the settings declared below (COMMON for all, OVERRIDES per model); ``gan``'s MNIST-sized MLPs
are shrunk to the toy size. 2,500 samples of each run are scored with ``ganforge.metrics.toy_modes``
(VEEGAN / PacGAN protocol: a sample is high quality within 3 std of its nearest mode; a mode is
captured when it is the nearest mode of a high-quality sample). Named VARIANTS (a model plus
engine options, e.g. ``lsgan+r1``) run beside the six.

    python benchmarks/modes.py            # full: 3 seeds x 1500 steps (about 20 min, 1 thread)
    python benchmarks/modes.py --models lsgan+r1 --data grid25 --steps 10000   # the best of ours
    python benchmarks/modes.py --quick    # 1 seed x 300 steps, a smoke run

Runs (config, checkpoint, scatter plot of the samples) are kept under --out.
"""
from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

import torch

from ganforge.metrics import toy_modes
from ganforge.training import load_run, train

MODELS = ("gan", "lsgan", "wgan", "wgan-gp", "ebgan", "bgan")
DATA = ("ring8", "grid25")
# One budget for every model: --steps generator updates of --batch-size samples, the same seeds, and
# these settings: a 2-D latent as in PacGAN's experiments, and an EMA of G's weights (decay 0.99,
# about the last 100 steps), which is what is sampled and scored. On grid25 the EMA is what makes
# samples sharp within a short run: lsgan, 6,000 steps, seed 0 scored 85.8% high quality with the
# EMA and 35.8% with the live G (22 and 19 of 25 modes).
COMMON = {"z_dim": 2, "ema": 0.99}
# Per model, on top of its registered defaults (toy MLPs of 3 x 128 units): learning rates that move
# within the short budget (the papers' image rates are 10x smaller), D at twice G's rate where Adam
# is used (lsgan on grid25, 3,000 steps, seed 0: 62% high quality with lr_d 2e-3 against 47% with
# 1e-3), toy-sized nets for gan, whose defaults are the paper's MNIST nets (1200-unit G, 240x5
# maxout D), and n_critic 2 for the two Wasserstein critics to keep their cost near the others'.
OVERRIDES = {
    "gan": {"g_hidden": 128, "d_hidden": 128, "dropout": 0.0, "lr": 1e-3, "lr_d": 2e-3},
    "lsgan": {"lr": 1e-3, "lr_d": 2e-3},
    "bgan": {"lr": 1e-3, "lr_d": 2e-3},
    "ebgan": {"lr": 1e-3},
    "wgan": {"lr": 5e-4, "n_critic": 2},
    "wgan-gp": {"lr": 5e-4, "betas": [0.5, 0.9], "n_critic": 2, "toy_hidden": 128, "lambda_gp": 10.0},
}
# Every setting a model's point defaults (GANModel.defaults_by_kind, docs/defaults.md) change is set above,
# so the figures measured before those defaults existed still hold: wgan-gp's toy_hidden and lambda_gp
# pin the values it had then (its point defaults are the authors' 512 units and lambda 0.1).


# Named variants: a registered model with engine options on top of its OVERRIDES (--models NAME).
# lsgan+r1: lsgan with the R1 penalty on real data (Mescheder et al. 2018, gamma 0.1), which keeps
# the modes it finds (without it lsgan peaks near 24 modes and drops to ~20 while the samples
# sharpen), and every learning rate decayed linearly to 0 over the second half of the run (the
# engine's lr_decay), which sharpens them (grid25, 10,000 steps, seeds 0-2: lsgan with lr_decay alone
# 19/21/19 modes at 89.2% high quality; gan with R1 alone 25/25/25 at 78.3%).
VARIANTS = {
    "lsgan+r1": ("lsgan", {"r1_gamma": 0.1, "lr_decay": 0.5}),
}


def run_one(name: str, data: str, seed: int, args) -> dict:
    model, extra = VARIANTS.get(name, (name, {}))
    out = Path(args.out) / f"{name}-{data}-s{seed}"
    sets = {"log_every": max(args.steps // 10, 1), "sample_every": 0, "ckpt_every": 0,
            **COMMON, **OVERRIDES.get(model, {}), **extra}
    t0 = time.time()
    train(model, out=out, force=True, steps=args.steps, data=data, seed=seed, batch_size=args.batch_size,
          device="cpu", sets=sets, progress=False)
    seconds = time.time() - t0
    samples = load_run(out).sample(args.n_samples, seed=10_000 + seed)
    return {"model": name, "data": data, "seed": seed, "seconds": round(seconds, 1), **toy_modes(samples, data)}


def table(rows: list[dict], models, data) -> str:
    head = ["model"] + [f"{d} {k}" for d in data for k in ("modes mean", "modes min", "high-quality")]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for m in models:
        cells = [m]
        for d in data:
            rs = [r for r in rows if r["model"] == m and r["data"] == d]
            if not rs:
                cells += ["", "", ""]
                continue
            modes = [r["modes"] for r in rs]
            hq = sum(r["high_quality"] for r in rs) / len(rs)
            cells += [f"{sum(modes) / len(modes):.1f} / {rs[0]['n_modes']}", f"{min(modes)}", f"{100 * hq:.1f}%"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=[*MODELS, *VARIANTS], choices=[*MODELS, *VARIANTS],
                   help=f"default: all six and the variants ({' '.join(VARIANTS)})")
    p.add_argument("--data", nargs="+", default=list(DATA), choices=DATA)
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--steps", type=int, default=1500, help="generator steps per run")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--n-samples", type=int, default=2500)
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--out", default="runs/modes")
    p.add_argument("--json", help="also write every run's figures to this file")
    p.add_argument("--quick", action="store_true", help="one seed, 300 steps")
    args = p.parse_args(argv)
    if args.quick:
        args.seeds, args.steps = args.seeds[:1], 300
    torch.set_num_threads(args.threads)

    command = "python benchmarks/modes.py " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
    rows, t0 = [], time.time()
    for data in args.data:
        for model in args.models:
            for seed in args.seeds:
                r = run_one(model, data, seed, args)
                rows.append(r)
                print(f"{model:8s} {data:7s} seed {seed}: {r['modes']:2d}/{r['n_modes']} modes, "
                      f"{100 * r['high_quality']:5.1f}% high quality, KL {r['kl']:.3f} ({r['seconds']:.0f} s)",
                      flush=True)
    print(f"\n{len(args.seeds)} seeds {args.seeds}, {args.steps} generator steps, batch {args.batch_size}, "
          f"{args.n_samples} samples per run; {time.time() - t0:.0f} s in all, {args.threads} thread(s)")
    print(f"command: {command.strip()}")
    print(f"settings: {COMMON} for all; per model {OVERRIDES}; variants {VARIANTS}\n")
    print(table(rows, args.models, args.data))
    if args.json:
        Path(args.json).write_text(json.dumps({"command": command.strip(), "runs": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
