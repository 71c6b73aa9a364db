"""VAE-GAN (Larsen et al. 2016) and its baseline, the VAE (Kingma & Welling 2014): the reconstruction
error in D's feature space, the reparameterised encoder, which network each of the three losses
moves, the VAE's KL and pixel likelihood by hand, and the CLI (train, encode, sample --input)."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import ganforge
from ganforge import losses
from ganforge.cli import main
from ganforge.data import load_data

TINY = {"g_width": 8, "e_width": 8, "d_width": 8, "z_dim": 6}


def vaegan(**over):
    torch.manual_seed(0)
    return ganforge.create("vaegan", data="digits", **{**TINY, **over})


def digits(n=12):
    return load_data("digits").x[:n].float() / 127.5 - 1


def kl_by_hand(mu, logvar):
    q = torch.distributions.Normal(mu, (0.5 * logvar).exp())
    return torch.distributions.kl_divergence(q, torch.distributions.Normal(0.0, 1.0)).sum(1).mean()


def test_reconstruction_error_is_measured_in_ds_hidden_features():
    m = vaegan().eval()  # batch norm on running statistics: each image's features are its own
    x = digits()
    x_tilde = x.flip(0)  # other digits: a large pixel error
    feats = m.D.features  # the last conv block: llike_layer's default
    by_hand = 0.5 * (feats(x_tilde) - feats(x)).pow(2).sum(1).mean()
    assert torch.allclose(m.llike(x, x_tilde), by_hand, rtol=1e-5)
    # The first block, when asked for: D's first conv and its activation.
    m1 = vaegan(llike_layer=1).eval()
    first = lambda v: m1.D.body[:2](v).flatten(1)  # noqa: E731
    assert torch.allclose(m1.llike(x, x_tilde), 0.5 * (first(x_tilde) - first(x)).pow(2).sum(1).mean(), rtol=1e-5)
    # The similarity is D's: other D weights, another loss for the same images ...
    before = m.llike(x, x_tilde).item()
    with torch.no_grad():
        m.D.body[2].weight.mul_(2.0)
    assert abs(m.llike(x, x_tilde).item() - before) > 0.1 * before
    # ... and a D whose first layer sees nothing of the pixels finds nothing to reconstruct.
    with torch.no_grad():
        m.D.body[0].weight.zero_()
    assert m.llike(x, x_tilde).item() == pytest.approx(0.0, abs=1e-6)
    assert float((x_tilde - x).pow(2).sum(dim=(1, 2, 3)).mean()) > 10


def test_the_encoder_is_reparameterised_and_encodes_to_the_mean():
    m = vaegan()
    x = digits(8)
    seen = []
    m.E.register_forward_hook(lambda mod, inp, out: seen.append(out))
    torch.manual_seed(3)
    z, mu, logvar = m.posterior_sample(x)
    assert seen and seen[0][0] is mu and seen[0][1] is logvar
    torch.manual_seed(3)
    eps = torch.randn(len(x), mu.shape[1])
    assert torch.allclose(z, mu + (0.5 * logvar).exp() * eps)
    # The gradient of anything z feeds reaches both heads: dz/dmu = 1, dz/dlogvar = exp(logvar / 2) eps / 2.
    g_mu, g_logvar = torch.autograd.grad(z.sum(), [mu, logvar])
    assert torch.allclose(g_mu, torch.ones_like(mu))
    assert torch.allclose(g_logvar, 0.5 * (0.5 * logvar).exp() * eps)
    # encode() is deterministic: the posterior's mean, in eval mode.
    c1, c2 = m.encode(x), m.encode(x)
    assert torch.equal(c1, c2) and c1.shape == (8, TINY["z_dim"])
    with torch.no_grad():
        assert torch.allclose(c1, m.eval().E(x)[0], atol=1e-6)
    m.train()
    assert not torch.allclose(m.posterior_sample(x)[0], m.posterior_sample(x)[0])


def _grads(loss, net):
    return torch.autograd.grad(loss, list(net.parameters()), retain_graph=True, allow_unused=True)


def _norm(grads):
    return float(torch.cat([g.flatten() for g in grads]).norm())


def _dist(a, b):
    return _norm([u - v for u, v in zip(a, b)])


def test_each_of_the_three_losses_moves_only_the_networks_the_paper_says():
    gamma = 0.3
    m = vaegan(gamma=gamma)
    with torch.no_grad():
        m.D.head.weight.mul_(30)  # a D that tells images apart: L_GAN's gradients as large as the others
    x = digits()
    n, k = len(x), TINY["z_dim"]
    # Who each phase updates: E and G from one pass, D alone.
    assert {ph.name: ph.optimizers for ph in m.phases()} == {"EG": ("E", "G"), "D": ("D",)}
    opts = m.optimizers()
    for name in ("E", "G", "D"):
        assert {id(p) for g in opts[name].param_groups for p in g["params"]} == \
            {id(p) for p in getattr(m, name).parameters()}

    torch.manual_seed(1)
    out = m.eg_step({"x": x})
    got_e, got_g = _grads(out["loss"], m.E), _grads(out["loss"], m.G)

    # The paper's losses by hand, on the same noise (eps, then the prior's z) and the same batches
    # (batch norm in training mode): x~ = G(z) and x with one pass of D; the fakes in one pass of G, of D.
    torch.manual_seed(1)
    mu, logvar = m.E(x)
    z = mu + (0.5 * logvar).exp() * torch.randn(n, k)
    z_p = torch.randn(n, k)
    l_prior = kl_by_hand(mu, logvar)
    f = m.D.features(torch.cat([m.G(z), x]))
    l_llike = 0.5 * (f[:n] - f[n:]).pow(2).sum(1).mean()
    ones = torch.ones(n)
    d_fake = m.D(m.G(torch.cat([z, z_p])))  # z not cut off from E here: what E must not see
    l_gan = F.binary_cross_entropy_with_logits(d_fake[:n], ones) + F.binary_cross_entropy_with_logits(d_fake[n:], ones)
    for key, v in (("L_prior", l_prior), ("L_llike", l_llike), ("L_GAN_G", l_gan)):
        assert out[key].item() == pytest.approx(v.item(), rel=1e-4), key

    # E: L_prior + L_llike, not moved by L_GAN; G (Dec): gamma * L_llike + L_GAN (its -L_GAN). Each
    # check is against the size of the term it rules out, so that it could fail.
    err_e = _dist(got_e, _grads(l_prior + l_llike, m.E))
    assert err_e < 1e-3 * _norm(_grads(l_gan, m.E))
    assert err_e < 1e-3 * _norm(_grads((1 - gamma) * l_llike, m.E))
    assert _dist(got_g, _grads(gamma * l_llike + l_gan, m.G)) < 1e-3 * _norm(_grads((1 - gamma) * l_llike, m.G))

    # D: L_GAN on x and on both kinds of fake, those the EG pass made; nothing reaches E or G, and
    # L_llike plays no part (the D loss by hand has none).
    fakes = m.G(torch.cat([z, z_p])).detach()
    out_d = m.d_step({"x": x})
    d_real, d_fakes = m.D(x), m.D(fakes)
    zeros = torch.zeros(n)
    by_hand = (2 * F.binary_cross_entropy_with_logits(d_real, ones)
               + F.binary_cross_entropy_with_logits(d_fakes[:n], zeros)
               + F.binary_cross_entropy_with_logits(d_fakes[n:], zeros))
    assert out_d["loss"].item() == pytest.approx(by_hand.item(), rel=1e-5)
    assert _dist(_grads(out_d["loss"], m.D), _grads(by_hand, m.D)) < 1e-4 * _norm(_grads(by_hand, m.D))
    assert all(g is None for g in _grads(out_d["loss"], m.E) + _grads(out_d["loss"], m.G))


def test_kl_term_matches_the_closed_form():
    torch.manual_seed(0)
    mu, logvar = torch.randn(50, 7) * 2, torch.randn(50, 7)
    assert float(losses.gaussian_kl(mu, logvar)) == pytest.approx(float(kl_by_hand(mu, logvar)), rel=1e-5)
    assert float(losses.gaussian_kl(torch.zeros(4, 3), torch.zeros(4, 3))) == 0.0  # q = the prior
    # One dimension: KL(N(m, s^2) || N(0, 1)) = (s^2 + m^2 - 1) / 2 - log s.
    m_, s = 1.5, 0.5
    assert float(losses.gaussian_kl(torch.tensor([[m_]]), torch.tensor([[2 * np.log(s)]]))) == \
        pytest.approx((s * s + m_ * m_ - 1) / 2 - np.log(s), rel=1e-6)


@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
def test_vae_minimises_pixel_likelihood_plus_kl(likelihood):
    torch.manual_seed(0)
    m = ganforge.create("vae", data="digits", likelihood=likelihood, recon_sigma=0.2,
                        **{k: v for k, v in TINY.items() if k != "d_width"}).eval()
    assert not hasattr(m, "D") and [ph.optimizers for ph in m.phases()] == [("VAE",)]
    x = digits()
    torch.manual_seed(2)
    out = m.vae_step({"x": x})
    torch.manual_seed(2)
    mu, logvar = m.E(x)
    x_tilde = m.G(mu + (0.5 * logvar).exp() * torch.randn_like(mu))
    if likelihood == "bernoulli":  # grey levels in [0, 1] as probabilities, G's output read as p
        p, t = (x_tilde + 1) / 2, (x + 1) / 2
        nll = -(t * p.log() + (1 - t) * (1 - p).log()).sum(dim=(1, 2, 3)).mean()
    else:
        nll = (0.5 * ((x_tilde - x) / 0.2).pow(2)).sum(dim=(1, 2, 3)).mean()
    assert out["recon"].item() == pytest.approx(nll.item(), rel=1e-4)
    assert out["KL"].item() == pytest.approx(kl_by_hand(mu, logvar).item(), rel=1e-5)
    assert out["loss"].item() == pytest.approx((nll + kl_by_hand(mu, logvar)).item(), rel=1e-4)


def _write_digits(folder, n=3):
    from PIL import Image

    folder.mkdir()
    for i, a in enumerate(load_data("digits").x[:n, 0].numpy()):
        Image.fromarray(a).save(folder / f"d{i}.png")
    return folder


@pytest.mark.parametrize("model", ["vaegan", "vae"])
def test_cli_trains_encodes_and_reconstructs(capsys, tmp_path, model):
    run = tmp_path / model
    sets = [f"{k}={v}" for k, v in TINY.items() if model == "vaegan" or k != "d_width"]
    argv = ["train", model, "--data", "digits", "--steps", "3", "--batch-size", "16", "--out", run, "--quiet",
            "--set", "sample_every=0", "--set", "log_every=1"]
    for s in sets:
        argv += ["--set", s]
    assert main([str(a) for a in argv]) == 0
    metrics = (run / "metrics.jsonl").read_text()
    assert ("L_llike" in metrics and "D(G(E(x)))" in metrics) if model == "vaegan" else "KL" in metrics
    images = _write_digits(tmp_path / "in")
    assert main(["encode", str(run), "--input", str(images), "--out", str(tmp_path / "codes.npz")]) == 0
    with np.load(tmp_path / "codes.npz") as z:
        codes, files = z["codes"], list(z["files"])
    assert codes.shape == (3, TINY["z_dim"]) and files == ["d0.png", "d1.png", "d2.png"]
    model_ = ganforge.load(run)
    assert np.allclose(codes, model_.encode(load_data("digits").x[:3]).numpy(), atol=1e-5)  # the mean: no noise
    assert main(["sample", str(run), "--input", str(images), "--out", str(tmp_path / "rec")]) == 0
    assert sorted(p.name for p in (tmp_path / "rec").iterdir()) == ["d0.png", "d1.png", "d2.png"]
    assert "reconstructed 3 images as G(E(x))" in capsys.readouterr().out


@pytest.mark.parametrize("model,setting,needle", [
    ("vaegan", "gamma=0", "gamma"),
    ("vaegan", "gamma=-1e-3", "gamma"),
    ("vaegan", "llike_layer=3", "llike_layer"),
    ("vaegan", "loss=hinj", "hinge"),
    ("vaegan", "feature_matching=true", "feature_matching"),
    ("vae", "likelihood=poisson", "likelihood"),
    ("vae", "likelihood=bernouli", "bernoulli"),
    ("vae", "recon_sigma=0", "recon_sigma"),
    ("vae", "z_dim=0", "z_dim"),
])
def test_bad_settings_are_one_line(capsys, tmp_path, model, setting, needle):
    code = main(["train", model, "--steps", "1", "--out", str(tmp_path / "o"), "--quiet", "--set", setting])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("ganforge: error:") and needle in lines[0], err
