"""Training throughput on this machine: the ganforge engine, and the engine against a plain loop.

    python benchmarks/throughput.py                 # both tables
    python benchmarks/throughput.py --part engine   # (a) engine img/s, gan and dcgan at 28x28 and 32x32
    python benchmarks/throughput.py --part compare  # (b) engine vs a PyTorch-GAN-style plain loop, 28x28
    python benchmarks/throughput.py --part translation  # (c) pix2pix and CycleGAN: engine vs the authors' loop
    python benchmarks/throughput.py --part engine --models srresnet srgan context-encoder --sizes 28  # restoration
    python benchmarks/throughput.py --part engine --data digits-color-unpaired --models munit drit ...  # any data
                                                    # (their measured settings: benchmarks/restoration.py --part throughput)

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

(c) The translators against a loop written as the authors' pytorch-CycleGAN-and-pix2pix trains:
a DataLoader whose dataset turns each item into PIL images, resizes them to 286/256 of the size,
crops and flips (jointly for a pair), converts and normalises; pix2pix runs G once, updates D on
(A, G(A).detach()) and (A, B), then G on the cGAN loss plus 100 x L1; CycleGAN runs both
generators and both cycles, updates G (D frozen) with the LSGAN, cycle and identity terms, then
D_A and D_B on pooled fakes. Same networks (deep copies), same batch, ``.item()`` of the losses
every step. Data: facades at 128x128 when found, else the embedded digits' edge domains at 32x32.
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


def make_trainer(model: str, raw, size: int, batch: int, out: Path, data: str | None = None, **sets):
    from ganforge import config as C
    from ganforge.registry import get_model_class
    from ganforge.training.engine import Trainer

    cls = get_model_class(model)
    data = data or ("mnist" if raw.name == "mnist" else "digits")
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
        # --data: the engine loads that set itself (domains, captions), as `ganforge train --data` does.
        raw, what = (None, args.data) if args.data else load_images(size)
        for model in [*args.models, *args.engine_models]:
            for name, sets in engine_variants(args).items():
                with tempfile.TemporaryDirectory() as tmp:
                    t = make_trainer(model, raw, size, args.batch_size, Path(tmp), data=args.data, **sets)
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


# ---------------------------------------------------------------------------- (c) translation
class PairDataset(torch.utils.data.Dataset):
    """The authors' aligned / unaligned datasets, from memory instead of disk: per item, PIL images
    resized to the load size, a random crop (the same for A and B when paired) and flip, then
    ToTensor and Normalize. Unpaired: B is a random item of its own domain."""

    def __init__(self, a, b, size: int, paired: bool):
        import torchvision.transforms as T

        self.a, self.b, self.size, self.paired = a, b, size, paired
        self.load = round(size * 286 / 256)
        self.to_tensor = T.Compose([T.ToTensor(), T.Normalize([0.5] * a.shape[1], [0.5] * a.shape[1])])

    def __len__(self):
        return len(self.a)

    def _jitter(self, img, oy, ox, flip):
        from PIL import Image

        img = img.resize((self.load, self.load), Image.Resampling.BICUBIC)
        img = img.crop((ox, oy, ox + self.size, oy + self.size))
        return self.to_tensor(img.transpose(Image.Transpose.FLIP_LEFT_RIGHT) if flip else img)

    def __getitem__(self, i):
        import random

        from PIL import Image

        def pil(t):
            a = t.permute(1, 2, 0).numpy()
            return Image.fromarray(a[:, :, 0] if a.shape[2] == 1 else a)

        j = i if self.paired else random.randrange(len(self.b))
        room = self.load - self.size
        crop = (random.randint(0, room), random.randint(0, room), random.random() < 0.5)
        crop_b = crop if self.paired else (random.randint(0, room), random.randint(0, room), random.random() < 0.5)
        return self._jitter(pil(self.a[i]), *crop), self._jitter(pil(self.b[j]), *crop_b)


def _copies(*nets):
    return [copy.deepcopy(n).train().requires_grad_(True) for n in nets]


def plain_pix2pix(model, loader):
    G, D = _copies(model.G, model.D)
    c = model.cfg
    opt_G = torch.optim.Adam(G.parameters(), lr=c["lr"], betas=tuple(c["betas"]))
    opt_D = torch.optim.Adam(D.parameters(), lr=c["lr"], betas=tuple(c["betas"]))
    bce, l1, log = torch.nn.BCEWithLogitsLoss(), torch.nn.L1Loss(), []
    while True:
        for a, b in loader:
            fake = G(a)
            D.requires_grad_(True)
            opt_D.zero_grad()
            p_fake, p_real = D(torch.cat([a, fake.detach()], 1)), D(torch.cat([a, b], 1))
            loss_d = 0.5 * (bce(p_fake, torch.zeros_like(p_fake)) + bce(p_real, torch.ones_like(p_real)))
            loss_d.backward()
            opt_D.step()
            D.requires_grad_(False)
            opt_G.zero_grad()
            p = D(torch.cat([a, fake], 1))
            loss_g = bce(p, torch.ones_like(p)) + c["lambda_l1"] * l1(fake, b)
            loss_g.backward()
            opt_G.step()
            log.append((loss_d.item(), loss_g.item()))
            yield


def plain_cyclegan(model, loader):
    import itertools

    from ganforge.nn import ImagePool

    G_AB, G_BA, D_A, D_B = _copies(model.G_AB, model.G_BA, model.D_A, model.D_B)
    c = model.cfg
    opt_G = torch.optim.Adam(itertools.chain(G_AB.parameters(), G_BA.parameters()), lr=c["lr"], betas=tuple(c["betas"]))
    opt_D = torch.optim.Adam(itertools.chain(D_A.parameters(), D_B.parameters()), lr=c["lr"], betas=tuple(c["betas"]))
    pool_A, pool_B, l1, log = ImagePool(c["pool_size"]), ImagePool(c["pool_size"]), torch.nn.L1Loss(), []
    lam, idt = c["lambda_cyc"], c["lambda_cyc"] * c["lambda_id"]

    def ls(p, target):
        return (p - target).pow(2).mean()

    while True:
        for a, b in loader:
            fake_b, fake_a = G_AB(a), G_BA(b)
            rec_a, rec_b = G_BA(fake_b), G_AB(fake_a)
            D_A.requires_grad_(False), D_B.requires_grad_(False)
            opt_G.zero_grad()
            loss_g = ls(D_B(fake_b), 1) + ls(D_A(fake_a), 1) + lam * (l1(rec_a, a) + l1(rec_b, b))
            if idt:
                loss_g = loss_g + idt * (l1(G_AB(b), b) + l1(G_BA(a), a))
            loss_g.backward()
            opt_G.step()
            D_A.requires_grad_(True), D_B.requires_grad_(True)
            opt_D.zero_grad()
            fa, fb = pool_A.query(fake_a.detach()), pool_B.query(fake_b.detach())
            loss_d = 0.5 * (ls(D_A(a), 1) + ls(D_A(fa), 0)) + 0.5 * (ls(D_B(b), 1) + ls(D_B(fb), 0))
            loss_d.backward()
            opt_D.step()
            log.append((loss_d.item(), loss_g.item()))
            yield


def part_translation(args) -> list:
    """pix2pix and CycleGAN: the engine against the authors' style of loop (see the docstring)."""
    from ganforge.data import load_data

    root = find_data_root()
    facades = root is not None and (root / "facades" / "train").is_dir()
    size = 128 if facades else 32
    cases = {"pix2pix": "facades" if facades else "digits-edges",
             "cyclegan": "facades-unpaired" if facades else "digits-edges-unpaired"}
    sets = {"g_width": args.translation_width, "d_width": args.translation_width}
    rows, ratios = [], []
    for model, data in cases.items():
        if model not in args.translation_models:
            continue
        with tempfile.TemporaryDirectory() as tmp:
            t = make_trainer(model, None, size, args.translation_batch, Path(tmp), data=data, **sets)
            groups = [g for g in t.raw.groups.values()]
            a = next(g["A"] for g in groups if "A" in g)
            b = next(g["B"] for g in groups if "B" in g)
            loader = torch.utils.data.DataLoader(PairDataset(a, b, size, paired=model == "pix2pix"),
                                                 batch_size=args.translation_batch, shuffle=True, drop_last=True)
            loop = (plain_pix2pix if model == "pix2pix" else plain_cyclegan)(t.model, loader)
            time_plain(loop, 0, args.translation_warmup, args.translation_batch)
            time_engine(t, 0, args.translation_warmup)
            runs = {"engine": [], "plain": []}
            for r in range(args.repeats):  # interleaved, alternating which goes first
                order = ("engine", "plain") if r % 2 == 0 else ("plain", "engine")
                for name in order:
                    runs[name].append(time_engine(t, args.translation_iters, 0) if name == "engine" else
                                      time_plain(loop, args.translation_iters, 0, args.translation_batch))
        e, p = statistics.median(runs["engine"]), statistics.median(runs["plain"])
        per_run = [x / y for x, y in zip(runs["engine"], runs["plain"])]
        ratios.append(e / p)
        rows.append((model, data, f"{size}x{size}", args.translation_batch, args.translation_width, f"{e:.2f}",
                     f"{p:.2f}", f"{e / p:.2f}x", f"{min(per_run):.2f}-{max(per_run):.2f}"))
    print(f"\n(c) translators: engine vs the authors' style of loop, same networks, CPU; {args.translation_iters} "
          f"timed iterations per run after {args.translation_warmup} warm-up, median of {args.repeats} runs\n")
    print(table(rows, ("model", "data", "size", "batch", "g/d width", "engine img/s", "plain img/s", "speed-up",
                       "per-run range")))
    return ratios


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--part", choices=["engine", "compare", "translation", "all"], default="all")
    p.add_argument("--models", nargs="+", default=["gan", "dcgan"])
    p.add_argument("--engine-models", nargs="*", default=["biggan"],
                   help="(a) only: models timed by the engine alone (no plain loop to compare with)")
    p.add_argument("--sizes", nargs="+", type=int, default=[28, 32])
    p.add_argument("--data", help="(a) only: train on this data set (e.g. digits-edges-unpaired) instead of MNIST")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--iters", type=int, default=40, help="timed iterations per run")
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--engine-set", action="append", default=[], metavar="KEY=VALUE",
                   help="also time the engine with this setting, e.g. amp=bf16 (repeatable)")
    p.add_argument("--translation-models", nargs="+", default=["pix2pix", "cyclegan"])
    p.add_argument("--translation-width", type=int, default=32, help="(c): g_width and d_width")
    p.add_argument("--translation-batch", type=int, default=1, help="(c): the papers' batch size 1")
    p.add_argument("--translation-iters", type=int, default=10)
    p.add_argument("--translation-warmup", type=int, default=3)
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
    if args.part in ("translation", "all"):
        ratios = part_translation(args)
        print(f"\nslowest translator engine/plain ratio: {min(ratios):.2f}x (target: no slower, >= 1.0x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
