"""BigGAN on MNIST: conditional accuracy, and the truncation trade-off (Brock et al. 2019, Sec. 3.1).

    python benchmarks/biggan.py --runs runs/biggan             # train with the command printed, then measure
    python benchmarks/biggan.py --runs runs/biggan --measure-only

Training is the ordinary ``ganforge train biggan`` (the command is printed, so the figures can be
reproduced from the CLI). Measured, with the built-in digit classifier (``ganforge.metrics``):

- conditional accuracy: ``--n-per-class`` samples asked for each class y, the share the classifier
  calls y (``ganforge.metrics.conditional_accuracy``), and the classes covered by samples of
  uniformly drawn labels; untruncated z, as in training.
- the truncation sweep: for each threshold (``--thresholds``; ``none`` = untruncated), ``--n``
  samples of uniformly drawn labels with z truncated there, measured against the real training
  images with the digit classifier's features: precision and recall (Kynkaanniemi et al. 2019,
  k = 3), Frechet distance, and the conditional accuracy at that threshold. The paper's trade-off:
  as the threshold falls, fidelity (precision) rises and variety (recall) falls.

Prints a table, writes ``--json`` and a plot (``--plot``) of precision and recall against the threshold.
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

# Sized for a shared CPU: width 16 at MNIST's 28x28, batch 32; EMA decay 0.995 for a run of
# thousands, not hundreds of thousands, of steps (the paper's 0.9999 would average in the start).
SETTINGS = ["--set", "g_width=16", "--set", "d_width=16", "--set", "batch_size=32", "--set", "ema=0.995"]


def train_command(args) -> list[str]:
    return [sys.executable, "-m", "ganforge", "train", "biggan", "--data", args.data, "--steps", str(args.steps),
            "--seed", str(args.seed), "--out", str(args.runs), "--force", "--quiet", *SETTINGS,
            *sum((["--set", s] for s in args.set or []), [])]


def sweep(model, args) -> list[dict]:
    from ganforge.data import load_data
    from ganforge.metrics import Evaluator, conditional_accuracy

    real = load_data(model.cfg["data"], model.cfg.get("image_size")).x
    ev = Evaluator(model.cfg["data"], "image", real, metrics=["fd", "pr"], features="digits", n=args.n,
                   seed=args.seed)
    rows = []
    for t in args.thresholds:
        trunc = None if t == "none" else float(t)
        t0 = time.time()
        x = torch.cat([model.sample(min(500, args.n - i), seed=args.seed * 1_000_003 + i, truncation=trunc)
                       for i in range(0, args.n, 500)])
        r = ev.evaluate_samples(x)
        acc = conditional_accuracy(_Truncated(model, trunc), n_per_class=args.n_per_class, seed=args.seed)
        rows.append({"truncation": t, "precision": r["precision"], "recall": r["recall"], "fd": r["fd"],
                     "cond_accuracy": round(acc, 4), "seconds": round(time.time() - t0, 1)})
        print(f"  truncation {t:>5}: precision {r['precision']:.4f}  recall {r['recall']:.4f}  fd {r['fd']:.3f}  "
              f"cond. accuracy {acc:.4f}", flush=True)
    return rows


class _Truncated:
    """``model`` whose ``sample`` truncates z at ``t`` (for conditional_accuracy)."""

    def __init__(self, model, t):
        self.model, self.t, self.cfg, self.spec = model, t, model.cfg, model.spec

    def sample(self, n, **kw):
        return self.model.sample(n, truncation=self.t, **kw)


def plot(rows, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pts = [r for r in rows if r["truncation"] != "none"]
    ts = [float(r["truncation"]) for r in pts]
    fig, ax = plt.subplots(figsize=(5, 3.4))
    ax.plot(ts, [r["precision"] for r in pts], "o-", label="precision")
    ax.plot(ts, [r["recall"] for r in pts], "s-", label="recall")
    none = [r for r in rows if r["truncation"] == "none"]
    if none:
        ax.axhline(none[0]["precision"], color="C0", ls=":", lw=1, label="precision, untruncated")
        ax.axhline(none[0]["recall"], color="C1", ls=":", lw=1, label="recall, untruncated")
    ax.set_xlabel("truncation threshold")
    ax.set_ylabel("digit-feature precision / recall")
    ax.set_title("BigGAN on MNIST: the truncation trade-off")
    ax.invert_xaxis()
    ax.legend(fontsize=7)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", default="runs/biggan", help="the run's folder")
    p.add_argument("--data", default="mnist")
    p.add_argument("--steps", type=int, default=1600)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--set", action="append", help="extra --set for the training run (repeatable)")
    p.add_argument("--measure-only", action="store_true")
    p.add_argument("--n-per-class", type=int, default=200)
    p.add_argument("--n", type=int, default=2000, help="samples per threshold for precision/recall")
    p.add_argument("--thresholds", nargs="+", default=["none", "2.0", "1.5", "1.0", "0.75", "0.5", "0.25"])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", help="write the results here")
    p.add_argument("--plot", help="write the precision/recall plot here (.png)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)

    if not args.measure_only:
        cmd = train_command(args)
        print("$", shlex.join(["ganforge", *cmd[3:]]), flush=True)
        t0 = time.time()
        subprocess.run(cmd, check=True)
        print(f"  trained in {time.time() - t0:.0f} s", flush=True)

    from ganforge.metrics import class_metrics, conditional_accuracy
    from ganforge.metrics.classifier import load_classifier, predict
    from ganforge.training import load_run
    from ganforge.training.engine import training_seconds

    model = load_run(args.runs)
    acc, per_class = conditional_accuracy(model, n_per_class=args.n_per_class, seed=args.seed, per_class=True)
    net = load_classifier("mnist")[0]
    covered = class_metrics(predict(net, model.sample(1000, seed=args.seed + 100)))["classes"]
    result = {"run": str(args.runs), "step": model.step, "training_seconds": training_seconds(Path(args.runs)),
              "cond_accuracy": round(acc, 4), "worst_class_accuracy": round(min(per_class), 4),
              "per_class": [round(a, 3) for a in per_class], "classes_covered": covered}
    print(f"biggan at step {model.step}: conditional accuracy {acc:.4f} (worst class {min(per_class):.3f}), "
          f"{covered}/10 classes covered; training time (engine log) {result['training_seconds']} s", flush=True)
    result["truncation"] = sweep(model, args)
    if args.plot:
        plot(result["truncation"], args.plot)
        print(f"wrote {args.plot}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
