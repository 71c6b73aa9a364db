"""Measure translation runs on their test split and draw them side by side (issue 13's tables).

    python benchmarks/translation.py --runs "L1 + cGAN=runs/p2p" "L1=runs/p2p-l1" "cGAN=runs/p2p-cgan" \\
        "CycleGAN=runs/cyc" --way labels-to-photos --figure docs/img/facades-test.png

Each run is measured by ``ganforge eval`` (``run_eval.evaluate_run``: appended to its eval.jsonl) on
its data's test split, and the table gives, for the chosen way of translating, KID and FD against
the real test images of the target domain (Inception features on photographs, the digit
classifiers on the digit domains), L1/PSNR/SSIM against the paired targets and, on the digit
domains, label preservation, with each run's steps and training wall time (metrics.jsonl).

``--way``: which translation the table and figure show for every run, by its domains rather than by
the runs' A/B naming (pix2pix on ``facades`` learns label map -> photo as its AtoB; CycleGAN on
``facades-unpaired`` learns photo -> label map as AtoB and label map -> photo as BtoA):
``labels-to-photos`` (facades), ``edges-to-digits`` / ``digits-to-edges`` (mnist-edges), or
``all`` (every way each run translates, as its own rows).
The figure: one test image per row; the input, each run's output, and the target.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

KEYS = ("kid", "kid_std", "fd", "l1", "psnr", "ssim", "label_preservation")


def _ways(model, cfg) -> dict:
    """{description: way} for each way the model translates, described by its domains."""
    from ganforge.data import parse_name

    base = parse_name(cfg["data"])[0]
    direction = type(model).data_options(cfg)["direction"]
    if base.startswith("facades"):
        names = {"A": "photos", "B": "labels"}  # the files' A and B: photo, label map
    elif "-edges" in base:
        names = {"A": "digits", "B": "edges"}
    else:
        names = {"A": "A", "B": "B"}
    if direction == "BtoA":  # the data were swapped when loaded: the model's A is the files' B
        names = {"A": names["B"], "B": names["A"]}
    return {f"{names[w[0]]}-to-{names[w[-1]]}": w for w in model.directions}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", nargs="+", required=True, metavar="NAME=DIR")
    p.add_argument("--way", default="all")
    p.add_argument("--figure", help="PNG: input | each run's output | target, on the first --show test images")
    p.add_argument("--show", type=int, default=6)
    p.add_argument("--no-eval", action="store_true", help="read each run's last eval.jsonl row instead")
    args = p.parse_args(argv)

    import ganforge
    from ganforge.data import load_data, pairs_data_name
    from ganforge.report import save_grid
    from ganforge.run_eval import evaluate_run
    from ganforge.training.engine import run_config, training_seconds

    rows, columns, shown = [], [], None
    for item in args.runs:
        name, run = item.split("=", 1)
        run = Path(run)
        cfg = run_config(run)
        model = ganforge.load(run)
        if args.no_eval:
            rec = json.loads((run / "eval.jsonl").read_text().splitlines()[-1])
        else:
            rec = evaluate_run(run, progress=False)
        for desc, way in _ways(model, cfg).items():
            if args.way not in ("all", desc):
                continue
            prefix = "" if way == next(iter(model.directions)) else f"{way}_"
            rows.append([name, desc, cfg["model"], rec["step"], training_seconds(run)] +
                        [rec.get(prefix + k) for k in KEYS])
            if args.figure:
                test = load_data(pairs_data_name(cfg["data"]), cfg.get("image_size"), **type(model).data_options(cfg))
                group = next(g for g in test.groups.values() if "A" in g and "B" in g)
                src, dst = group[way[0]][:args.show], group[way[-1]][:args.show]
                if shown is None:
                    shown = (src, dst)
                elif not torch.equal(shown[0], src):
                    sys.exit(f"{name}: its test inputs differ from the first run's; one figure needs the same inputs")
                columns.append(model.translate(src, way))
    header = ["run", "way", "model", "steps", "train s", *KEYS]
    fmt = (lambda v: "" if v is None else f"{v:.4g}" if isinstance(v, float) else str(v))  # noqa: E731
    print("| " + " | ".join(header) + " |")
    print("|" + " --- |" * len(header))
    for r in rows:
        print("| " + " | ".join(fmt(v) for v in r) + " |")
    if args.figure and shown is not None:
        src, dst = (x.float() / 127.5 - 1 for x in shown)
        cols = [src, *columns, dst]
        c = max(t.shape[1] for t in cols)
        cols = [t.expand(-1, c, -1, -1) if t.shape[1] == 1 else t for t in cols]
        save_grid(torch.stack(cols, 1).flatten(0, 1), args.figure, nrow=len(cols))
        print(f"figure: {args.figure} (columns: input, {', '.join(r[0] for r in rows)}, target)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
