"""f-GAN (Nowozin et al. 2016), every divergence of ``losses.F_DIVERGENCES``: ring8, MNIST, and the 1-D fit.

    python benchmarks/fgan.py ring8              # each divergence on ring8: modes and high-quality share
    python benchmarks/fgan.py mnist              # each on MNIST, small DCGAN nets: Frechet distance, classes
    python benchmarks/fgan.py 1d                 # Section 4: one Gaussian fitted to a two-Gaussian mixture

ring8 runs through benchmarks/modes.py (its run_one and table), each divergence a named variant of
``fgan`` there: the fgan point defaults (z_dim 2, EMA 0.99, batch 128, lr 1e-3, lr_d 2e-3) are what
modes.py's COMMON sets, so a row is ``ganforge train fgan --data ring8 --steps S --set divergence=NAME``.
MNIST: ``ganforge train fgan --data mnist --batch-size 64 --set g_width=W d_width=W divergence=NAME``,
then ``ganforge eval RUN --metrics fd,classes --n N``. A run that stops on a non-finite loss
(nan_policy=stop) is a result: the row says at which step, and its last good checkpoint is measured.

1d: P = a mixture of two Gaussians, Q_theta = N(mu, sigma^2) (theta = mu, log sigma, sampled as
mu + sigma z), a tanh critic of 2 x 64 units (the paper's Section 4 setting); D maximises
``losses.f_bound`` and Q minimises the bound itself (``losses.f_g_loss(saddle=True)``), the
paper's saddle point. Each fit is set beside the exact minimiser of D_f(P||Q_theta) over the same
family, found by quadrature; for KL that is the moment-matched Gaussian. With ``--practical`` the
fits also run with the practical G objective (maximise E_Q[g_f(V)]), whose gradient, for a Q that
cannot reach P, is not the divergence's (for KL it is reverse KL's).
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import math
import shlex
import sys
import time
from argparse import Namespace
from pathlib import Path

import torch

from ganforge import losses
from ganforge.errors import DivergedError
from ganforge.losses import F_DIVERGENCES

DIVERGENCES = tuple(F_DIVERGENCES)  # kl, reverse-kl, pearson, neyman, squared-hellinger, jensen-shannon, gan
HERE = Path(__file__).resolve().parent


def load_modes():
    """benchmarks/modes.py as a private module, with one fgan variant per divergence."""
    spec = importlib.util.spec_from_file_location("modes_benchmark_fgan", HERE / "modes.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    mod.VARIANTS = {**mod.VARIANTS, **{f"fgan-{d}": ("fgan", {"divergence": d}) for d in DIVERGENCES}}
    return mod


def cmd_ring8(args) -> list[dict]:
    modes = load_modes()
    torch.set_num_threads(1)
    rows, names = [], [f"fgan-{d}" for d in args.divergences]
    ns = Namespace(steps=args.steps, batch_size=128, n_samples=2500, out=args.out)
    for name in names:
        for seed in args.seeds:
            try:
                r = modes.run_one(name, "ring8", seed, ns)
            except DivergedError as e:
                print(f"{name} seed {seed}: stopped, {e}", flush=True)
                rows.append({"model": name, "data": "ring8", "seed": seed, "stopped": str(e)})
                continue
            rows.append(r)
            print(f"{name:24s} seed {seed}: {r['modes']}/{r['n_modes']} modes, {100 * r['high_quality']:5.1f}% "
                  f"high quality, mode KL {r['kl']:.3f} ({r['seconds']:.0f} s)", flush=True)
    print(f"\n{args.steps} generator steps, batch 128, seeds {args.seeds}, 2500 samples of G_ema per run\n")
    print(modes.table([r for r in rows if "modes" in r], names, ["ring8"]))
    return rows


def cmd_mnist(args) -> list[dict]:
    import ganforge

    torch.set_num_threads(1)
    rows = []
    for d in args.divergences:
        out = Path(args.out) / f"fgan-{d}-mnist-s{args.seed}"
        sets = {"g_width": args.width, "d_width": args.width, "divergence": d, "sample_every": args.steps,
                "log_every": 50, "ckpt_every": 250}
        t0, stopped = time.time(), None
        try:
            ganforge.train("fgan", out=out, force=True, steps=args.steps, data="mnist", seed=args.seed,
                           batch_size=64, device="cpu", sets=sets, progress=False)
        except DivergedError as e:
            stopped = str(e)
        seconds = time.time() - t0
        row = {"divergence": d, "seconds": round(seconds, 1), "stopped": stopped}
        if (out / "checkpoints" / "last.pt").is_file():
            t1 = time.time()
            rec = ganforge.evaluate_run(out, metrics="fd,classes", n=args.n, progress=False)
            row.update(step=rec["step"], fd=rec["fd"], classes=rec["classes"], class_kl=rec["class_kl"],
                       eval_seconds=round(time.time() - t1, 1))
        rows.append(row)
        what = f"stopped: {stopped}" if stopped else "done"
        meas = (f"step {row['step']}: FD {row['fd']:.1f}, {row['classes']}/10 classes, class KL {row['class_kl']:.3f}"
                if "fd" in row else "no checkpoint to measure")
        print(f"{d:18s} {what}; {meas} (train {seconds:.0f} s)", flush=True)
    print(f"\nMNIST, {args.steps} steps, batch 64, g_width = d_width = {args.width}, seed {args.seed}; "
          f"{args.n} samples of G against the 60,000 training digits, digit features\n")
    print("| divergence | FD | classes (of 10) | class KL | steps reached | train s |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        if "fd" in r:
            reached = r["step"] if not r["stopped"] else f"NaN stop; last good checkpoint {r['step']}"
            print(f"| {r['divergence']} | {r['fd']:.1f} | {r['classes']} | {r['class_kl']:.3f} | {reached} | "
                  f"{r['seconds']:.0f} |")
        else:
            print(f"| {r['divergence']} | - | - | - | NaN stop before any checkpoint | {r['seconds']:.0f} |")
    if args.figure:
        mnist_figure(rows, args)
    return rows


def mnist_figure(rows, args) -> None:
    """The last sample grid of each run, side by side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.image as mpimg
    import matplotlib.pyplot as plt

    grids = []
    for r in rows:
        files = sorted((Path(args.out) / f"fgan-{r['divergence']}-mnist-s{args.seed}" / "samples").glob("*.png"))
        if files:
            grids.append((r, mpimg.imread(files[-1])))
    if not grids:
        return
    fig, axes = plt.subplots(1, len(grids), figsize=(2.2 * len(grids), 2.6))
    for ax, (r, img) in zip(list(getattr(axes, "flat", [axes])), grids):
        ax.imshow(img, cmap="gray")
        ax.set_axis_off()
        label = f"FD {r['fd']:.0f}" if "fd" in r else "no checkpoint"
        ax.set_title(f"{r['divergence']}\n{label}" + (" (NaN stop)" if r["stopped"] else ""), fontsize=8)
    fig.tight_layout()
    fig.savefig(args.figure, dpi=110)
    print(f"figure: {args.figure}")


# --- Section 4: one Gaussian Q fitted to a mixture P ------------------------------------------------
# P: two well-separated Gaussians of unequal weight (weight, mean, std); Q starts at N(0, 1).
MIXTURE = ((0.7, -2.0, 0.5), (0.3, 2.0, 0.5))
GRID = torch.linspace(-12.0, 12.0, 2401, dtype=torch.float64)


def p_sample(n: int, g: torch.Generator) -> torch.Tensor:
    w = torch.tensor([c[0] for c in MIXTURE])
    k = torch.multinomial(w, n, replacement=True, generator=g)
    mean = torch.tensor([c[1] for c in MIXTURE])[k]
    std = torch.tensor([c[2] for c in MIXTURE])[k]
    return (mean + std * torch.randn(n, generator=g))[:, None]


def _log_normal(x, mu, std):
    return -0.5 * ((x - mu) / std) ** 2 - torch.log(std * math.sqrt(2 * math.pi))


def p_log_pdf(x: torch.Tensor) -> torch.Tensor:
    parts = [math.log(w) + _log_normal(x, torch.tensor(m, dtype=x.dtype), torch.tensor(s, dtype=x.dtype))
             for w, m, s in MIXTURE]
    return torch.logsumexp(torch.stack(parts), 0)


def moment_matched() -> tuple[float, float]:
    """The minimiser of KL(P||N(mu, sigma^2)): P's mean and standard deviation."""
    mean = sum(w * m for w, m, _ in MIXTURE)
    second = sum(w * (s * s + m * m) for w, m, s in MIXTURE)
    return mean, math.sqrt(second - mean * mean)


def divergence_to_gaussian(name: str, mu, log_std) -> torch.Tensor:
    """D_f(P||N(mu, sigma^2)) = E_Q[f(p/q)] by quadrature on GRID. The log ratio is clipped to
    [-60, 60]: only far tails, where one density is below e^-60 of the other, are touched."""
    x = GRID
    log_q = _log_normal(x, mu, torch.exp(log_std))
    u = torch.exp((p_log_pdf(x) - log_q).clamp(-60.0, 60.0))
    return (torch.exp(log_q) * F_DIVERGENCES[name].f(u)).sum() * float(x[1] - x[0])


def exact_fit(name: str, init=(0.0, 0.0), iters: int = 1000) -> tuple[float, float]:
    """The Gaussian nearest P in D_f, by gradient descent from the same start as the f-GAN fit
    (reverse KL has a local minimum on each mode: the start picks one)."""
    theta = torch.tensor(init, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.Adam([theta], lr=0.02)
    for _ in range(iters):
        loss = divergence_to_gaussian(name, theta[0], theta[1])
        opt.zero_grad()
        loss.backward()
        opt.step()
    mu, log_std = theta.detach().tolist()
    return mu, math.exp(log_std)


def fit_1d(name: str, steps: int = 2500, seed: int = 0, batch: int = 256, saddle: bool = True,
           lr_d: float = 5e-3, lr_q: float = 1e-2, init=(0.0, 0.0)) -> dict:
    """f-GAN on the 1-D problem: the critic V (2 x 64 tanh units) ascends ``losses.f_bound``, then
    Q_theta = N(mu, sigma^2) descends ``losses.f_g_loss`` (the bound itself with ``saddle``), one
    step each per iteration. Returns Q's parameters averaged over the last quarter of the steps
    and the critic's running bound (its estimate of the divergence) over the same steps."""
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    V = torch.nn.Sequential(torch.nn.Linear(1, 64), torch.nn.Tanh(), torch.nn.Linear(64, 64), torch.nn.Tanh(),
                            torch.nn.Linear(64, 1))
    theta = torch.tensor(init, requires_grad=True)  # mu, log sigma
    opt_d = torch.optim.Adam(V.parameters(), lr=lr_d, betas=(0.5, 0.999))
    opt_q = torch.optim.Adam([theta], lr=lr_q, betas=(0.5, 0.999))
    tail, kept, bounds = steps - steps // 4, [], []
    for step in range(steps):
        xp = p_sample(batch, g)
        xq = theta[0] + torch.exp(theta[1]) * torch.randn(batch, 1, generator=g)
        bound = losses.f_bound(name, V(xp), V(xq.detach()))
        opt_d.zero_grad()
        (-bound).backward()
        opt_d.step()
        loss_q = losses.f_g_loss(name, V(xq), saddle=saddle)
        opt_q.zero_grad()
        loss_q.backward()  # V's grads from this are cleared by opt_d.zero_grad() before they are used
        opt_q.step()
        if not torch.isfinite(theta).all():
            return {"divergence": name, "saddle": saddle, "stopped": step}
        if step >= tail:
            kept.append(theta.detach().clone())
            bounds.append(float(bound.detach()))
    mu, log_std = torch.stack(kept).mean(0).tolist()
    return {"divergence": name, "saddle": saddle, "mu": mu, "sigma": math.exp(log_std),
            "bound": sum(bounds) / len(bounds)}


def cmd_1d(args) -> list[dict]:
    torch.set_num_threads(1)
    mm = moment_matched()
    print(f"P = {' + '.join(f'{w} N({m}, {s}^2)' for w, m, s in MIXTURE)}; Q_theta = N(mu, sigma^2) from N(0, 1); "
          f"{args.steps} steps, batch 256, seed {args.seed}")
    print(f"moment-matched Gaussian (the exact KL minimiser): mu {mm[0]:.3f}, sigma {mm[1]:.3f}\n")
    rows = []
    runs = [(d, True) for d in args.divergences] + [(d, False) for d in args.practical]
    for d, saddle in runs:
        t0 = time.time()
        r = fit_1d(d, steps=args.steps, seed=args.seed, saddle=saddle)
        r["seconds"] = round(time.time() - t0, 1)
        if "mu" in r:
            mu, sigma = exact_fit(d)
            r.update(exact_mu=mu, exact_sigma=sigma,
                     d_fit=float(divergence_to_gaussian(d, torch.tensor(r["mu"], dtype=torch.float64),
                                                        torch.tensor(math.log(r["sigma"]), dtype=torch.float64))),
                     d_exact=float(divergence_to_gaussian(d, torch.tensor(mu, dtype=torch.float64),
                                                          torch.tensor(math.log(sigma), dtype=torch.float64))))
        rows.append(r)
        print(f"{d:18s} {'saddle' if saddle else 'practical'}: " +
              (f"mu {r['mu']:+.3f} sigma {r['sigma']:.3f} | exact mu {r['exact_mu']:+.3f} sigma "
               f"{r['exact_sigma']:.3f} | D_f at fit {r['d_fit']:.4f}, at exact {r['d_exact']:.4f}, critic's "
               f"bound {r['bound']:.4f}" if "mu" in r else f"non-finite theta at step {r['stopped']}") +
              f" ({r['seconds']:.1f} s)", flush=True)
    print("\n| divergence | G objective | f-GAN mu | f-GAN sigma | exact mu | exact sigma | D_f(P‖Q) at the fit | "
          "at the exact minimiser | critic's bound |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        obj = "saddle" if r["saddle"] else "practical"
        if "mu" in r:
            print(f"| {r['divergence']} | {obj} | {r['mu']:+.3f} | {r['sigma']:.3f} | {r['exact_mu']:+.3f} | "
                  f"{r['exact_sigma']:.3f} | {r['d_fit']:.4f} | {r['d_exact']:.4f} | {r['bound']:.4f} |")
        else:
            print(f"| {r['divergence']} | {obj} | non-finite at step {r['stopped']} | | | | | | |")
    if args.figure:
        figure_1d(rows, args.figure)
    return rows


def figure_1d(rows, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = torch.linspace(-6, 6, 1201, dtype=torch.float64)
    fig, ax = plt.subplots(figsize=(7.5, 3.8))
    ax.fill_between(x, torch.exp(p_log_pdf(x)), color="0.85", label="P (mixture)")
    style = {"kl": ("tab:blue", "KL(P‖Q): mode covering"),
             "reverse-kl": ("tab:red", "reverse KL(Q‖P): mode seeking")}

    def q_pdf(mu, sigma):
        return torch.exp(_log_normal(x, torch.tensor(mu, dtype=x.dtype), torch.tensor(sigma, dtype=x.dtype)))

    for r in rows:
        if "mu" not in r:
            continue
        d = r["divergence"]
        if not r["saddle"]:
            if d == "kl":
                ax.plot(x, q_pdf(r["mu"], r["sigma"]), color="tab:blue", ls=":", lw=1.5,
                        label="KL, practical G objective")
            continue
        if d in style:
            color, label = style[d]
            ax.plot(x, q_pdf(r["mu"], r["sigma"]), color=color, lw=2, label=f"f-GAN, {label}")
            ax.plot(x, q_pdf(r["exact_mu"], r["exact_sigma"]), color=color, lw=1, ls="--",
                    label=f"exact {d} minimiser")
        else:
            ax.plot(x, q_pdf(r["mu"], r["sigma"]), color="0.4", lw=0.8, alpha=0.5)
    others = [r["divergence"] for r in rows if r["saddle"] and r["divergence"] not in style]
    if others:
        ax.plot([], [], color="0.4", lw=0.8, alpha=0.5, label="f-GAN: " + ", ".join(others))
    ax.set_xlabel("x")
    ax.set_ylabel("density")
    ax.set_title("f-GAN, Section 4: one Gaussian Q fitted to a mixture P", fontsize=10)
    ax.legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    print(f"figure: {path}")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("ring8", help="every divergence on ring8 (through benchmarks/modes.py)")
    r.add_argument("--divergences", nargs="+", default=list(DIVERGENCES), choices=DIVERGENCES)
    r.add_argument("--steps", type=int, default=3000)
    r.add_argument("--seeds", nargs="+", type=int, default=[0])
    r.add_argument("--out", default="runs/fgan-ring8")
    m = sub.add_parser("mnist", help="every divergence on MNIST, small DCGAN networks")
    m.add_argument("--divergences", nargs="+", default=list(DIVERGENCES), choices=DIVERGENCES)
    m.add_argument("--steps", type=int, default=1500)
    m.add_argument("--width", type=int, default=32, help="g_width and d_width")
    m.add_argument("--seed", type=int, default=0)
    m.add_argument("--n", type=int, default=5000, help="samples measured")
    m.add_argument("--out", default="runs/fgan-mnist")
    m.add_argument("--figure", help="PNG of each run's last sample grid")
    o = sub.add_parser("1d", help="Section 4: a Gaussian fitted to a two-Gaussian mixture, every divergence")
    o.add_argument("--divergences", nargs="+", default=list(DIVERGENCES), choices=DIVERGENCES)
    o.add_argument("--practical", nargs="*", default=["kl"], choices=DIVERGENCES,
                   help="also fit these with the practical G objective (default: kl)")
    o.add_argument("--steps", type=int, default=2500)
    o.add_argument("--seed", type=int, default=0)
    o.add_argument("--figure", default="docs/img/fgan-1d.png")
    for q in (r, m, o):
        q.add_argument("--json", help="also write every run's figures to this file")
    args = p.parse_args(argv)
    command = "python benchmarks/fgan.py " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
    t0 = time.time()
    rows = {"ring8": cmd_ring8, "mnist": cmd_mnist, "1d": cmd_1d}[args.cmd](args)
    print(f"\ncommand: {command.strip()}; {time.time() - t0:.0f} s in all, 1 thread")
    if getattr(args, "json", None):
        Path(args.json).write_text(json.dumps({"command": command.strip(), "runs": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
