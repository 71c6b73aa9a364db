"""VAE-GAN against the plain VAE (Larsen et al. 2016's claim): Frechet distance of samples AND of
reconstructions of the test images, for runs trained for the same wall time.

    python benchmarks/vaegan.py --runs VAE=runs/vae VAE-GAN=runs/vaegan --figure docs/img/vaegan-recon.png

For each run:

- samples: ``ganforge eval RUN --metrics fd`` (``run_eval.evaluate_run``, appended to its
  eval.jsonl): 10,000 samples G(z), z ~ N(0, I), against the run's training data, with the built-in
  digit classifier's features (``--features digits``, the default on MNIST);
- reconstructions: G(E(x)) of the 10,000 test images (``model.reconstruct``: E's mean code, in eval
  mode), against the test images themselves, by the same Evaluator (``Evaluator.evaluate_samples``);
  also their mean squared pixel error (on the [-1, 1] scale), which a pixel-likelihood VAE is
  trained to make small;
- steps and training wall time (the last row of metrics.jsonl).

A first row measures real training images (the first 10,000 of the run's data) against the test
images: the floor of the reconstruction FD. ``--figure``: one row of test images, then each run's
reconstructions of them, then each run's samples (the same seed), in the order of ``--runs``.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", nargs="+", required=True, metavar="NAME=DIR")
    p.add_argument("--test", default="mnist:test", help="the images to reconstruct (default mnist:test)")
    p.add_argument("--n", type=int, default=10_000, help="samples, and test images, to measure (default 10000)")
    p.add_argument("--figure", help="PNG: test images | each run's reconstructions | each run's samples")
    p.add_argument("--show", type=int, default=12, help="images per row of the figure")
    p.add_argument("--no-eval", action="store_true", help="samples: read each run's last eval.jsonl row")
    args = p.parse_args(argv)

    import ganforge
    from ganforge.data import load_data
    from ganforge.metrics.evaluate import Evaluator
    from ganforge.report import save_grid
    from ganforge.training.engine import training_seconds
    from ganforge.run_eval import evaluate_run
    from ganforge.training.engine import run_config

    test = load_data(args.test).x[:args.n]
    ev = Evaluator(args.test, "image", test, metrics=["fd"], n=len(test))
    rows, recon_rows, sample_rows = [], [], []
    for i, item in enumerate(args.runs):
        name, run = item.split("=", 1)
        run = Path(run)
        cfg = run_config(run)
        if i == 0:  # the floor: real training images against the test images
            real = load_data(cfg["data"]).x[:len(test)]
            rows.append([f"real: {cfg['data']}[:{len(real)}]", "", None, None, None, None,
                         ev.evaluate_samples(real)["fd"]])
        model = ganforge.load(run)
        if args.no_eval:
            rec = json.loads((run / "eval.jsonl").read_text().splitlines()[-1])
        else:
            rec = evaluate_run(run, metrics=["fd"], n=args.n, progress=False)
        recon = model.reconstruct(test)
        mse = float((recon - (test.float() / 127.5 - 1)).pow(2).mean())
        rows.append([name, cfg["model"], rec["step"], training_seconds(run), rec["fd"], mse, ev.evaluate_samples(recon)["fd"]])
        recon_rows.append(recon[:args.show])
        sample_rows.append(model.sample(args.show, seed=0))
    header = ["run", "model", "steps", "train s", "FD samples", "recon MSE", "FD recon (test)"]
    fmt = (lambda v: "" if v is None else f"{v:.4g}" if isinstance(v, float) else str(v))  # noqa: E731
    print("| " + " | ".join(header) + " |")
    print("|" + " --- |" * len(header))
    for r in rows:
        print("| " + " | ".join(fmt(v) for v in r) + " |")
    if args.figure:
        grid = torch.cat([test[:args.show].float() / 127.5 - 1, *recon_rows, *sample_rows])
        save_grid(grid, args.figure, nrow=args.show)
        names = [item.split("=", 1)[0] for item in args.runs]
        print(f"figure: {args.figure} (rows: test images, reconstructions by {', '.join(names)}, "
              f"samples of {', '.join(names)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
