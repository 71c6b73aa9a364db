"""BGAN for discrete data (Hjelm et al. 2018, Algorithm 1): the importance weights, G's policy gradient,
exactly discrete samples, and training from the CLI."""
import json
import math

import pytest
import torch
import torch.nn.functional as F

import ganforge
from ganforge.cli import main
from ganforge.errors import ConfigError
from ganforge.models.bgan_discrete import (discrete_g_loss, draw_levels, importance_weights, log_partition,
                                           log_prob, quantize)
from ganforge.registry import get_model_class

TINY = {"z_dim": 8, "g_hidden": 16, "d_hidden": 16, "m_samples": 5}


def on_grid(x, levels):
    """Whether every value of x is one of the ``levels`` evenly spaced values -1, ..., 1."""
    k = (x + 1) * (levels - 1) / 2
    return bool(((k - k.round()).abs() < 1e-5).all() and k.min() > -1e-5 and k.max() < levels - 1 + 1e-5)


# ----------------------------------------------------------------------------- the weights


def test_importance_weights_are_d_over_1_minus_d_normalised_over_the_m_samples_of_each_z():
    torch.manual_seed(0)
    log_w = torch.randn(5, 3) * 2  # D's logits on M = 5 samples of each of N = 3 z's
    d = torch.sigmoid(log_w)
    w = d / (1 - d)  # = exp(logit)
    expected = w / w.sum(0, keepdim=True)
    got = importance_weights(log_w, "z")
    assert torch.allclose(got, expected, rtol=1e-5)
    assert torch.allclose(got, torch.softmax(log_w, dim=0))
    assert torch.allclose(got.sum(0), torch.ones(3))
    # Over the batch: one partition function beta = mean of w over all N*M samples.
    batch = importance_weights(log_w, "batch")
    assert torch.allclose(batch, w / w.mean() / 5, rtol=1e-5)
    assert batch.sum().item() == pytest.approx(3.0, rel=1e-5)
    assert torch.allclose(log_partition(log_w, "z"), w.mean(0).log(), rtol=1e-5)


def test_weights_are_uniform_on_the_decision_boundary():
    # D = 1/2 (logit 0) on every sample: w = 1, so every sample of a z gets the same weight.
    assert torch.allclose(importance_weights(torch.zeros(4, 2)), torch.full((4, 2), 0.25))


# ----------------------------------------------------------------------------- G's gradient


def test_g_gradient_equals_the_direct_policy_gradient_on_a_tiny_bernoulli_case():
    # One z, two pixels with Bernoulli logits l, M = 3 known samples and known D logits.
    l = torch.tensor([0.3, -1.2], requires_grad=True)
    k = torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.0, 0.0]])  # (M, D)
    log_w = torch.tensor([[0.5], [2.0], [-1.0]], requires_grad=True)  # (M, N=1)
    log_g = log_prob(l.expand(3, 1, 2), k.unsqueeze(1), 2)  # (M, 1)
    loss, r = discrete_g_loss(log_w, log_g)
    loss.backward()
    # By hand: log g(k) = sum_d k_d log s(l_d) + (1 - k_d) log(1 - s(l_d)); its gradient is k - s(l).
    s = torch.sigmoid(l.detach())
    direct_log_g = (k * s.log() + (1 - k) * (1 - s).log()).sum(1)
    wt = torch.exp(log_w.detach()[:, 0]) / torch.exp(log_w.detach()[:, 0]).sum()
    assert loss.item() == pytest.approx(-(wt * direct_log_g).sum().item(), rel=1e-6)
    assert torch.allclose(l.grad, -(wt[:, None] * (k - s)).sum(0), atol=1e-6)
    assert torch.allclose(r[:, 0], wt)
    assert log_w.grad is None  # the weights are constants: no gradient reaches D


def test_g_gradient_on_a_tiny_categorical_case_and_the_reinforce_reward():
    l = torch.tensor([[0.1, 0.5, -0.4]], requires_grad=True)  # one pixel, 3 levels
    k = torch.tensor([[2.0], [0.0]])  # M = 2 samples: levels 2 and 0
    log_w = torch.tensor([[1.0], [-0.5]])
    log_g = log_prob(l.expand(2, 1, 3).unsqueeze(1), k.unsqueeze(1), 3)  # (M, N=1)
    loss, _ = discrete_g_loss(log_w, log_g)
    loss.backward()
    p = torch.softmax(l.detach()[0], 0)
    wt = torch.softmax(log_w[:, 0], 0)
    onehot = F.one_hot(k[:, 0].long(), 3).float()
    assert torch.allclose(l.grad[0], -(wt[:, None] * (onehot - p)).sum(0), atol=1e-6)
    # REINFORCE-BGAN: reward log w - log beta^, beta^ the mean of w over the z's samples.
    l.grad = None
    loss, r = discrete_g_loss(log_w, log_prob(l.expand(2, 1, 3).unsqueeze(1), k.unsqueeze(1), 3), "reinforce")
    expected_r = log_w[:, 0] - log_w[:, 0].exp().mean().log()
    assert torch.allclose(r[:, 0], expected_r, atol=1e-6)
    loss.backward()
    assert torch.allclose(l.grad[0], -(expected_r[:, None] * (onehot - p)).sum(0), atol=1e-6)


def test_g_step_is_minus_sum_of_normalised_weights_times_log_g_of_the_models_own_samples():
    m = ganforge.create("bgan-discrete", **TINY)
    n, M = 4, TINY["m_samples"]
    batch = {"x": torch.zeros(n, 1, 28, 28)}
    torch.manual_seed(7)
    out = m.g_step(batch)
    got = torch.autograd.grad(out["loss"], list(m.G.parameters()))
    # The same draws, computed directly: z, then the uniform noise of the M samples of each z.
    torch.manual_seed(7)
    z = torch.randn(n, TINY["z_dim"])
    u = torch.rand(n, M, 784).transpose(0, 1)
    logits = m.G(z)
    k = (u < torch.sigmoid(logits)).float()  # (M, n, 784)
    with torch.no_grad():
        log_w = m.D(2 * k.reshape(M * n, 784) - 1).view(M, n)
    wt = torch.exp(log_w) / torch.exp(log_w).sum(0, keepdim=True)
    p = torch.sigmoid(logits)
    log_g = (k * p.log() + (1 - k) * (1 - p).log()).sum(-1)
    direct = -(wt * log_g).sum(0).mean()
    assert out["loss"].item() == pytest.approx(direct.item(), rel=1e-5)
    want = torch.autograd.grad(direct, list(m.G.parameters()))
    for a, b in zip(got, want):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-6)
    assert 1.0 <= out["ESS"].item() <= M


# ----------------------------------------------------------------------------- discrete samples


@pytest.mark.parametrize("levels", [2, 4])
def test_samples_are_exactly_discrete_and_reproducible(levels):
    m = ganforge.create("bgan-discrete", levels=levels, **TINY)
    x = m.sample(64, seed=0)
    assert x.shape == (64, 1, 28, 28)
    assert on_grid(x, levels) and len(x.unique()) == levels  # all levels used by an untrained G
    assert torch.equal(x, m.sample(64, seed=0)) and not torch.equal(x, m.sample(64, seed=1))
    _, k, images = m.draw(3)
    assert k.shape == (TINY["m_samples"], 3, 784) and images.shape == (3 * TINY["m_samples"], 1, 28, 28)
    assert on_grid(images, levels)


def test_draws_follow_g():
    # Inversion sampling with uniform noise: frequencies match sigmoid / softmax of the logits.
    torch.manual_seed(0)
    u = torch.rand(20000, 2)
    k = draw_levels(torch.tensor([[-1.0, 2.0]]).expand(20000, 2), u, 2)
    assert torch.allclose(k.mean(0), torch.sigmoid(torch.tensor([-1.0, 2.0])), atol=0.01)
    logits = torch.tensor([0.0, 1.0, -1.0, 0.5])
    k = draw_levels(logits.expand(20000, 1, 4), u[:, :1], 4)
    freq = torch.bincount(k.long().flatten(), minlength=4).float() / 20000
    assert torch.allclose(freq, torch.softmax(logits, 0), atol=0.01)


def test_real_images_are_quantised_like_the_samples_before_d_sees_them():
    pixels = torch.tensor([0, 127, 128, 255], dtype=torch.uint8)
    x = pixels.float() / 127.5 - 1  # the engine's scaling to [-1, 1]
    assert quantize(x, 2).tolist() == [0, 0, 1, 1]  # binarized at 1/2
    assert quantize(x, 4).tolist() == [0, 1, 2, 3]
    torch.manual_seed(0)
    many = quantize(x.expand(20000, 4), 2, "sample")
    assert torch.allclose(many.mean(0), pixels.float() / 255, atol=0.01)  # unbiased stochastic binarization
    m = ganforge.create("bgan-discrete", **TINY)
    seen = []
    m.D.register_forward_pre_hook(lambda mod, args: seen.append(args[0]))
    m.d_step({"x": torch.rand(4, 1, 28, 28) * 2 - 1})
    real, fake = seen
    assert set(real.unique().tolist()) <= {-1.0, 1.0} and set(fake.unique().tolist()) <= {-1.0, 1.0}
    assert len(real) == 4 and len(fake) == 4 * TINY["m_samples"]  # D sees all M samples of each z


def test_config_is_checked():
    for bad in ({"levels": 1}, {"estimator": "reinforcee"}, {"normalise": "sample"}, {"quantize": "floor"},
                {"m_samples": 0}):
        with pytest.raises(ConfigError):
            ganforge.create("bgan-discrete", **{**TINY, **bad})
    with pytest.raises(ConfigError, match="image"):
        ganforge.create("bgan-discrete", data="grid25")
    cls = get_model_class("bgan-discrete")
    assert cls.family == "objectives" and cls.year == 2018 and cls.defaults["levels"] == 2


# ----------------------------------------------------------------------------- from the CLI


@pytest.mark.parametrize("extra", [[], ["--set", "levels=3", "--set", "estimator=reinforce", "--set",
                                        "normalise=batch", "--set", "quantize=sample"]])
def test_trains_from_the_cli_on_digits(capsys, tmp_path, extra):
    tiny = [f"--set={k}={v}" for k, v in TINY.items()]
    before = ganforge.create("bgan-discrete", **TINY)
    rc = main(["train", "bgan-discrete", "--data", "digits", "--steps", "3", "--batch-size", "8", "--quiet",
               "--out", str(tmp_path / "run"), "--set", "log_every=1", "--set", "sample_every=0", *tiny, *extra])
    assert rc == 0, capsys.readouterr().err
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3]
    assert all(math.isfinite(v) for r in rows for v in r.values())
    assert {"D_loss", "G_loss", "D(x)", "D(G(z))", "ESS"} <= set(rows[-1])
    run = ganforge.load_run(tmp_path / "run")
    x = run.sample(16, seed=0)
    assert on_grid(x, run.cfg["levels"])
    assert any(not torch.equal(a, b) for a, b in zip(before.G.parameters(), run.G.parameters()))
    assert main(["sample", str(tmp_path / "run"), "--n", "8", "--out", str(tmp_path / "s.png")]) == 0


def test_trains_from_the_cli_on_real_mnist(capsys, tmp_path, shared_data):
    tiny = [f"--set={k}={v}" for k, v in TINY.items()]
    rc = main(["train", "bgan-discrete", "--data", "mnist[:8000]", "--data-root", str(shared_data), "--steps", "2",
               "--batch-size", "8", "--quiet", "--out", str(tmp_path / "run"), "--set", "log_every=1", *tiny])
    assert rc == 0, capsys.readouterr().err
    assert (tmp_path / "run" / "generator.safetensors").exists()


def test_bad_option_is_a_one_line_cli_error(capsys, tmp_path):
    rc = main(["train", "bgan-discrete", "--steps", "1", "--quiet", "--set", "estimator=policy",
               "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "importance, reinforce" in err
