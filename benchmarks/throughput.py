"""Training throughput on this machine: the ganforge engine, and the engine against a plain loop.

    python benchmarks/throughput.py                 # both tables
    python benchmarks/throughput.py --part engine   # (a) engine img/s, gan and dcgan at 28x28 and 32x32
    python benchmarks/throughput.py --part compare  # (b) engine vs a PyTorch-GAN-style plain loop, 28x28

One iteration is one D update and one G update on a batch of ``--batch-size`` real images; img/s is
``batch size x iterations per second`` for both sides, so the two columns count the same work.

The plain loop is written the way the popular single-file scripts (eriklindernoren/PyTorch-GAN)
write it: a ``torch.utils.data.DataLoader`` over a Dataset that converts each sample with
torchvision transforms, G's update first and its images reused (detached) for D's, ``.item()``
on both losses every step, ``optimizer.zero_grad()``. It trains the very same G and D (deep copies
taken from a ganforge model instance) with the same optimizer settings.

Timing: threads fixed (``--threads``), warm-up iterations excluded, engine and plain runs
interleaved so that load from other processes hits both alike, the median of ``--repeats`` runs
reported. Data: the real MNIST test images (10,000) when found under $GANFORGE_DATA or
../shared/datasets, else scikit-learn's digits resized (the table says which).
"""
from __future__ import annotations

import argparse
import copy
import os
import platform
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
# Wall clock by default; --clock cpu times this process's CPU seconds instead, which other
# processes competing for the cores disturb far less (use it with --threads 1 on a busy machine).
CLOCK = {"fn": time.perf_counter}


def find_data_root() -> Path | None:
    for root in (os.environ.get("GANFORGE_DATA"), REPO.parent / "shared" / "datasets"):
        if root and (Path(root) / "mnist" / "t10k-images-idx3-ubyte.gz").exists():
            return Path(root)
    return None


def load_images(size: int):
    """(raw, description): uint8 images at ``size`` x ``size``."""
    from ganforge.data import load_data

    root = find_data_root()
    if root is not None:
        return load_data("mnist", image_size=size, root=root), "MNIST test images (10,000)"
    return load_data("digits", image_size=size), "scikit-learn digits (1,797), resized"


def make_trainer(model: str, raw, size: int, batch: int, out: Path, **sets):
    from ganforge import config as C
    from ganforge.registry import get_model_class
    from ganforge.training.engine import Trainer

    cls = get_model_class(model)
    data = "mnist" if raw.name == "mnist" else "digits"
    cfg = C.resolve(cls.defaults, {"model": model, "data": data, "image_size": size, "batch_size": batch,
                                   "device": "cpu", "sample_every": 0, "ckpt_every": 0}, sets)
    return Trainer(cfg, out, progress=False, raw=raw)


def time_engine(trainer, iters: int, warmup: int) -> float:
    """img/s over ``iters`` iterations of the engine's own loop body (Trainer.fit without the
    progress bar, checkpoints and samples): train_step, plus the metrics row every log_every."""
    log_every, batch = trainer.cfg["log_every"], trainer.cfg["batch_size"]
    acc, t_log, images, t0 = {}, time.time(), 0, CLOCK["fn"]()
    with tempfile.TemporaryDirectory() as tmp:
        trainer.out = Path(tmp)
        for i in range(warmup + iters):
            if i == warmup:
                t0 = CLOCK["fn"]()
            images += trainer.train_step(acc)
            trainer.step += 1
            if trainer.step % log_every == 0:
                trainer._log(acc, t_log, images, t_log)
                acc, t_log, images = {}, time.time(), 0
        if trainer.device.type == "cuda":
            torch.cuda.synchronize()
        dt = CLOCK["fn"]() - t0
    return iters * batch / max(dt, 1e-9)


class PerSampleDataset(torch.utils.data.Dataset):
    """What ``torchvision.datasets.MNIST(transform=...)`` does: PIL image per sample, then transforms."""

    def __init__(self, x, size: int):
        import torchvision.transforms as T

        self.x = x  # uint8 (N, 1, H, W)
        self.transform = T.Compose([T.Resize(size), T.ToTensor(), T.Normalize([0.5], [0.5])])

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        from PIL import Image

        return self.transform(Image.fromarray(self.x[i, 0].numpy(), mode="L")), 0


def plain_loop(model, raw, size: int, batch: int, lr: float, betas, z_dim: int, fresh_z: bool = False):
    """A generator of iterations of the single-file-script training loop (see module docstring).

    ``fresh_z``: D's update draws new noise and runs G again (without gradients), as Algorithm 1
    of Goodfellow et al. does (and the engine with ``reuse_fake=false``), instead of reusing the G
    step's images.
    """
    # requires_grad back on: the engine toggles it per phase, a plain script never does
    G, D = (copy.deepcopy(net).train().requires_grad_(True) for net in (model.G, model.D))
    opt_G = torch.optim.Adam(G.parameters(), lr=lr, betas=betas)
    opt_D = torch.optim.Adam(D.parameters(), lr=lr, betas=betas)
    bce = torch.nn.BCEWithLogitsLoss()
    loader = torch.utils.data.DataLoader(PerSampleDataset(raw.x, size), batch_size=batch, shuffle=True,
                                         drop_last=True)
    log = []
    while True:
        for imgs, _ in loader:
            valid, fake = torch.ones(imgs.shape[0]), torch.zeros(imgs.shape[0])
            opt_G.zero_grad()
            z = torch.randn(imgs.shape[0], z_dim)
            gen_imgs = G(z)
            g_loss = bce(D(gen_imgs), valid)
            g_loss.backward()
            opt_G.step()
            opt_D.zero_grad()
            if fresh_z:
                with torch.no_grad():
                    gen_imgs = G(torch.randn(imgs.shape[0], z_dim))
            d_loss = (bce(D(imgs), valid) + bce(D(gen_imgs.detach()), fake)) / 2
            d_loss.backward()
            opt_D.step()
            log.append((d_loss.item(), g_loss.item()))  # the scripts print these every step
            yield


def time_plain(loop, iters: int, warmup: int, batch: int) -> float:
    for _ in range(warmup):
        next(loop)
    t0 = CLOCK["fn"]()
    for _ in range(iters):
        next(loop)
    return iters * batch / (CLOCK["fn"]() - t0)


def table(rows, header) -> str:
    widths = [max(len(str(h)), *(len(str(r[i])) for r in rows)) for i, h in enumerate(header)]
    line = lambda r: "| " + " | ".join(str(c).ljust(w) for c, w in zip(r, widths)) + " |"  # noqa: E731
    return "\n".join([line(header), "| " + " | ".join("-" * w for w in widths) + " |"] + [line(r) for r in rows])


def engine_variants(args) -> dict:
    """{"defaults": {}} plus one settings dict per ``--engine-set KEY=VALUE``."""
    from ganforge.config import parse_value

    variants = {"defaults": {}}
    for item in args.engine_set:
        key, value = item.split("=", 1)
        variants[item] = {key: parse_value(value)}
    return variants


def part_engine(args) -> None:
    rows = []
    for size in args.sizes:
        raw, what = load_images(size)
        for model in args.models:
            for name, sets in engine_variants(args).items():
                with tempfile.TemporaryDirectory() as tmp:
                    t = make_trainer(model, raw, size, args.batch_size, Path(tmp), **sets)
                    runs = [time_engine(t, args.iters, args.warmup if r == 0 else 0) for r in range(args.repeats)]
                rows.append((model, name, f"{size}x{size}", args.batch_size, f"{statistics.median(runs):,.0f}",
                             f"{min(runs):,.0f}-{max(runs):,.0f}", what))
    print("\n(a) engine training throughput, CPU\n")
    print(table(rows, ("model", "settings", "size", "batch", "img/s (median)", "range", "data")))


def part_compare(args) -> list:
    """Engine (with the defaults, plus each ``--engine-set`` variant) against the plain loop."""
    size = 28
    raw, what = load_images(size)
    variants = engine_variants(args)
    rows, ratios = [], []
    for model in args.models:
        with tempfile.TemporaryDirectory() as tmp:
            ts = {name: make_trainer(model, raw, size, args.batch_size, Path(tmp) / str(i), **sets)
                  for i, (name, sets) in enumerate(variants.items())}
            m = ts["defaults"].model
            c = m.cfg
            loops = {k: plain_loop(m, raw, size, args.batch_size, c["lr"], tuple(c["betas"]), c["z_dim"], fresh_z=f)
                     for k, f in (("plain", False), ("plain-fresh-z", True))}
            runs = {name: [] for name in [*ts, *loops]}
            jobs = {name: (lambda t=t: time_engine(t, args.iters, 0)) for name, t in ts.items()}
            for k, loop in loops.items():
                jobs[k] = lambda loop=loop: time_plain(loop, args.iters, 0, args.batch_size)
                time_plain(loop, 0, args.warmup, args.batch_size)
            for t in ts.values():
                time_engine(t, 0, args.warmup)
            order = list(jobs)
            for r in range(args.repeats):  # interleaved, rotating which goes first
                for name in order[r % len(order):] + order[:r % len(order)]:
                    runs[name].append(jobs[name]())
        p, pf = statistics.median(runs["plain"]), statistics.median(runs["plain-fresh-z"])
        for name in ts:
            e = statistics.median(runs[name])
            per_run = [a / b for a, b in zip(runs[name], runs["plain"])]
            if name == "defaults":
                ratios.append(e / p)
            rows.append((model, name, f"{size}x{size}", args.batch_size, f"{e:,.0f}", f"{p:,.0f}", f"{e / p:.2f}x",
                         f"{min(per_run):.2f}-{max(per_run):.2f}", f"{pf:,.0f}", f"{e / pf:.2f}x", what))
    print("\n(b) engine vs plain PyTorch-GAN-style loop, same G and D, CPU\n")
    print(table(rows, ("model", "engine settings", "size", "batch", "engine img/s", "plain img/s", "speed-up",
                       "per-run range", "plain, fresh z img/s", "speed-up vs fresh z", "data")))
    print("\nplain: G's images reused for D's update (PyTorch-GAN), as the engine's default reuse_fake does; "
          "plain, fresh z: D's update draws new noise and runs G again (Goodfellow et al.'s Algorithm 1)")
    return ratios


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--part", choices=["engine", "compare", "all"], default="all")
    p.add_argument("--models", nargs="+", default=["gan", "dcgan"])
    p.add_argument("--sizes", nargs="+", type=int, default=[28, 32])
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--iters", type=int, default=40, help="timed iterations per run")
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--engine-set", action="append", default=[], metavar="KEY=VALUE",
                   help="also time the engine with this setting, e.g. amp=bf16 (repeatable)")
    p.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                   help="cpu: img per CPU-second of this process (robust on a shared machine)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    CLOCK["fn"] = time.process_time if args.clock == "cpu" else time.perf_counter

    print(f"command: python {shlex.join([sys.argv[0]] + (argv if argv is not None else sys.argv[1:]))}")
    print(f"torch {torch.__version__}, {args.threads} threads, {args.clock} clock, "
          f"{platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} logical CPUs; {args.iters} timed iterations per run after {args.warmup} warm-up, "
          f"median of {args.repeats} runs")
    if args.part in ("engine", "all"):
        part_engine(args)
    if args.part in ("compare", "all"):
        ratios = part_compare(args)
        print(f"\nslowest engine/plain ratio with the defaults: {min(ratios):.2f}x (target >= 1.3x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
