"""Each switch of the single-device fast path, measured on its own through the engine.

    python benchmarks/fastpath.py                   # gan and dcgan, MNIST-sized (28x28), CPU
    python benchmarks/fastpath.py --device cuda     # the same on a GPU (adds fp16 / bf16 AMP)

Every row starts from the engine's defaults and changes one thing; img/s is batch size x
iterations per second (one D and one G update per iteration), the median of ``--repeats`` runs
interleaved across rows so that load from other processes hits every row alike.

Rows:
  defaults                 what ``ganforge train`` does
  reuse G(z) off           the G step runs G again on fresh noise instead of reusing the D step's G(z)
  adam: for-loop           torch.optim.Adam(foreach=False, fused=False): one kernel per op per tensor
  adam: foreach            multi-tensor Adam (foreach=True)
  adam: fused              fused Adam (fused=True)
  channels-last on/off     networks and images in NHWC memory format (convolutional models only)
  bf16 autocast            torch.autocast(dtype=bfloat16) around each phase
  fp16 autocast + scaler   CUDA only: float16 autocast with GradScaler
  torch.compile            ``--compile``: each network compiled in place (nn.Module.compile)
"""
from __future__ import annotations

import argparse
import os
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from throughput import CLOCK, load_images, table, time_engine  # noqa: E402


def trainer(model: str, raw, size: int, batch: int, device: str, **sets):
    from ganforge import config as C
    from ganforge.registry import get_model_class
    from ganforge.training.engine import Trainer

    cls = get_model_class(model)
    data = "mnist" if raw.name == "mnist" else "digits"
    cfg = C.resolve(cls.defaults, {"model": model, "data": data, "image_size": size, "batch_size": batch,
                                   "device": device, "sample_every": 0, "ckpt_every": 0}, sets)
    return Trainer(cfg, Path(tempfile.mkdtemp(prefix="ganforge-fastpath-")), progress=False, raw=raw)


def with_adam(**kw):
    def apply(t):
        for name, o in list(t.opts.items()):
            g = o.param_groups[0]
            t.opts[name] = torch.optim.Adam(g["params"], lr=g["lr"], betas=g["betas"], **(kw or {"foreach": False}))
        return t
    return apply


def with_amp(dtype):
    def apply(t):
        t.amp_dtype = dtype
        if dtype is torch.float16:
            t.scaler = torch.amp.GradScaler("cuda", enabled=True)
        return t
    return apply


def variants(model: str, device: str) -> dict:
    """name -> (config overrides, function applied to the built trainer)."""
    conv = model != "gan"
    v = {"defaults": ({}, None),
         "reuse G(z) off": ({"reuse_fake": False}, None),
         "adam: for-loop": ({}, with_adam()),
         "adam: foreach": ({}, with_adam(foreach=True)),
         "adam: fused": ({}, with_adam(fused=True))}
    if conv:
        v["channels-last on"] = ({"channels_last": True}, None)
        v["channels-last off"] = ({"channels_last": False}, None)
    v["bf16 autocast"] = ({}, with_amp(torch.bfloat16))
    if device == "cuda":
        v["fp16 autocast + scaler"] = ({}, with_amp(torch.float16))
    v["torch.compile"] = ({"compile": True}, None)
    return v


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=["gan", "dcgan"])
    p.add_argument("--size", type=int, default=28)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--iters", type=int, default=30)
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--skip", nargs="*", default=[], help="rows to leave out, e.g. 'torch.compile'")
    p.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                   help="cpu: img per CPU-second of this process (robust on a shared machine)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    CLOCK["fn"] = time.process_time if args.clock == "cpu" else time.perf_counter
    print(f"command: python {shlex.join([sys.argv[0]] + (argv if argv is not None else sys.argv[1:]))}")
    print(f"torch {torch.__version__}, device {args.device}, {args.threads} threads, {args.clock} clock, "
          f"{os.cpu_count()} logical CPUs; "
          f"{args.iters} timed iterations per run after {args.warmup} warm-up, median of {args.repeats}")
    raw, what = load_images(args.size)
    rows = []
    for model in args.models:
        built = {}
        for name, (sets, fn) in variants(model, args.device).items():
            if name in args.skip:
                continue
            t0 = time.perf_counter()
            t = trainer(model, raw, args.size, args.batch_size, args.device, **sets)
            t = fn(t) if fn else t
            time_engine(t, 0, args.warmup)  # also pays torch.compile's compilation
            built[name] = (t, time.perf_counter() - t0)
        runs = {name: [] for name in built}
        for _ in range(args.repeats):
            for name, (t, _) in built.items():
                runs[name].append(time_engine(t, args.iters, 0))
        base = statistics.median(runs["defaults"])
        for name, r in runs.items():
            med = statistics.median(r)
            rows.append((model, name, f"{med:,.0f}", f"{med / base:.2f}x", f"{built[name][1]:.1f}"))
        if args.device == "cuda":
            torch.cuda.synchronize()
    print(f"\nfast-path switches, {args.size}x{args.size}, batch {args.batch_size}, data: {what}\n")
    print(table(rows, ("model", "switch", "img/s (median)", "vs defaults", "setup+warm-up s")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
