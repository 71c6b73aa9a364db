"""The objective family (LSGAN, WGAN, WGAN-GP, EBGAN, BGAN) and the shared losses: each test
shows the mechanism that defines a model, against a direct computation."""
import json
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import ganforge
from ganforge.metrics import sample_mixture
from ganforge import config as C
from ganforge import losses
from ganforge.cli import main
from ganforge.errors import ConfigError
from ganforge.models.ebgan import ebgan_d_loss
from ganforge.registry import get_model_class
from ganforge.training.engine import Trainer

from conftest import QUIET, TINY_DCGAN, TINY_GAN

OBJECTIVES = ["lsgan", "wgan", "wgan-gp", "ebgan", "bgan"]
TINY = {**TINY_DCGAN, "toy_hidden": 16, "toy_layers": 2}


def make_trainer(tmp_path, model, data="grid25", **over):
    cls = get_model_class(model)
    tiny = TINY_GAN if model == "gan" else TINY_DCGAN if model == "dcgan" else TINY
    cfg = C.resolve(cls.defaults, {"model": model, "data": data, "batch_size": 16, "device": "cpu", **QUIET, **tiny},
                    over)
    return Trainer(cfg, tmp_path, progress=False)


def points_batch(n=16, seed=0):
    return {"x": sample_mixture("grid25", n, generator=torch.Generator().manual_seed(seed))}


# ----------------------------------------------------------------------------- registry, losses


@pytest.mark.parametrize("name", OBJECTIVES)
def test_registered_in_the_objectives_family_for_images_and_points(name):
    cls = get_model_class(name)
    assert cls.family == "objectives" and set(cls.data_kinds) == {"image", "points"}
    img = ganforge.create(name, data="digits", **TINY)
    assert img.sample(2, seed=0).shape == (2, *img.spec.shape)
    pts = ganforge.create(name, data="grid25", **TINY)
    assert pts.sample(3, seed=0).shape == (3, 2)


@pytest.mark.parametrize("model", ["gan", "dcgan"])
@pytest.mark.parametrize("loss", losses.LOSSES)
def test_gan_and_dcgan_train_with_every_loss(tmp_path, model, loss):
    t = make_trainer(tmp_path, model, data="digits", loss=loss)
    before = [p.detach().clone() for p in t.model.parameters()]
    acc = {}
    t.train_step(acc)
    assert all(torch.isfinite(v[0]) for v in acc.values())
    assert any(not torch.equal(a, b) for a, b in zip(before, t.model.parameters()))


def test_unknown_loss_is_a_one_line_config_error_at_construction(capsys):
    with pytest.raises(ConfigError, match="hinge"):
        ganforge.create("dcgan", loss="hnge")
    assert main(["train", "gan", "--data", "grid25", "--steps", "1", "--set", "loss=wassertein", "--quiet",
                 "--out", "/nonexistent/never/created"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "did you mean wasserstein" in err


def test_loss_formulas_against_direct_computation():
    real, fake = torch.tensor([2.0, -1.0, 0.5]), torch.tensor([-0.3, 1.5, 0.0])
    p_real, p_fake = torch.sigmoid(real), torch.sigmoid(fake)
    bce = -(p_real.log().mean() + (1 - p_fake).log().mean())
    assert losses.d_loss("nonsaturating", real, fake).item() == pytest.approx(bce.item(), rel=1e-5)
    assert losses.g_loss("minimax", fake).item() == pytest.approx((1 - p_fake).log().mean().item(), rel=1e-5)
    assert losses.g_loss("nonsaturating", fake).item() == pytest.approx(-p_fake.log().mean().item(), rel=1e-5)
    assert losses.d_loss("wasserstein", real, fake).item() == pytest.approx((fake.mean() - real.mean()).item())
    assert losses.d_loss("hinge", real, fake).item() == pytest.approx(
        (torch.clamp(1 - real, min=0).mean() + torch.clamp(1 + fake, min=0).mean()).item())


# ----------------------------------------------------------------------------- LSGAN


def test_lsgan_uses_the_abc_coding_from_its_config():
    # reuse_fake off: g_step below must draw its own noise (under seed 4), not reuse d_step's G(z)
    m = ganforge.create("lsgan", data="grid25", a=-1.0, b=1.0, c=0.0, reuse_fake=False, **TINY)
    batch = points_batch()
    torch.manual_seed(3)
    out = m.d_step(batch)
    torch.manual_seed(3)
    fake = m.generate(m.sample_inputs(16))
    d_real, d_fake = m.D(batch["x"]), m.D(fake)
    expected = 0.5 * ((d_real - 1).pow(2).mean() + (d_fake + 1).pow(2).mean())
    assert out["loss"].item() == pytest.approx(expected.item(), rel=1e-5)
    torch.manual_seed(4)
    g = m.g_step(batch)["loss"]
    torch.manual_seed(4)
    assert g.item() == pytest.approx((0.5 * m.D(m.generate(m.sample_inputs(16))).pow(2).mean()).item(), rel=1e-5)
    # The 0-1 coding of the paper's experiments is the default.
    d = get_model_class("lsgan").defaults
    assert (d["a"], d["b"], d["c"]) == (0.0, 1.0, 1.0)


# ----------------------------------------------------------------------------- WGAN


def test_wgan_clips_after_every_critic_step_and_runs_n_critic_per_g_step(tmp_path):
    t = make_trainer(tmp_path, "wgan")
    m, c = t.model, t.cfg["clip"]
    assert t.cfg["n_critic"] == 5 and c == 0.01
    assert all(isinstance(o, torch.optim.RMSprop) for o in t.opts.values())
    assert t.opts["D"].param_groups[0]["lr"] == 5e-5
    calls, max_before, max_after = [], [], []
    after = m.after_phase

    def counting(name, fn):
        def step(batch):
            calls.append(name)
            return fn(batch)
        return step

    def checking(name):
        if name == "D":
            max_before.append(max(p.abs().max().item() for p in m.D.parameters()))
        after(name)
        if name == "D":
            max_after.append(max(p.abs().max().item() for p in m.D.parameters()))

    for ph in t.phases:  # count the calls the engine makes
        ph.step = counting(ph.name, ph.step)
    m.after_phase = checking
    acc = {}
    for _ in range(3):
        t.train_step(acc)
    assert calls == (["D"] * 5 + ["G"]) * 3
    assert len(max_after) == 15 and max(max_after) <= c + 1e-12
    assert max_before[0] > c  # the first update starts from unclipped weights: the clip acts
    assert any(p.abs().max().item() == pytest.approx(c) for p in m.D.parameters())


def test_wgan_critic_is_linear():
    m = ganforge.create("wgan", data="digits", **TINY)
    assert isinstance(m.D.head, nn.Linear)
    assert m.D(torch.randn(4, *m.spec.shape)).shape == (4,)


# ----------------------------------------------------------------------------- WGAN-GP


def test_gradient_penalty_of_a_linear_critic_is_known_analytically():
    w = torch.tensor([0.6, -2.0, 1.5])
    lin = nn.Linear(3, 1)
    with torch.no_grad():
        lin.weight.copy_(w[None])
    D = lambda x: lin(x).squeeze(1)  # noqa: E731
    real, fake = torch.randn(8, 3), torch.randn(8, 3)
    gp = losses.gradient_penalty(D, real, fake)
    expected = (w.norm() - 1) ** 2  # grad_x (w.x + b) = w at every interpolate
    assert gp.item() == pytest.approx(expected.item(), rel=1e-5)
    gp.backward()  # the penalty trains D: d/dw (||w|| - 1)^2 = 2 (||w|| - 1) w / ||w||
    assert torch.allclose(lin.weight.grad[0], 2 * (w.norm() - 1) * w / w.norm(), rtol=1e-5)


def test_gradient_penalty_at_given_interpolates():
    D = lambda x: 0.5 * x.flatten(1).pow(2).sum(1)  # noqa: E731  grad = x
    real, fake = torch.randn(5, 1, 2, 2), torch.randn(5, 1, 2, 2)
    alpha = torch.rand(5)
    x_hat = alpha.view(-1, 1, 1, 1) * real + (1 - alpha.view(-1, 1, 1, 1)) * fake
    expected = ((x_hat.flatten(1).norm(dim=1) - 1) ** 2).mean()
    assert losses.gradient_penalty(D, real, fake, alpha=alpha).item() == pytest.approx(expected.item(), rel=1e-5)


def test_wgan_gp_critic_has_no_batch_norm_and_adds_the_penalty(tmp_path):
    m = ganforge.create("wgan-gp", data="digits", **TINY)
    assert not any(isinstance(l, (nn.BatchNorm1d, nn.BatchNorm2d)) for l in m.D.modules())
    assert m.cfg["lambda_gp"] == 10 and m.cfg["n_critic"] == 5 and list(m.cfg["betas"]) == [0.0, 0.9]
    opt = m.optimizers()["D"]
    assert isinstance(opt, torch.optim.Adam) and opt.param_groups[0]["betas"] == (0.0, 0.9)
    batch = {"x": torch.rand(6, *m.spec.shape) * 2 - 1}
    torch.manual_seed(0)
    out = m.d_step(batch)
    torch.manual_seed(0)
    fake = m.generate(m.sample_inputs(6))
    w = m.D(fake).mean() - m.D(batch["x"]).mean()
    gp = 10 * losses.gradient_penalty(m.D, batch["x"], fake)
    assert out["GP"].item() == pytest.approx(gp.item(), rel=1e-4)
    assert out["loss"].item() == pytest.approx((w + gp).item(), rel=1e-4)


# ----------------------------------------------------------------------------- R1 (any default-step model)


def test_r1_penalty_of_a_quadratic_critic_is_known_analytically():
    x = torch.randn(7, 1, 2, 3).requires_grad_(True)
    d = 0.5 * x.flatten(1).pow(2).sum(1) * 3.0  # grad_x D = 3 x
    r1 = losses.r1_penalty(d, x)
    assert r1.item() == pytest.approx((9 * x.detach().flatten(1).pow(2).sum(1)).mean().item(), rel=1e-5)


@pytest.mark.parametrize("model", ["gan", "lsgan", "dcgan"])
def test_r1_gamma_adds_half_gamma_times_the_penalty_on_real_data(tmp_path, model):
    data, extra = ("digits" if model == "dcgan" else "grid25"), ({"dropout": 0.0} if model == "gan" else {})
    m = make_trainer(tmp_path, model, data=data, r1_gamma=4.0, **extra).model
    x = points_batch()["x"] if model != "dcgan" else torch.rand(6, *m.spec.shape) * 2 - 1
    torch.manual_seed(0)
    out = m.d_step({"x": x})
    xr = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(m.D(xr).sum(), xr)
    expected = 0.5 * 4.0 * grad.flatten(1).pow(2).sum(1).mean()
    assert out["R1"].item() == pytest.approx(expected.item(), rel=1e-4)
    plain = make_trainer(tmp_path / "plain", model, data=data, **extra).model
    plain.load_state_dict(m.state_dict())
    torch.manual_seed(0)
    base = plain.d_step({"x": x})["loss"]
    assert out["loss"].item() == pytest.approx((base + expected).item(), rel=1e-4)
    out["loss"].backward()  # the penalty trains D: its graph is kept
    assert all(p.grad is not None for p in m.D.parameters())


def test_r1_gamma_is_refused_by_models_with_their_own_steps():
    with pytest.raises(ConfigError, match="r1_gamma"):
        ganforge.create("ebgan", data="grid25", r1_gamma=1.0, **TINY)


# ----------------------------------------------------------------------------- penalties under fp16 AMP


def tiny_output_critic():
    """A small MLP critic whose output is scaled by 1e-7: its input-gradients (~1e-8) fall below
    float16's smallest subnormal (6e-8) on the way back through the network, unless scaled."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(8, 32), nn.LeakyReLU(0.2), nn.Linear(32, 32), nn.LeakyReLU(0.2), nn.Linear(32, 1))
    return net, lambda x: net(x).squeeze(1) * 1e-7


def test_gradient_penalty_under_fp16_matches_fp32_with_the_grad_scaler():
    net, D = tiny_output_critic()
    weights = [m.weight for m in net if isinstance(m, nn.Linear)]
    real, fake, alpha = torch.randn(16, 8), torch.randn(16, 8), torch.rand(16)

    def gp(center, fp16, scaler=None):
        net.zero_grad()
        with torch.autocast("cpu", dtype=torch.float16, enabled=fp16):
            value = losses.gradient_penalty(D, real, fake, center, alpha, scaler=scaler)
        # As the engine trains D: backward of the scaled loss, gradients unscaled before the update.
        (scaler.scale(value) if scaler else value).backward()
        s = scaler.get_scale() if scaler else 1.0
        return value.detach(), [w.grad / s for w in weights]

    def rel_err(a, b):
        return max(((x - y).norm() / y.norm()).item() for x, y in zip(a, b))

    # Zero-centred, the penalty is the mean squared norm itself (~1e-16 here).
    exact = gp(0.0, fp16=False)[0]
    assert gp(0.0, fp16=True)[0].item() == 0.0  # the underflow this test is about
    scaled = gp(0.0, fp16=True, scaler=torch.amp.GradScaler("cpu"))[0]
    assert scaled.dtype == torch.float32 and scaled.item() == pytest.approx(exact.item(), rel=1e-2)
    # Centred at 1 (the paper's), the value is ~1 either way; what underflow takes is D's training signal.
    exact_grads = gp(1.0, fp16=False)[1]
    assert rel_err(gp(1.0, fp16=True)[1], exact_grads) == pytest.approx(1.0)  # no signal: zero gradients
    assert rel_err(gp(1.0, fp16=True, scaler=torch.amp.GradScaler("cpu"))[1], exact_grads) < 1e-2
    # Without AMP a scaler, enabled or not, changes nothing.
    assert torch.equal(gp(1.0, fp16=False, scaler=torch.amp.GradScaler("cpu", enabled=False))[0],
                       gp(1.0, fp16=False)[0])


def test_r1_penalty_under_fp16_matches_fp32_with_the_grad_scaler():
    _, D = tiny_output_critic()
    x = torch.randn(16, 8)

    def r1(fp16, scaler=None):
        xr = x.clone().requires_grad_(True)
        with torch.autocast("cpu", dtype=torch.float16, enabled=fp16):
            return losses.r1_penalty(D(xr), xr, scaler)

    exact = r1(False)
    assert r1(True).item() == 0.0  # the underflow this test is about
    assert r1(True, torch.amp.GradScaler("cpu")).item() == pytest.approx(exact.item(), rel=1e-2)
    assert torch.equal(r1(False, torch.amp.GradScaler("cpu", enabled=False)), exact)


@pytest.mark.parametrize("model,over", [("wgan-gp", {}), ("dcgan", {"r1_gamma": 1.0})])
def test_the_engines_grad_scaler_reaches_the_penalties(tmp_path, monkeypatch, model, over):
    t = make_trainer(tmp_path, model, data="digits", amp="bf16", **over)
    assert t.model.grad_scaler is t.scaler
    acc = {}
    t.train_step(acc)  # bf16 needs no scaler (it is disabled): a full step as before
    term = "GP" if model == "wgan-gp" else "R1"
    assert torch.isfinite(acc["D_loss"][0]) and torch.isfinite(acc[term][0])
    seen, input_grad = [], losses._input_grad
    monkeypatch.setattr(losses, "_input_grad", lambda out, x, scaler=None: seen.append(scaler) or
                        input_grad(out, x, scaler))
    t.model.grad_scaler = torch.amp.GradScaler("cpu")
    t.model.d_step(next(t.loader))
    assert seen == [t.model.grad_scaler]


# ----------------------------------------------------------------------------- EBGAN


def test_ebgan_d_loss_on_known_energies():
    e_real, e_fake = torch.tensor([0.2, 0.4]), torch.tensor([0.5, 2.0])
    # mean(D(x)) + mean(max(0, m - D(G(z)))) = 0.3 + (0.5 + 0) / 2
    assert ebgan_d_loss(e_real, e_fake, 1.0).item() == pytest.approx(0.55)
    assert ebgan_d_loss(e_real, e_fake, 0.1).item() == pytest.approx(0.3)  # fakes beyond the margin: no push


def test_ebgan_energy_is_reconstruction_error_and_d_step_uses_the_margin():
    m = ganforge.create("ebgan", data="grid25", margin=0.7, **TINY)
    batch = points_batch()
    energy, code = m.D(batch["x"])
    recon = m.D.decoder(m.D.encoder(batch["x"]))
    assert torch.allclose(energy, (recon - batch["x"]).pow(2).mean(1))
    assert code.shape == (16, m.cfg["code_dim"])
    torch.manual_seed(1)
    out = m.d_step(batch)
    torch.manual_seed(1)
    e_fake, _ = m.D(m.generate(m.sample_inputs(16)))
    assert out["loss"].item() == pytest.approx((energy.mean() + F.relu(0.7 - e_fake).mean()).item(), rel=1e-5)


def test_pulling_away_term():
    orthogonal = torch.eye(4) * torch.tensor([1.0, 3.0, 0.5, 2.0])[:, None]
    assert losses.pulling_away(orthogonal).item() == pytest.approx(0.0, abs=1e-7)
    same = torch.randn(1, 6).repeat(5, 1) * torch.tensor([1.0, 2.0, 0.3, 1.0, 5.0])[:, None]
    assert losses.pulling_away(same).item() == pytest.approx(1.0, rel=1e-5)
    h = torch.randn(7, 5)
    hn = h / h.norm(dim=1, keepdim=True)
    direct = sum((hn[i] @ hn[j]) ** 2 for i in range(7) for j in range(7) if i != j) / (7 * 6)
    assert losses.pulling_away(h).item() == pytest.approx(direct.item(), rel=1e-5)


def test_ebgan_g_loss_adds_weighted_pt():
    m = ganforge.create("ebgan", data="grid25", pt_weight=0.1, **TINY)
    torch.manual_seed(2)
    out = m.g_step(points_batch())
    torch.manual_seed(2)
    energy, code = m.D(m.generate(m.sample_inputs(16)))
    assert out["loss"].item() == pytest.approx((energy.mean() + 0.1 * losses.pulling_away(code)).item(), rel=1e-5)


# ----------------------------------------------------------------------------- BGAN


def test_bgan_generator_loss_is_minimised_on_the_decision_boundary():
    p = torch.linspace(0.01, 0.99, 99)
    logits = torch.logit(p).requires_grad_(True)
    per_sample = [losses.g_loss("boundary", l[None]) for l in logits]
    direct = 0.5 * (p.log() - (1 - p).log()) ** 2
    assert torch.allclose(torch.stack(per_sample).detach(), direct, atol=1e-5)
    assert p[int(torch.stack(per_sample).argmin())].item() == pytest.approx(0.5)
    zero = torch.zeros(1, requires_grad=True)
    (g,) = torch.autograd.grad(losses.g_loss("boundary", zero), zero)
    assert g.item() == 0.0  # a stationary point exactly at D = 1/2
    # ...where the non-saturating loss would still push past the boundary
    (g_ns,) = torch.autograd.grad(losses.g_loss("nonsaturating", zero), zero)
    assert g_ns.item() < 0
    assert get_model_class("bgan").defaults["loss"] == "boundary"


# ----------------------------------------------------------------------------- from the CLI


@pytest.mark.parametrize("name", OBJECTIVES)
def test_trains_from_the_cli_on_points(capsys, tmp_path, name):
    tiny = [f"--set={k}={v}" for k, v in TINY.items()]
    rc = main(["train", name, "--data", "grid25", "--steps", "2", "--batch-size", "8", "--quiet",
               "--out", str(tmp_path / "run"), "--set", "log_every=1", *tiny])
    assert rc == 0, capsys.readouterr().err
    assert (tmp_path / "run" / "generator.safetensors").exists()


@pytest.mark.parametrize("name", OBJECTIVES)
def test_trains_from_the_cli_on_real_mnist(capsys, tmp_path, shared_data, name):
    tiny = [f"--set={k}={v}" for k, v in TINY.items()]
    rc = main(["train", name, "--data", "mnist", "--data-root", str(shared_data), "--steps", "1", "--batch-size",
               "8", "--quiet", "--out", str(tmp_path / "run"), "--set", "log_every=1", "--set", "n_critic=1", *tiny])
    assert rc == 0, capsys.readouterr().err
    row = json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[-1])
    assert row["step"] == 1 and all(math.isfinite(v) for v in row.values())
    assert (tmp_path / "run" / "generator.safetensors").exists()
