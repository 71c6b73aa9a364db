"""Train and measure the adversarial autoencoder (aae) on real MNIST: the targets of its issue.

    python benchmarks/aae.py codes --runs runs/aae          # 2-D codes: three priors + no adversary
    python benchmarks/aae.py semi --steps 10000 --runs runs/aae   # semi-supervised, 10 labels per class
    python benchmarks/aae.py codes --runs runs/aae --measure-only

``codes``: trains the unsupervised AAE with 2-D codes once per prior (gaussian, mixture,
swissroll) and once without the adversary (``adversary=false``: the same networks as a plain
autoencoder, whose codes no prior shapes), all on ``mnist`` (the 60,000 training images). Then
it encodes the 10,000 test images (``mnist:test``) and measures, for each prior, the unbiased
Gaussian-kernel MMD^2 (``ganforge.metrics.mmd``) of the test codes against 10,000 prior samples
(kernel width sigma: the median distance between the prior samples, so both models are measured
with one kernel; and sigma / 4, which resolves the mixture's components), for the AAE trained with
that prior and for the autoencoder without adversary.
It draws the test codes coloured by digit over prior samples (docs/img/aae-codes.png, one
panel per prior; docs/img/aae-codes-noadv.png for the baseline).

``semi``: trains ``variant=semi`` on ``mnist`` (the 60,000 training images) with 10 labels per
class (the labelled subset sgan draws for the same seed and data) and measures the accuracy of
``classify`` on MNIST's test split ``mnist:test`` (10,000 images), beside the same E trained on the
100 labels alone (``labels_only=true``) for the same number of updates. ``--train-data
'mnist[:8000]' --test-data 'mnist[8000:]'`` is the earlier protocol (what ``ganforge eval`` reports
for a run on ``mnist[:8000]``).

Each run is an ordinary ``ganforge train`` (the command is printed).
"""
from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path

import torch

PRIORS = ("gaussian", "mixture", "swissroll")
# Sized for a shared CPU (one thread): half the paper's 1000-unit layers.
CODE_SETS = ["e_hidden=[512,512]", "g_hidden=[512,512]", "d_hidden=[256,256]"]
# ema: classify uses E's moving average (up to 2.5 points ahead of E mid-run, within 0.2 at the end).
SEMI_SETS = ["variant=semi", "labels_per_class=10", "e_hidden=[512,512]", "g_hidden=[512,512]",
             "d_hidden=[256,256]", "lr_decay=0.3", "ema=0.999"]


def train(name, data, steps, sets, args) -> Path:
    out = Path(args.runs) / name
    cmd = ["train", "aae", "--data", data, "--steps", str(steps), "--seed", str(args.seed), "--out", str(out),
           "--force", "--quiet", *sum((["--set", s] for s in [*sets, "sample_every=0", *(args.set or [])]), [])]
    if not args.measure_only:
        print("$", shlex.join(["ganforge", *cmd]), flush=True)
        t0 = time.time()
        subprocess.run([sys.executable, "-m", "ganforge", *cmd], check=True)
        print(f"  trained in {time.time() - t0:.0f} s", flush=True)
    return out


def draw(panels, path: Path, title: str) -> None:
    """One panel per (name, codes, labels, prior samples): prior in grey, codes by digit."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ganforge.files import atomic_write_bytes
    from ganforge.report.plots import _png_bytes

    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 5.2))
    for ax, (name, codes, labels, prior, note) in zip(list(getattr(axes, "flat", [axes])), panels):
        ax.scatter(prior[:, 0], prior[:, 1], s=1, c="0.8", label="prior samples")
        sc = ax.scatter(codes[:, 0], codes[:, 1], s=1, c=labels, cmap="tab10", vmin=-0.5, vmax=9.5, alpha=0.6)
        ax.set_title(f"{name}\n{note}", fontsize=10)
        ax.set_aspect("equal")
    fig.colorbar(sc, ax=list(getattr(axes, "flat", [axes])), ticks=range(10), shrink=0.8, label="digit")
    fig.suptitle(title)
    atomic_write_bytes(path, _png_bytes(fig))


def codes_part(args) -> dict:
    from ganforge.data import load_data
    from ganforge.metrics.mmd import gaussian_mmd2, median_distance
    from ganforge.models.aae import sample_prior
    from ganforge.training import load_run

    runs = {p: train(f"codes-{p}", "mnist", args.steps, [*CODE_SETS, f"prior={p}"], args) for p in PRIORS}
    runs["none"] = train("codes-noadv", "mnist", args.steps, [*CODE_SETS, "adversary=false"], args)
    test = load_data("mnist:test")
    codes = {k: load_run(v).encode(test.x) for k, v in runs.items()}
    results, panels, base_panels = {}, [], []
    for i, p in enumerate(PRIORS):
        prior = sample_prior(p, len(test), 2, torch.Generator().manual_seed(args.seed + 1 + i))[0]
        sigma = median_distance(prior)
        aae, plain = gaussian_mmd2(codes[p], prior, sigma), gaussian_mmd2(codes["none"], prior, sigma)
        # A quarter of the median distance as well: the median heuristic's kernel is as wide as the
        # mixture's whole circle and cannot see whether the codes fall into its ten components.
        fine = {k: gaussian_mmd2(codes[k], prior, sigma / 4) for k in (p, "none")}
        results[p] = {"mmd2_aae": aae, "mmd2_no_adversary": plain, "sigma": sigma,
                      "mmd2_aae_sigma/4": fine[p], "mmd2_no_adversary_sigma/4": fine["none"]}
        print(f"{p:10s} MMD^2(test codes, prior): aae {aae:.4f}, no adversary {plain:.4f} (sigma {sigma:.3f}); "
              f"at sigma/4: aae {fine[p]:.4f}, no adversary {fine['none']:.4f}", flush=True)
        panels.append((f"prior={p}", codes[p], test.y, prior, f"MMD$^2$ {aae:.4f}"))
        base_panels.append((f"no adversary vs {p}", codes["none"], test.y, prior, f"MMD$^2$ {plain:.4f}"))
    img = Path(args.img)
    draw(panels, img / "aae-codes.png", f"aae, 2-D codes of the 10,000 MNIST test images ({args.steps} steps)")
    draw(base_panels[:1], img / "aae-codes-noadv.png", f"the same autoencoder without adversary ({args.steps} steps)")
    return results


def semi_part(args) -> dict:
    from ganforge.metrics.semi import classifier_accuracy
    from ganforge.training import load_run
    from ganforge.training.engine import training_seconds

    run = load_run(train("semi", args.train_data, args.steps, SEMI_SETS, args))
    base = load_run(train("semi-labels-only", args.train_data, args.steps, [*SEMI_SETS, "labels_only=true"], args))
    assert torch.equal(base.labelled_idx, run.labelled_idx), "the baseline must use the run's labelled subset"
    seconds = {k: training_seconds(Path(args.runs) / k) for k in ("semi", "semi-labels-only")}
    return {"heldout_accuracy": classifier_accuracy(run, args.test_data),
            "labels_only_accuracy": classifier_accuracy(base, args.test_data),
            "labelled": int(len(run.labelled_idx)), "test_data": args.test_data,
            "training_seconds": seconds["semi"], "labels_only_training_seconds": seconds["semi-labels-only"]}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("part", choices=["codes", "semi"])
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--runs", default="runs/aae")
    p.add_argument("--train-data", default="mnist", help="semi: training data (labelled subset drawn from it)")
    p.add_argument("--test-data", default="mnist:test", help="semi: held-out images")
    p.add_argument("--img", default="docs/img", help="codes: where the figures go")
    p.add_argument("--set", action="append", help="extra --set for every run (repeatable)")
    p.add_argument("--measure-only", action="store_true", help="measure the runs already in --runs")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", help="also write the results here")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    t0 = time.time()
    results = codes_part(args) if args.part == "codes" else semi_part(args)
    results["wall_s"] = round(time.time() - t0)
    print(json.dumps(results, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
