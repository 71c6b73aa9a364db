"""f-GAN (Nowozin et al. 2016): each divergence's activation and conjugate against an independent
Fenchel conjugate of f, and the variational bound against the exact divergence of two Gaussians."""
import math

import pytest
import torch

import ganforge
from ganforge import losses
from ganforge.cli import main
from ganforge.losses import F_DIVERGENCES

NAMES = sorted(F_DIVERGENCES)
# P (the data) and Q (the model): two unit Gaussians half a standard deviation apart.
MU_P, MU_Q = 0.0, 0.5
X = torch.linspace(-12, 12, 48001, dtype=torch.float64)
DX = float(X[1] - X[0])


def _pdf(x, mu):
    return torch.exp(-0.5 * (x - mu) ** 2) / math.sqrt(2 * math.pi)


P, Q = _pdf(X, MU_P), _pdf(X, MU_Q)


def true_divergence(name):
    """D_f(P||Q) = E_Q[f(p/q)] by quadrature."""
    return float((Q * F_DIVERGENCES[name].f(P / Q)).sum() * DX)


def exact_bound(name, t):
    """E_P[T] - E_Q[f*(T)] by quadrature, for T given on the grid X."""
    d = F_DIVERGENCES[name]
    return float(((P * t).sum() - (Q * d.conjugate(t)).sum()) * DX)


@pytest.mark.parametrize("name", NAMES)
def test_conjugate_is_the_fenchel_conjugate_of_f_and_the_activation_lands_in_its_domain(name):
    d = F_DIVERGENCES[name]
    v = torch.linspace(-3, 3, 61, dtype=torch.float64)
    t = d.activation(v)
    ft = d.conjugate(t)
    assert torch.isfinite(ft).all()  # g_f maps every raw output into dom f*
    # f*(t) = sup_u u t - f(u), found on a fine grid of u > 0 (independent of the closed forms)
    u = torch.logspace(-6, 4, 200001, dtype=torch.float64)
    if name == "pearson":  # (u - 1)^2 is defined on all of R, and its conjugate is taken there
        u = torch.cat([-u.flip(0), u])
    sup = (u[None] * t[:, None] - d.f(u)[None]).max(1).values
    assert torch.allclose(ft, sup, atol=2e-3, rtol=1e-3), (ft - sup).abs().max()
    # the overflow-safe composite used in training is the same function
    assert torch.allclose(d.conj_of_act(v), ft, atol=1e-10, rtol=1e-9)
    # f(1) = 0, so D_f(P||P) = 0; the paper's "gan" row is 2 JS - log 4, so its f(1) is -log 4
    want = -math.log(4) if name == "gan" else 0.0
    assert d.f(torch.tensor(1.0, dtype=torch.float64)).item() == pytest.approx(want, abs=1e-12)


@pytest.mark.parametrize("name", NAMES)
def test_the_bound_is_tight_at_the_optimal_critic_and_below_the_divergence_elsewhere(name):
    d = F_DIVERGENCES[name]
    true = true_divergence(name)
    r = (P / Q).clone().requires_grad_(True)
    t_opt = torch.autograd.grad(d.f(r).sum(), r)[0]  # T* = f'(p/q)
    assert exact_bound(name, t_opt) == pytest.approx(true, abs=1e-6)
    g = torch.Generator().manual_seed(0)
    for _ in range(5):  # any other critic (an arbitrary raw output through g_f) gives less
        v = torch.randn(3, generator=g, dtype=torch.float64)
        t = d.activation(v[0] + v[1] * X + 0.1 * v[2] * X ** 2)
        assert exact_bound(name, t) <= true + 1e-9


@pytest.mark.parametrize("name", NAMES)
def test_a_trained_critic_approaches_the_divergence_from_below(name):
    """D trained on samples by f-GAN's D loss alone: its bound, computed exactly, never exceeds
    D_f(P||Q) and gets within 10% of it."""
    torch.manual_seed(0)
    V = torch.nn.Sequential(torch.nn.Linear(1, 64), torch.nn.Tanh(), torch.nn.Linear(64, 64), torch.nn.Tanh(),
                            torch.nn.Linear(64, 1))
    opt = torch.optim.Adam(V.parameters(), lr=3e-3)
    for _ in range(600):
        xp, xq = torch.randn(512, 1) + MU_P, torch.randn(512, 1) + MU_Q
        loss = -losses.f_bound(name, V(xp), V(xq))
        opt.zero_grad()
        loss.backward()
        opt.step()
    true = true_divergence(name)
    x = X[(X > -6) & (X < 6.5)]
    with torch.no_grad():
        t = F_DIVERGENCES[name].activation(V(x[:, None].float()).double()[:, 0])
    keep = (X > -6) & (X < 6.5)
    d = F_DIVERGENCES[name]
    bound = float(((P[keep] * t).sum() - (Q[keep] * d.conjugate(t)).sum()) * DX)
    assert bound <= true + 1e-4, (bound, true)
    assert true - bound <= 0.1 * abs(true) + 2e-3, (bound, true)


def test_model_losses_are_the_bound_and_the_practical_g_objective():
    model = ganforge.create("fgan", data="ring8", divergence="kl")
    g = torch.Generator().manual_seed(0)
    vp, vq = torch.randn(8, 1, generator=g), torch.randn(8, 1, generator=g)
    assert model.d_adversarial(vp, vq).item() == pytest.approx(-(vp.mean() - torch.exp(vq - 1).mean()).item())
    assert model.g_adversarial(vq).item() == pytest.approx(-vq.mean().item())
    model = ganforge.create("fgan", data="ring8", divergence="reverse-kl", g_objective="saddle")
    assert model.g_adversarial(vq).item() == pytest.approx(-(vq - 1).mean().item())


@pytest.mark.parametrize("name", NAMES)
def test_every_divergence_trains_from_the_cli(tmp_path, name):
    out = tmp_path / name
    assert main(["train", "fgan", "--data", "ring8", "--steps", "3", "--batch-size", "32", "--out", str(out),
                 "--quiet", "--set", f"divergence={name}", "--set", "sample_every=0"]) == 0
    assert (out / "checkpoints" / "last.pt").is_file()


@pytest.mark.parametrize("sets,needle", [(["divergence=kld"], "unknown divergence 'kld'"),
                                         (["loss=ls"], "unknown setting 'loss'"),
                                         (["label_smoothing=0.1"], "divergence="), (["g_objective=x"], "g_objective")])
def test_bad_settings_are_one_line_errors(tmp_path, capsys, sets, needle):
    argv = ["train", "fgan", "--data", "ring8", "--steps", "1", "--out", str(tmp_path / "r"), "--quiet"]
    assert main(argv + [x for s in sets for x in ("--set", s)]) == 2
    err = capsys.readouterr().err
    assert needle in err and len(err.strip().splitlines()) == 1


def _benchmark():
    """benchmarks/fgan.py, whose Section 4 experiment the test runs at a smaller budget."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "fgan.py"
    spec = importlib.util.spec_from_file_location("fgan_benchmark", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.slow
def test_section4_a_gaussian_fitted_by_kl_covers_the_mixture_and_by_reverse_kl_sits_on_one_mode():
    """Nowozin et al., Sec. 4: Q = N(mu, sigma^2) fitted to a two-Gaussian mixture P through the
    variational bound (critic ascending f_bound, Q descending it). KL(P||Q)'s minimiser over
    Gaussians is the moment-matched one (P's mean and std); reverse KL's sits on one mode."""
    bench = _benchmark()
    torch.set_num_threads(1)
    mean, std = bench.moment_matched()
    # the quadrature the benchmark compares against finds the moment-matched Gaussian for KL itself
    mu, sigma = bench.exact_fit("kl", iters=1500)
    assert mu == pytest.approx(mean, abs=0.02) and sigma == pytest.approx(std, rel=0.02)
    kl = bench.fit_1d("kl", steps=1000, seed=0)
    rkl = bench.fit_1d("reverse-kl", seed=0)  # the benchmark's 2,500 steps: Q has to travel to a mode
    assert kl["mu"] == pytest.approx(mean, abs=0.3) and kl["sigma"] == pytest.approx(std, rel=0.15), kl
    modes = [m for _, m, _ in bench.MIXTURE]
    widths = [s for _, _, s in bench.MIXTURE]
    nearest = min(range(len(modes)), key=lambda i: abs(rkl["mu"] - modes[i]))
    assert abs(rkl["mu"] - modes[nearest]) < 0.3, rkl  # on a mode, not between them
    assert rkl["sigma"] < 0.5 * kl["sigma"] and rkl["sigma"] < 1.5 * widths[nearest], (rkl, kl)
