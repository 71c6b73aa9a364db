"""Measurements of the restoration models (docs/restoration.md): SRResNet and SRGAN against bicubic
upscaling, the context encoder against mean fill, on held-out images; and their training throughput.

    python benchmarks/restoration.py --part sr --data facades --size 64      # 64x64 HR / 16x16 LR photos
    python benchmarks/restoration.py --part sr --data mnist --size 28 --n 200  # 7 -> 28 digits
    python benchmarks/restoration.py --part ce --data facades --size 64      # centre of 64x64 photos
    python benchmarks/restoration.py --part throughput

``sr`` trains srresnet (pixel MSE) for ``--steps`` steps, then srgan from its G (the paper's
initialisation; content loss on the offline Inception's Conv2d_4a features + 1e-3 adversarial)
for ``--gan-steps`` more; ``ce`` trains the context encoder on the reconstruction loss alone
(``lambda_adv=0``) and on reconstruction + adversarial, each for ``--steps``. A run already in
``--out`` at its step count is not trained again. Each is then measured on the first ``--n``
held-out images (facades: the 106 test photos; mnist: mnist:test) with
``run_eval.restoration_metrics``, as ``ganforge eval RUN`` does: PSNR and SSIM of the whole image
(SR) or L1 and PSNR of the hole (inpainting), and KID (Inception pool3) of each set of outputs
against the real images, the real and baseline features computed once. Wall times are of a shared,
busy 2-core machine (one thread per run); CPU seconds are this process's.
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
# Small networks for a CPU; the mechanisms do not depend on the width.
SR_NETS = {"g_width": 16, "n_blocks": 4, "d_width": 16, "d_fc": 128}
CE_NETS = {"width": 16, "d_width": 16}
QUIET = {"log_every": 100, "sample_every": 0, "ckpt_every": 500}


def train(model: str, out: Path, data: str, size: int, steps: int, batch: int, **sets) -> dict:
    """Train (or find trained) one run; returns its steps, wall and CPU seconds."""
    from ganforge.training.engine import train as run

    info = out / "bench.json"
    if info.is_file():
        rec = json.loads(info.read_text())
        if rec["steps"] == steps:
            return rec
    t0, c0 = time.time(), time.process_time()
    run(model, out=out, force=True, steps=steps, data=data, batch_size=batch, device="cpu", progress=False,
        sets={"image_size": size, **QUIET, **sets})
    rec = {"steps": steps, "wall_s": time.time() - t0, "cpu_s": time.process_time() - c0}
    info.write_text(json.dumps(rec))
    return rec


def measure(runs: dict, data: str, size: int, n: int, seed: int = 0) -> list[dict]:
    """restoration_metrics of each run on the first ``n`` held-out images, the baseline once."""
    from ganforge.data import eval_data_name, load_data
    from ganforge.metrics.features import get_extractor
    from ganforge.run_eval import restoration_metrics
    from ganforge.training.engine import load_run

    ext = get_extractor("inception")
    cache, rows = {}, []
    for i, (label, (run_dir, info)) in enumerate(runs.items()):
        model = load_run(run_dir)
        test = load_data(eval_data_name(model.cfg["data"]), size, **type(model).data_options(model.cfg))
        real = test.x[:n]
        t0 = time.time()
        rec = restoration_metrics(model, real, seed=seed, extractor=ext, cache=cache)
        if i == 0:
            base = model.baseline_name
            rows.append({"method": base.replace("_", " "), "steps": 0,
                         **{k[len(base) + 1:]: v for k, v in rec.items() if k.startswith(base + "_")}})
        rows.append({"method": label, **info, "eval_s": time.time() - t0,
                     **{k: v for k, v in rec.items() if not k.startswith(model.baseline_name + "_")}})
        rows[-1]["n"] = len(real)
    return rows


def fmt_table(rows: list[dict], keys: list[str]) -> str:
    def cell(r, k):
        v = r.get(k)
        if v is None:
            return "-"
        if k == "kid":
            return f"{v:.4f} +- {r['kid_std']:.4f}"
        if k in ("wall_s", "cpu_s"):
            return f"{v:,.0f}"
        return f"{v:.4f}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(["method", *keys]) + " |", "|" + "---|" * (len(keys) + 1)]
    lines += ["| " + " | ".join([r["method"], *(cell(r, k) for k in keys)]) + " |" for r in rows]
    return "\n".join(lines)


def part_sr(args) -> None:
    out = Path(args.out) / f"sr-{args.data}"
    lr = {"lr": args.sr_lr} if args.sr_lr else {}
    mse = train("srresnet", out / "srresnet", args.data, args.size, args.steps, args.batch, **SR_NETS, **lr)
    gan_sets = dict(kv.split("=", 1) for kv in args.gan_set)
    gan_sets = {k: json.loads(v) for k, v in gan_sets.items()}
    gan = train("srgan", out / (args.gan_name or "srgan"), args.data, args.size, args.gan_steps, args.batch,
                **{**SR_NETS, **gan_sets}, init_from=str(out / "srresnet"))
    gan = {**gan, "steps": f"{args.steps} + {args.gan_steps}"}
    rows = measure({"srresnet": (out / "srresnet", mse), "srgan": (out / (args.gan_name or "srgan"), gan)},
                   args.data, args.size, args.n)
    print(f"\n4x super-resolution, {args.data} {args.size}x{args.size} (LR {args.size // 4}x{args.size // 4}), "
          f"first {rows[-1]['n']} held-out images\n")
    print(fmt_table(rows, ["psnr", "ssim", "kid", "steps", "wall_s", "cpu_s"]))
    print(json.dumps(rows))


def part_ce(args) -> None:
    out = Path(args.out) / f"ce-{args.data}"
    rec = train("context-encoder", out / "rec", args.data, args.size, args.steps, args.batch, **CE_NETS,
                lambda_adv=0.0)
    adv = train("context-encoder", out / "rec-adv", args.data, args.size, args.steps, args.batch, **CE_NETS)
    rows = measure({"reconstruction only (lambda_adv=0)": (out / "rec", rec),
                    "reconstruction + adversarial": (out / "rec-adv", adv)}, args.data, args.size, args.n)
    print(f"\ncentre inpainting, {args.data} {args.size}x{args.size}, first {rows[-1]['n']} held-out images\n")
    print(fmt_table(rows, ["hole_l1", "hole_psnr", "kid", "steps", "wall_s", "cpu_s"]))
    print(json.dumps(rows))


def part_throughput(args) -> None:
    """Engine img/s of each model at the measured settings (a few timed steps after a warm-up)."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    from throughput import load_images, make_trainer, time_engine

    from ganforge.data import load_data

    rows = []
    for model, sets in (("srresnet", SR_NETS), ("srgan", {**SR_NETS, "content_net": "inception"}),
                        ("context-encoder", CE_NETS)):
        for data, size in (("facades", 64), ("mnist", 28)):
            raw = load_data("facades", 64, direction="BtoA") if data == "facades" else load_images(size)[0]
            import tempfile

            with tempfile.TemporaryDirectory() as tmp:
                t = make_trainer(model, raw, size, args.batch, Path(tmp), data=data, **sets)
                ips = time_engine(t, args.iters, 2)
            rows.append({"method": model, "data": f"{data} {size}x{size}", "batch": args.batch,
                         "img/s": f"{ips:.1f}"})
    print(fmt_table(rows, ["data", "batch", "img/s"]))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--part", choices=["sr", "ce", "throughput"], required=True)
    p.add_argument("--data", default="facades")
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--steps", type=int, default=1000, help="sr: srresnet's steps; ce: each run's")
    p.add_argument("--gan-steps", type=int, default=500, help="sr: srgan's steps from srresnet's G")
    p.add_argument("--sr-lr", type=float, help="sr: srresnet's learning rate (default the paper's 1e-4)")
    p.add_argument("--gan-set", action="append", default=[], metavar="KEY=JSON",
                   help="sr: a setting of srgan's (repeatable), e.g. content_size=128")
    p.add_argument("--gan-name", help="sr: srgan's run folder under --out (default srgan)")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--n", type=int, default=1000, help="held-out images measured")
    p.add_argument("--iters", type=int, default=10, help="throughput: timed iterations")
    p.add_argument("--out", default=str(REPO / "runs" / "restoration"))
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    torch.manual_seed(0)
    print(f"command: python {shlex.join([sys.argv[0]] + (argv if argv is not None else sys.argv[1:]))}")
    print(f"torch {torch.__version__}, 1 thread, {os.cpu_count()} logical CPUs (shared)")
    {"sr": part_sr, "ce": part_ce, "throughput": part_throughput}[args.part](args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
