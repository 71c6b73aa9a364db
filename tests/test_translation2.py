"""CoGAN, UNIT, DualGAN, DiscoGAN: each paper's defining mechanism, and a short run from the CLI
measured by `ganforge eval` (label preservation both ways; CoGAN: pair agreement)."""
import itertools

import pytest
import torch

import ganforge
from ganforge.cli import main
from ganforge.data import load_data
from ganforge.errors import ConfigError

from conftest import make_trainer, random_pair

TINY = {"g_width": 4, "d_width": 4}




def grads(net):
    return {k: (p.grad.clone() if p.grad is not None else torch.zeros_like(p)) for k, p in net.named_parameters()}


# ---------------------------------------------------------------------------- CoGAN
@pytest.mark.parametrize("part, arch", [("G", "dcgan"), ("D", "dcgan"), ("G", "paper")])
def test_cogan_shares_g_first_and_d_last_layers(part, arch):
    torch.manual_seed(0)
    shared = ganforge.create("cogan", "digits-negative-unpaired", z_dim=8, g_arch=arch, **TINY)
    apart = ganforge.create("cogan", "digits-negative-unpaired", z_dim=8, g_arch=arch, share=False, **TINY)
    net, other = getattr(shared, part), getattr(apart, part)
    assert net.trunk_of("A") is net.trunk_of("B")  # one module: the same parameters
    assert other.trunk_of("A") is not other.trunk_of("B")
    n_trunk = sum(p.numel() for p in net.trunk.parameters())
    assert sum(p.numel() for p in other.parameters()) == sum(p.numel() for p in net.parameters()) + n_trunk
    # the shared layers learn from both domains' losses; each domain's own layers from its own only
    own = "head" if part == "G" else "tail"
    for model in (shared, apart):
        x = random_pair(4)
        out = {}
        for d in "AB":
            model.zero_grad()
            if part == "G":
                fa, fb = model.G(torch.randn(4, 8, generator=torch.Generator().manual_seed(1)))
                (fa if d == "A" else fb).pow(2).mean().backward()
            else:
                model.D(x[d], d).mean().backward()
            out[d] = grads(getattr(model, part))
        for d, e in ("AB", "BA"):
            assert all(out[d][k].abs().sum() > 0 for k in out[d] if k.startswith(f"{own}_{d}.") and "weight" in k)
            assert all(out[d][k].abs().sum() == 0 for k in out[d] if k.startswith(f"{own}_{e}."))
        trunk_keys = [k for k in out["A"] if k.startswith("trunk.") and "weight" in k]
        if model is shared:
            assert trunk_keys and all(out["A"][k].abs().sum() > 0 and out["B"][k].abs().sum() > 0 for k in trunk_keys)
        else:
            assert all(out["B"][k].abs().sum() == 0 for k in out["B"] if k.startswith("trunk_A."))


def test_cogan_trains_and_samples_pairs_from_one_z(tmp_path):
    t = make_trainer("cogan", "digits-negative-unpaired", tmp_path, z_dim=8, batch_size=8, steps=2, **TINY)
    t.fit()
    m = t.model
    assert not any(k.startswith("G.trunk_") for k in m.state_dict())  # shared: held once
    a, b = m.sample_pair(5, seed=3)
    assert a.shape == b.shape == (5, 1, 28, 28)
    side = m.sample(5, seed=3)
    assert side.shape == (5, 1, 28, 56) and torch.equal(side, torch.cat([a, b], 3))
    assert not torch.equal(m.sample(5, seed=4), side)
    with pytest.raises(ConfigError, match="share must be"):
        ganforge.create("cogan", "digits-negative-unpaired", share="yes", **TINY)


@pytest.mark.parametrize("data", ["digits-negative-unpaired", "digits-edges-unpaired", "digits-color-unpaired"])
def test_pair_agreement_scores_related_pairs_high_and_unrelated_low(data, monkeypatch):
    from ganforge.data.translation import color, color_indices, edges

    m = ganforge.create("cogan", data, z_dim=8, **TINY)
    a = load_data("digits:test").x[:200]
    b = 255 - a if "negative" in data else edges(a) if "edges" in data else color(a, *color_indices(range(200)))
    f = (lambda x: x.float() / 127.5 - 1)  # noqa: E731
    monkeypatch.setattr(m, "sample_pair", lambda n, seed, use_ema: (f(a), f(b)))
    good = m.joint_metrics(n=200)
    assert good["pair_agreement"] > 0.9 and good["pixel_agreement"] > 0.95 and good["classes_A"] == 10
    perm = torch.randperm(200, generator=torch.Generator().manual_seed(0))
    monkeypatch.setattr(m, "sample_pair", lambda n, seed, use_ema: (f(a), f(b[perm])))
    bad = m.joint_metrics(n=200)
    assert bad["pair_agreement"] < 0.3 and bad["pixel_agreement"] < good["pixel_agreement"] - 0.05


def test_cogan_eval_reports_pair_agreement(tmp_path):
    run = tmp_path / "cg"
    assert main(["train", "cogan", "--data", "digits-negative-unpaired", "--steps", "1", "--out", str(run), "--quiet",
                 "--set", "z_dim=8", "--set", "g_width=4", "--set", "d_width=4", "--set", "sample_every=0"]) == 0
    from ganforge.run_eval import evaluate_run

    rec = evaluate_run(run, n=50, progress=False)
    assert {"pair_agreement", "pixel_agreement", "classes_A"} <= set(rec) and rec["n"] == 50
    assert main(["sample", str(run), "--n", "4", "--out", str(tmp_path / "pairs.png")]) == 0
    with pytest.raises(ConfigError, match="baseline real"):
        evaluate_run(run, n=50, baseline="real", progress=False)


def test_cogan_paper_g_shares_all_but_its_last_layer():
    """g_arch=paper: the paper's deeper digit G, whose heads are one full-size transposed conv each."""
    m = ganforge.create("cogan", "digits-edges-unpaired", z_dim=8, g_arch="paper", **TINY)
    convs = [l for l in m.G.trunk if isinstance(l, torch.nn.ConvTranspose2d)]
    assert [(c.in_channels, c.out_channels, c.stride[0]) for c in convs] == [(8, 32, 1), (32, 16, 2), (16, 8, 2),
                                                                              (8, 4, 2)]
    sizes = []
    hook = m.G.trunk.register_forward_hook(lambda mod, i, o: sizes.append(tuple(o.shape[1:])))
    a, b = m.G(torch.randn(3, 8))
    hook.remove()
    assert sizes == [(4, 25, 25)] and a.shape == b.shape == (3, 1, 28, 28)  # shared up to 25x25
    for head in (m.G.head_A, m.G.head_B):
        layers = [l for l in head if any(True for _ in l.parameters())]
        assert len(layers) == 1 and layers[0].stride == (1, 1) and layers[0].kernel_size == (6, 6)
    # other sizes: the head's kernel makes up what three stride-2 layers leave
    assert ganforge.create("cogan", "digits-edges-unpaired", z_dim=8, g_arch="paper", image_size=32,
                           **TINY).G(torch.randn(2, 8))[1].shape == (2, 1, 32, 32)
    with pytest.raises(ConfigError, match="g_arch"):
        ganforge.create("cogan", "digits-edges-unpaired", g_arch="deep", **TINY)


def test_cogan_d_hidden_layer_and_runs_from_before_it(tmp_path):
    from ganforge.training.engine import load_run

    def linears(m):
        return [(l.in_features, l.out_features) for l in m.D.trunk if isinstance(l, torch.nn.Linear)]

    s = 28 // 4
    m = ganforge.create("cogan", "digits-negative-unpaired", z_dim=8, d_hidden=16, **TINY)
    assert linears(m) == [(8 * s * s, 16), (16, 1)]  # the paper's hidden layer, shared with the trunk
    assert linears(ganforge.create("cogan", "digits-negative-unpaired", z_dim=8, d_hidden=0, **TINY)) == [(8 * s * s, 1)]
    with pytest.raises(ConfigError, match="d_hidden"):
        ganforge.create("cogan", "digits-negative-unpaired", d_hidden=-1, **TINY)
    # a run recorded before d_hidden existed keeps its D without the hidden layer
    run = tmp_path / "old"
    assert main(["train", "cogan", "--data", "digits-negative-unpaired", "--steps", "1", "--out", str(run), "--quiet",
                 "--set", "z_dim=8", "--set", "g_width=4", "--set", "d_width=4", "--set", "d_hidden=0",
                 "--set", "sample_every=0"]) == 0
    cfg = (run / "config.yaml").read_text()
    (run / "config.yaml").write_text("\n".join(x for x in cfg.splitlines() if not x.startswith("d_hidden")) + "\n")
    old = load_run(run)
    old = old[0] if isinstance(old, tuple) else old
    assert old.cfg["d_hidden"] == 0 and linears(old) == [(8 * s * s, 1)]

# ---------------------------------------------------------------------------- UNIT
def test_unit_encoders_and_generators_share_their_high_level_layers():
    m = ganforge.create("unit", "digits-edges-unpaired", **TINY)
    assert m.E_A.shared is m.E_B.shared and m.G_A.shared is m.G_B.shared
    assert m.E_A.front is not m.E_B.front and m.G_A.back is not m.G_B.back
    ids = {id(p) for p in m.E_A.shared.parameters()}
    assert ids and ids <= {id(p) for p in m.E_B.parameters()}
    opt = m.optimizers()["G"]
    params = [p for g in opt.param_groups for p in g["params"]]
    assert len(params) == len({id(p) for p in params})  # a shared layer is stepped once, not twice
    apart = ganforge.create("unit", "digits-edges-unpaired", share=False, **TINY)
    assert apart.E_A.shared is not apart.E_B.shared and apart.G_A.shared is not apart.G_B.shared
    # A -> B is G_B(E_A(a)), through the shared code
    x = random_pair(2)["A"]
    with torch.no_grad():
        m.eval()
        assert torch.allclose(m.translate(x, "AtoB"), m.G_B(m.E_A(x)))
        assert torch.allclose(m.translate(x, "BtoA"), m.G_A(m.E_B(x)))


def test_unit_kl_and_cycle_terms_by_hand(monkeypatch):
    torch.manual_seed(0)
    m = ganforge.create("unit", "digits-edges-unpaired", **TINY)
    monkeypatch.setattr(m, "randn", lambda n, *shape, **kw: torch.zeros(n, *shape))  # z = mu: replayable
    x = random_pair(3, seed=1)
    t = m.g_terms(x)
    a, b = x["A"], x["B"]
    with torch.no_grad():
        mu_a, mu_b = m.E_A(a), m.E_B(b)
        assert torch.allclose(t["KL_A"], 0.5 * mu_a.pow(2).mean(), rtol=1e-5)  # KL(N(mu, I) || N(0, I)) per dim
        assert torch.allclose(t["KL_B"], 0.5 * mu_b.pow(2).mean(), rtol=1e-5)
        assert torch.allclose(t["recon_A"], (m.G_A(mu_a) - a).abs().mean(), rtol=1e-5)
        mu_ab = m.E_B(m.G_B(mu_a))
        assert torch.allclose(t["KL_cyc_A"], 0.5 * mu_ab.pow(2).mean(), rtol=1e-5)
        assert torch.allclose(t["cycle_A"], (m.G_A(mu_ab) - a).abs().mean(), rtol=1e-5)
        assert torch.allclose(t["cycle_B"], (m.G_B(m.E_A(m.G_A(mu_b))) - b).abs().mean(), rtol=1e-5)
    base = m.g_loss(t)
    m.cfg["lambda_kl"] += 1.0
    kl = t["KL_A"] + t["KL_B"] + t["KL_cyc_A"] + t["KL_cyc_B"]
    assert torch.allclose(m.g_loss(t) - base, kl, rtol=1e-4)
    m.cfg["lambda_cyc"] += 1.0
    assert torch.allclose(m.g_loss(t) - base, kl + t["cycle_A"] + t["cycle_B"], rtol=1e-4)
    with pytest.raises(ConfigError, match="EMA"):
        ganforge.create("unit", "digits-edges-unpaired", ema=0.999, **TINY)


# ---------------------------------------------------------------------------- DualGAN
def test_dualgan_clips_its_critics_and_uses_rmsprop(tmp_path):
    t = make_trainer("dualgan", "digits-edges-unpaired", tmp_path, steps=1, **TINY)
    m = t.model
    crit = lambda: list(itertools.chain(m.D_A.parameters(), m.D_B.parameters()))  # noqa: E731
    assert max(float(p.detach().abs().max()) for p in crit()) > m.sized("clip")  # initialised beyond c
    assert all(isinstance(o, torch.optim.RMSprop) for o in m.optimizers().values())
    (d, g) = m.phases()
    assert d.name == "D" and d.repeats == 2 and d.fresh and g.name == "G"
    t.fit()
    assert max(float(p.detach().abs().max()) for p in crit()) <= m.sized("clip") * (1 + 1e-6)
    assert max(float(p.detach().abs().max()) for p in m.G_AB.parameters()) > m.sized("clip")  # G is not clipped
    with pytest.raises(ConfigError, match="Wasserstein"):
        ganforge.create("dualgan", "digits-edges-unpaired", loss="hinge", **TINY)


def test_dualgan_loss_weights_the_two_reconstructions():
    torch.manual_seed(0)
    m = ganforge.create("dualgan", "digits-edges-unpaired", dropout=0.0, **TINY)
    x = random_pair(2)
    m.eval()  # batch norm on running statistics: the same outputs on every call
    with torch.no_grad():
        t = m.g_terms(x)
        assert torch.allclose(t["recon_A"], (m.G_BA(m.G_AB(x["A"])) - x["A"]).abs().mean())
        assert torch.allclose(t["G_AB_gan"], -m.D_B(m.G_AB(x["A"])).mean())
        loss = m.g_step(x)["loss"]
    want = t["G_AB_gan"] + t["G_BA_gan"] + 20 * t["recon_A"] + 20 * t["recon_B"]  # 28x28: lambda 20
    assert torch.allclose(loss, want, rtol=1e-5)


def test_dualgan_unset_weights_follow_the_image_size():
    small = ganforge.create("dualgan", "digits-edges-unpaired", **TINY)  # 28x28
    assert [small.sized(k) for k in ("lambda_A", "lambda_B", "clip", "lr")] == [20.0, 20.0, 0.1, 1e-4]
    assert all(o.param_groups[0]["lr"] == 1e-4 for o in small.optimizers().values())
    big = ganforge.create("dualgan", "digits-edges-unpaired", image_size=64, **TINY)
    assert [big.sized(k) for k in ("lambda_A", "lambda_B", "clip", "lr")] == [500.0, 500.0, 0.01, 5e-5]  # the paper's
    set_ = ganforge.create("dualgan", "digits-edges-unpaired", lambda_A=7.0, clip=0.05, lr=3e-4, **TINY)
    assert (set_.sized("lambda_A"), set_.sized("clip")) == (7.0, 0.05)  # a set value wins at any size
    assert all(o.param_groups[0]["lr"] == 3e-4 for o in set_.optimizers().values())


# ---------------------------------------------------------------------------- DiscoGAN
def test_discogan_two_reconstruction_terms_and_no_skips():
    torch.manual_seed(0)
    m = ganforge.create("discogan", "digits-edges-unpaired", **TINY)
    assert not m.G_AB.skips and not m.G_BA.skips  # encoder-decoders, no U-Net shortcut
    m.eval()
    x = random_pair(3)
    with torch.no_grad():
        t = m.g_terms(x)
        assert torch.allclose(t["CONST_A"], (m.G_BA(m.G_AB(x["A"])) - x["A"]).pow(2).mean())
        assert torch.allclose(t["CONST_B"], (m.G_AB(m.G_BA(x["B"])) - x["B"]).pow(2).mean())
        assert t["CONST_A"] > 0 and t["CONST_B"] > 0
    # both reconstruction terms train both generators; with lambda_recon=0 only the GAN terms remain
    m.train()
    for lam in (1.0, 0.0):
        m.cfg["lambda_recon"] = lam
        m.zero_grad()
        torch.manual_seed(0)
        out = m.g_step(x)
        want = out["GAN_A"] + out["GAN_B"] + lam * (out["CONST_A"] + out["CONST_B"])
        assert torch.allclose(out["loss"].detach(), want, rtol=1e-5)


# ---------------------------------------------------------------------------- from the CLI
@pytest.mark.parametrize("model", ["unit", "dualgan", "discogan"])
def test_translators_train_and_are_measured_both_ways(model, tmp_path):
    from ganforge.run_eval import evaluate_run

    run = tmp_path / model
    assert main(["train", model, "--data", "digits-color-unpaired", "--steps", "2", "--out", str(run), "--quiet",
                 "--set", "g_width=4", "--set", "d_width=4", "--set", "batch_size=2", "--set", "sample_every=0"]) == 0
    rec = evaluate_run(run, metrics=["l1", "labels"], n=20, progress=False)
    assert {"label_preservation", "BtoA_label_preservation", "l1", "BtoA_l1"} <= set(rec)
    assert rec["data"] == "digits-color-unpaired:test"


# ---------------------------------------------------------------------------- cycle noise (Translator.jam)
# Per model: the network that reads a translation on each cycle's way back (A: A -> B -> A, B: B -> A -> B),
# and the settings that make its forward pass deterministic in eval mode.
WAY_BACK = {"unit": ("E_B", "E_A", {}), "discogan": ("G_BA", "G_AB", {}),
            "dualgan": ("G_BA", "G_AB", {"dropout": 0.0}),
            "cyclegan": ("G_BA", "G_AB", {"lambda_id": 0.0, "n_blocks": 1})}


def _way_back_inputs(model, monkeypatch, **sets):
    """What the way back of each cycle, and D_B, were given in one g_terms call; and the clean translations."""
    back_a, back_b, extra = WAY_BACK[model]
    torch.manual_seed(0)
    m = ganforge.create(model, "digits-edges-unpaired", **TINY, **extra, **sets)
    m.eval()  # batch norm on running statistics: the translations are the same on every call
    if model == "unit":  # the VAE's code noise off (z = mu), so the only draws are the cycle noise's
        monkeypatch.setattr(m, "noisy", lambda mu: mu)
    seen = {}
    hooks = [getattr(m, name).register_forward_pre_hook(lambda mod, inp, k=k: seen.__setitem__(k, inp[0].detach()))
             for k, name in (("A", back_a), ("B", back_b), ("D_B", "D_B"))]
    x = random_pair(3, seed=2)
    torch.manual_seed(1)
    with torch.no_grad():
        m.g_terms(x)
        for h in hooks:
            h.remove()
        fake_b, fake_a = m.translator("AtoB", False)(x["A"]), m.translator("BtoA", False)(x["B"])
    return seen, fake_b, fake_a


@pytest.mark.parametrize("model", ["unit", "discogan", "dualgan", "cyclegan"])
def test_cycle_noise_reaches_the_way_back_and_not_d(model, monkeypatch):
    sd = 0.3
    seen, fake_b, fake_a = _way_back_inputs(model, monkeypatch, cycle_noise=sd)
    torch.manual_seed(1)
    noise_b, noise_a = torch.randn_like(fake_b), torch.randn_like(fake_a)  # A's cycle draws first
    # the last network of each cycle's way back reads the translation plus sd x the noise drawn
    assert torch.allclose(seen["A"], fake_b + sd * noise_b, atol=1e-5)
    assert torch.allclose(seen["B"], fake_a + sd * noise_a, atol=1e-5)
    assert abs(float((seen["A"] - fake_b).std()) - sd) < 0.05  # the std asked for
    assert torch.allclose(seen["D_B"], fake_b, atol=1e-6)  # D judges the translation as it is
    # unset (the default, 0): the way back reads the translation itself
    quiet, _, _ = _way_back_inputs(model, monkeypatch)
    assert torch.allclose(quiet["A"], fake_b, atol=1e-6) and torch.allclose(quiet["B"], fake_a, atol=1e-6)
    # one cycle only: cycle_noise_B jams B -> A -> B, A's way back stays clean
    one, _, _ = _way_back_inputs(model, monkeypatch, cycle_noise_B=sd)
    torch.manual_seed(1)
    assert torch.allclose(one["A"], fake_b, atol=1e-6)
    assert torch.allclose(one["B"], fake_a + sd * torch.randn_like(fake_a), atol=1e-5)


@pytest.mark.parametrize("model", ["unit", "discogan", "dualgan"])
@pytest.mark.parametrize("key", ["cycle_noise", "cycle_noise_A", "cycle_noise_B"])
def test_negative_cycle_noise_is_refused(model, key):
    with pytest.raises(ConfigError, match=f"cycle_noise settings must be >= 0.*{key}=-0.1"):
        ganforge.create(model, "digits-edges-unpaired", **TINY, **{key: -0.1})
