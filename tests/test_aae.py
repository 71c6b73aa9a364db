"""AAE (Makhzani et al. 2016): the reconstruction and regularisation phases and what each moves,
the three priors, the supervised and semi-supervised variants, E as a classifier, encode and
reconstruct, the CLI, and the Gaussian-kernel MMD that measures q(z) against the prior."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

import ganforge
from ganforge import config as C
from ganforge.cli import main
from ganforge.data import load_data
from ganforge.errors import ConfigError
from ganforge.metrics.encoding import encoder_metrics
from ganforge.metrics.mmd import gaussian_mmd2, median_distance
from ganforge.metrics.paired import l1
from ganforge.metrics.semi import classifier_accuracy, heldout_accuracy
from ganforge.models.aae import MIXTURE_RADIUS, SEMI_LR_AE, SGD_LR, SWISS_RADIUS, SWISS_TURNS, sample_prior
from ganforge.nn import random_shift
from ganforge.registry import get_model_class
from ganforge.training.engine import Trainer

from conftest import QUIET

TINY = {"e_hidden": [32], "g_hidden": [32], "d_hidden": [16]}
TINY_SETS = [s for k, v in TINY.items() for s in ("--set", f"{k}={v}")]


@pytest.fixture(scope="module")
def digits():
    return load_data("digits")


def tiny(**over):
    return ganforge.create("aae", data="digits", **{**TINY, **over})


def trainer(tmp_path, **over):
    cls = get_model_class("aae")
    cfg = C.resolve(cls.defaults, {"model": "aae", "data": "digits", "batch_size": 16, "steps": 2, **QUIET, **TINY},
                    over)
    return Trainer(cfg, tmp_path, progress=False)


def snapshot(model):
    return {name: [p.detach().clone() for p in getattr(model, name).parameters()]
            for name in ("E", "G", "D", "D_cat", "D_z") if hasattr(model, name)}


def moved(before, model):
    return {name for name, ps in before.items()
            if any(not torch.equal(a, b) for a, b in zip(ps, getattr(model, name).parameters()))}


# -- the two phases --------------------------------------------------------------------------
@pytest.mark.parametrize("variant", ["unsupervised", "supervised", "semi"])
def test_each_phase_moves_only_its_networks(tmp_path, variant):
    t = trainer(tmp_path, variant=variant)
    m, seen = t.model, []
    before = [snapshot(m)]
    after = m.after_phase

    def record(name):
        after(name)
        seen.append((name, moved(before[0], m)))
        before[0] = snapshot(m)

    m.after_phase = record
    t.train_step({})
    adversaries = {"D_cat", "D_z"} if variant == "semi" else {"D"}
    expected = [("recon", {"E", "G"}), ("D", adversaries), ("E", {"E"})]
    if variant == "semi":
        expected.append(("C", {"E"}))  # the classification phase: E's head and body, nothing else
    assert seen == expected


def test_without_the_adversary_only_the_reconstruction_phase_runs_on_the_same_networks():
    m, plain = tiny(), tiny(adversary=False)
    assert [p.name for p in m.phases()] == ["recon", "D", "E"]
    assert [p.name for p in plain.phases()] == ["recon"]
    shapes = lambda net: [p.shape for p in net.parameters()]  # noqa: E731
    assert shapes(m.E) == shapes(plain.E) and shapes(m.G) == shapes(plain.G)


def test_d_learns_prior_samples_against_codes_and_e_learns_to_fool_it(digits):
    m = tiny()
    x = digits.x[:8].float().div(127.5).sub(1)
    prior = torch.randn(8, 2) + 5
    m.prior_targets = lambda n: [prior]
    seen = []
    m.D.register_forward_hook(lambda mod, inp, out: seen.append(inp[0].detach()))
    out = m.d_step({"x": x})
    codes = m.E(x).detach()
    assert torch.equal(seen[0], prior) and torch.allclose(seen[1], codes)
    want = F.binary_cross_entropy_with_logits(m.D(prior), torch.ones(8)) + \
        F.binary_cross_entropy_with_logits(m.D(codes), torch.zeros(8))
    assert torch.allclose(out["loss"], want)
    # E's loss is the generator's: its codes labelled as prior samples, through D (and E) only.
    e = m.e_step({"x": x})["loss"]
    assert torch.allclose(e, F.binary_cross_entropy_with_logits(m.D(m.E(x)), torch.ones(8)))
    m.zero_grad()
    e.backward()
    assert m.E.net[0].weight.grad.abs().sum() > 0 and all(p.grad is None for p in m.G.parameters())


def test_e_phase_reuses_the_codes_of_ds_phase_only_while_e_is_unchanged(digits):
    m = tiny()
    x = digits.x[:8].float().div(127.5).sub(1)
    m.d_step({"x": x})
    assert m.reuse("codes", m.E) is not None
    m.d_step({"x": x})
    with torch.no_grad():
        m.E.net[0].weight.add_(1.0)
    assert m.reuse("codes", m.E) is None  # a stale E(x) is never reused


# -- the priors ------------------------------------------------------------------------------
def test_gaussian_prior():
    z, comp = sample_prior("gaussian", 20000, 3, torch.Generator().manual_seed(0))
    assert z.shape == (20000, 3) and comp is None
    assert z.mean(0).abs().max() < 0.03 and (torch.cov(z.T) - torch.eye(3)).abs().max() < 0.05


def test_mixture_prior_has_ten_components_around_a_circle():
    z, comp = sample_prior("mixture", 20000, 2, torch.Generator().manual_seed(0))
    assert z.shape == (20000, 2) and torch.bincount(comp, minlength=10).min() > 1800
    means = torch.stack([z[comp == k].mean(0) for k in range(10)])
    angles = 2 * math.pi * torch.arange(10) / 10
    centres = MIXTURE_RADIUS * torch.stack([angles.cos(), angles.sin()], 1)
    assert (means - centres).norm(dim=1).max() < 0.1
    # Each component is stretched along its radius: most points are nearest their own centre.
    nearest = torch.cdist(z, centres).argmin(1)
    assert (nearest == comp).float().mean() > 0.95
    assert len(torch.unique(comp)) == 10


def test_swiss_roll_prior_is_a_spiral():
    z, comp = sample_prior("swissroll", 20000, 2, torch.Generator().manual_seed(0))
    assert z.shape == (20000, 2)
    r = z.norm(dim=1)
    assert r.max() < SWISS_RADIUS + 0.5
    # Every point lies near the curve r = R s, angle = 2 pi turns s (up to the noise); points
    # spread evenly over the disc the roll fills would mostly not.
    s = torch.linspace(0, 1, 4000)
    curve = SWISS_RADIUS * s[:, None] * torch.stack([torch.cos(2 * math.pi * SWISS_TURNS * s),
                                                     torch.sin(2 * math.pi * SWISS_TURNS * s)], 1)
    assert (torch.cdist(z, curve).min(1).values < 0.3).float().mean() > 0.95
    disc = SWISS_RADIUS * torch.rand(20000, 1).sqrt() * F.normalize(torch.randn(20000, 2), dim=1)
    assert (torch.cdist(disc, curve).min(1).values < 0.3).float().mean() < 0.6
    # Its tenths, in order, lie further and further out.
    radii = torch.stack([r[comp == k].mean() for k in range(10)])
    assert (radii.diff() > 0).all() and torch.bincount(comp, minlength=10).min() > 1800


def test_the_model_samples_its_prior_and_refuses_bad_settings(capsys, tmp_path):
    for prior in ("mixture", "swissroll"):
        m = tiny(prior=prior)
        z = m.prior_sample(500, torch.Generator().manual_seed(1))[0]
        ref = sample_prior(prior, 500, 2, torch.Generator().manual_seed(1))[0]
        assert torch.allclose(z, ref)
    with pytest.raises(ConfigError, match="z_dim=2"):
        tiny(prior="mixture", z_dim=3)
    with pytest.raises(ConfigError, match="unsupervised"):
        tiny(prior="swissroll", variant="semi")
    for key, value, msg in [("prior", "swiss", "unknown prior 'swiss' .*swissroll"),
                            ("variant", "semisupervised", "unknown variant"), ("recon", "l1", "recon must")]:
        with pytest.raises(ConfigError, match=msg):
            tiny(**{key: value})
        out = tmp_path / key
        assert main(["train", "aae", "--steps", "1", "--set", f"{key}={value}", "--out", str(out)]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "Traceback" not in err and not out.exists()


# -- the supervised variant --------------------------------------------------------------------
def test_supervised_decoder_reads_the_label(digits):
    m = tiny(variant="supervised")
    assert m.G.net[0].in_features == 2 + 10 and m.E.net[-1].out_features == 2
    z = torch.randn(1, 2).repeat(10, 1)
    x = m.generate({"z": z, "y": torch.arange(10)})
    assert all(not torch.equal(x[0], x[k]) for k in range(1, 10))  # same z, other label: another image
    batch = {"x": digits.x[:8].float().div(127.5).sub(1), "y": digits.y[:8]}
    torch.manual_seed(0)
    right = m.recon_step(batch)["loss"]
    torch.manual_seed(0)
    wrong = m.recon_step({**batch, "y": (batch["y"] + 1) % 10})["loss"]
    assert not torch.equal(right, wrong)  # the reconstruction phase decodes with the batch's labels
    grid = m.fixed_inputs(20, torch.Generator().manual_seed(0))
    assert grid["y"].tolist() == [k for k in range(10) for _ in range(2)] and torch.equal(grid["z"][0], grid["z"][2])
    assert (m.sample(6, label=3).shape, m.takes_label) == ((6, 1, 28, 28), True)
    with pytest.raises(ConfigError, match="label"):
        m.reconstruct(digits.x[:4])
    assert m.reconstruct(digits.x[:4], y=digits.y[:4]).shape == (4, 1, 28, 28)
    # `ganforge eval` measures it too: its reconstructions are decoded with the test images' labels.
    r = encoder_metrics(m, n_reference=200, n_query=50)
    right = m.reconstruct(load_data("digits:test").x[:50], y=load_data("digits:test").y[:50])
    assert r["knn_n_query"] == 50 and r["recon_l1"] == l1(right, load_data("digits:test").x[:50])


def test_unsupervised_never_reads_labels(digits):
    m = tiny()
    batch = {"x": digits.x[:8].float().div(127.5).sub(1), "y": digits.y[:8]}
    out = [m.recon_step(b)["loss"] for b in (batch, {**batch, "y": (batch["y"] + 1) % 10})]
    assert torch.equal(*out) and m.G.net[0].in_features == 2 and not m.takes_label
    with pytest.raises(ConfigError, match="no label"):
        m.sample(4, label=1)


# -- the semi-supervised variant ---------------------------------------------------------------
def test_semi_has_two_adversaries_on_the_categorical_and_style_codes(digits):
    m = tiny(variant="semi", z_dim=5, shift=0, input_noise=0, cat_weight=2.5)
    assert not hasattr(m, "D")
    assert m.D_cat[0][0].in_features == 10 and m.D_z[0][0].in_features == 5
    assert m.E.net[-1].out_features == 5 + 10 and m.G.net[0].in_features == 5 + 10
    seen = {"D_cat": [], "D_z": []}
    for name in seen:
        getattr(m, name).register_forward_hook(lambda mod, inp, out, n=name: seen[n].append(inp[0].detach()))
    x = digits.x[:16].float().div(127.5).sub(1)
    out = m.d_step({"x": x})
    (cat_real, cat_fake), (z_real, z_fake) = seen["D_cat"], seen["D_z"]
    # D_cat: one-hot samples of a categorical against softmax(y); D_z: N(0, I) against z.
    assert ((cat_real == 0) | (cat_real == 1)).all() and (cat_real.sum(1) == 1).all()
    assert (cat_fake >= 0).all() and torch.allclose(cat_fake.sum(1), torch.ones(16)) and (cat_fake < 1).all()
    assert z_real.shape == z_fake.shape == (16, 5)
    assert {"D_cat(prior)", "D_z(E(x))"} <= set(out)
    # E fools both: its loss is the sum of the two generator losses, the categorical one weighted
    # by cat_weight.
    e = m.e_step({"x": x})["loss"]
    z, logits = m.split(m.E(x))
    want = 2.5 * F.binary_cross_entropy_with_logits(m.D_cat(logits.softmax(1)), torch.ones(16)) + \
        F.binary_cross_entropy_with_logits(m.D_z(z), torch.ones(16))
    assert torch.allclose(e, want)


def test_semi_reconstructs_at_twice_the_rate_of_its_other_phases():
    """variant=semi's reconstruction phase has its own default rate (SEMI_LR_AE, measured in
    docs/encoders.md); the other variants, and every explicit lr_ae, are unchanged."""
    lr = lambda m: {k: o.param_groups[0]["lr"] for k, o in m.optimizers().items()}  # noqa: E731
    semi = lr(tiny(variant="semi"))
    assert semi == {"AE": SEMI_LR_AE, "D": 1e-3, "E": 1e-3, "C": 1e-3} and SEMI_LR_AE == 2e-3
    assert lr(tiny())["AE"] == lr(tiny(variant="supervised"))["AE"] == 1e-3
    assert lr(tiny(variant="semi", lr_ae=5e-4))["AE"] == 5e-4
    for key, value in (("lr_ae", "fast"), ("cat_weight", -1)):
        with pytest.raises(ConfigError, match=key):
            tiny(variant="semi", **{key: value})


def test_sgd_is_the_papers_optimisation_with_its_rates_momenta_and_error_scale(digits):
    """optimizer=sgd: SGD with momentum, high (momentum_ae) for the reconstruction and
    classification costs, low (momentum_adv) for both adversarial players, at the paper's rates
    (SGD_LR) unless set; the reconstruction error is summed over each image's pixels."""
    m = tiny(variant="semi", optimizer="sgd", lr_c=0.05)
    opts = m.optimizers()
    assert all(type(o) is torch.optim.SGD for o in opts.values())
    got = {k: (o.param_groups[0]["lr"], o.param_groups[0]["momentum"]) for k, o in opts.items()}
    assert got == {"AE": (SGD_LR["lr_ae"], 0.9), "D": (SGD_LR["lr_d"], 0.1), "E": (SGD_LR["lr_e"], 0.1),
                   "C": (0.05, 0.9)}
    assert all(type(o) is torch.optim.Adam for o in tiny(variant="semi").optimizers().values())
    x = digits.x[:8].float().div(127.5).sub(1)
    adam = tiny(variant="semi", recon="mse")
    sgd = tiny(variant="semi", recon="mse", optimizer="sgd")
    sgd.load_state_dict(adam.state_dict())
    h = torch.randn(8, adam.z_dim + 10)
    pixels = math.prod(x.shape[1:])
    assert torch.allclose(sgd.recon_error(h, x), pixels * adam.recon_error(h, x), rtol=1e-5)
    assert torch.allclose(sgd.recon_error(h, x), (sgd.G(h) - x).pow(2).flatten(1).sum(1).mean(), rtol=1e-5)
    for key, value in (("optimizer", "rmsprop"), ("momentum_adv", 1.0), ("momentum_ae", "high")):
        with pytest.raises(ConfigError, match=key):
            tiny(variant="semi", **{key: value})


def test_init_std_draws_every_networks_weights_from_the_papers_small_gaussian():
    m = tiny(variant="semi", init_std=0.01, e_hidden=[256], g_hidden=[256], d_hidden=[256])
    for name in ("E", "G", "D_cat", "D_z"):
        layers = [mod for mod in getattr(m, name).modules() if isinstance(mod, torch.nn.Linear)]
        w = torch.cat([mod.weight.detach().flatten() for mod in layers])
        assert abs(float(w.std()) - 0.01) < 0.001 and all(not mod.bias.any() for mod in layers)
    default = tiny(variant="semi", e_hidden=[256])
    assert float(default.E.net[0].weight.detach().std()) > 0.015  # PyTorch's own: 1/sqrt(3 * 784) = 0.021
    with pytest.raises(ConfigError, match="init_std"):
        tiny(variant="semi", init_std=-0.1)


def test_semi_learns_labels_only_from_the_labelled_subset(digits):
    m = tiny(variant="semi", labels_per_class=3, shift=0, input_noise=0)
    sgan = ganforge.create("sgan", data="digits", labels_per_class=3, g_hidden=[8], d_hidden=[8] * 5)
    m.prepare(digits)
    assert torch.equal(m.labelled_idx, sgan.select_labelled(digits.y))  # the subset sgan draws for the seed
    assert torch.bincount(m.labelled_y, minlength=10).tolist() == [3] * 10
    phase = {p.name: p for p in m.phases()}["C"]
    assert phase.data is False and phase.optimizers == ("C",)  # the batch (and its labels) is never read
    seen = []
    m.E.register_forward_hook(lambda mod, inp, out: seen.append(inp[0].detach()))
    out = m.classify_step({"n": 30})
    pool = m.labelled_images().flatten(1)
    assert all((pool == row).all(1).any() for row in seen[0].flatten(1))
    assert 0 <= float(out["acc_labelled"]) <= 1 and out["loss"] > 0
    # recon, D and E phases read the batch's images but never its labels.
    batch = {"x": digits.x[:8].float().div(127.5).sub(1), "y": digits.y[:8]}
    for step in (m.recon_step, m.d_step, m.e_step):
        torch.manual_seed(0)
        a = step(batch)["loss"]
        torch.manual_seed(0)
        assert torch.equal(a, step({**batch, "y": (batch["y"] + 3) % 10})["loss"])


def test_recon_labelled_reconstructs_labelled_images_from_their_true_labels(digits):
    m = tiny(variant="semi", labels_per_class=3, shift=0, input_noise=0, recon_labelled=True)
    m.prepare(digits)
    e_in, g_in = [], []
    m.E.register_forward_hook(lambda mod, inp, out: e_in.append(inp[0].detach()))
    m.G.net.register_forward_hook(lambda mod, inp, out: g_in.append(inp[0].detach()))
    out = m.recon_step({"x": digits.x[:8].float().div(127.5).sub(1)})
    assert len(e_in) == len(g_in) == 2  # the batch, then as many labelled images
    pool = m.labelled_images().flatten(1)
    rows = [int((pool == row).all(1).nonzero()[0]) for row in e_in[1].flatten(1)]
    y = g_in[1][:, m.z_dim:]
    assert torch.equal(y, F.one_hot(m.labelled_y[rows], 10).float())  # each image's own label, one-hot
    assert torch.allclose(out["loss"], out["recon_unlabelled"] + out["recon_labelled"])
    assert not torch.equal(g_in[0][:, m.z_dim:], g_in[0][:, m.z_dim:].round())  # the batch's y: E's softmax
    with pytest.raises(ConfigError, match="recon_labelled"):
        tiny(variant="supervised", recon_labelled=True)


def test_classify_is_argmax_of_the_categorical_head_and_only_semi_has_it(digits):
    m = tiny(variant="semi")
    x = digits.x[:50].float().div(127.5).sub(1)
    pred = m.classify(x)
    assert pred.shape == (50,) and pred.dtype == torch.long
    assert torch.equal(pred, m.E(x)[:, m.z_dim:].argmax(1))
    assert 0 <= classifier_accuracy(m, (digits.x[:50], digits.y[:50])) <= 1
    assert not hasattr(tiny(), "classify") and not hasattr(tiny(variant="supervised"), "classify")
    with pytest.raises(ConfigError, match="labels_only"):
        tiny(labels_only=True)
    assert [p.name for p in tiny(variant="semi", labels_only=True).phases()] == ["C"]


def test_short_semi_run_reports_heldout_accuracy_and_beats_chance(tmp_path):
    r = ganforge.train("aae", data="digits[:1000]", out=tmp_path / "semi", steps=150, batch_size=50, progress=False,
                       sets={**QUIET, **TINY, "e_hidden": [64], "variant": "semi", "labels_per_class": 10})
    m = ganforge.load_run(r["out"])
    acc = heldout_accuracy(m)  # what `ganforge eval` adds for a model with classify()
    assert acc["test_data"] == "digits[1000:]" and acc["test_accuracy"] > 0.5


# -- encode, reconstruct, CLI ------------------------------------------------------------------
def test_encode_and_reconstruct_shapes(digits):
    m = tiny()
    z = m.encode(digits.x[:7])
    assert z.shape == (7, 2) and torch.allclose(z, m.E(digits.x[:7].float().div(127.5).sub(1)), atol=1e-6)
    x = m.reconstruct(digits.x[:7])
    assert x.shape == (7, 1, 28, 28) and x.min() >= -1 and x.max() <= 1
    semi = tiny(variant="semi")
    codes = semi.encode(digits.x[:7])
    assert codes.shape == (7, 10 + 10) and torch.allclose(codes[:, 10:].sum(1), torch.ones(7))
    assert semi.reconstruct(digits.x[:7]).shape == (7, 1, 28, 28)


def test_cli_train_encode_and_reconstruct(tmp_path, capsys, digits):
    out = tmp_path / "run"
    assert main(["train", "aae", "--data", "digits", "--steps", "6", "--out", str(out), *TINY_SETS,
                 "--set", "sample_every=0"]) == 0
    images = tmp_path / "in"
    images.mkdir()
    for i in range(3):
        Image.fromarray(digits.x[i, 0].numpy()).save(images / f"d{i}.png")
    assert main(["encode", str(out), "--input", str(images), "--out", str(tmp_path / "codes.npz")]) == 0
    codes = np.load(tmp_path / "codes.npz")
    assert codes["codes"].shape == (3, 2) and sorted(codes["files"].tolist()) == ["d0.png", "d1.png", "d2.png"]
    m = ganforge.load_run(out)
    want = m.encode(torch.stack([torch.from_numpy(np.array(Image.open(images / f)))[None]
                                 for f in codes["files"]]))
    assert np.allclose(codes["codes"], want.numpy(), atol=1e-5)
    assert main(["sample", str(out), "--input", str(images), "--out", str(tmp_path / "rec")]) == 0
    assert sorted(p.name for p in (tmp_path / "rec").iterdir()) == ["d0.png", "d1.png", "d2.png"]
    capsys.readouterr()


# -- the pieces it uses --------------------------------------------------------------------------
def test_gaussian_mmd2_is_the_unbiased_estimate():
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(30, 2, generator=g).double(), torch.randn(40, 2, generator=g).double() + 0.5
    k = lambda a, b: math.exp(-float((a - b).pow(2).sum()) / (2 * 1.5 ** 2))  # noqa: E731
    kxx = sum(k(a, b) for i, a in enumerate(x) for j, b in enumerate(x) if i != j) / (30 * 29)
    kyy = sum(k(a, b) for i, a in enumerate(y) for j, b in enumerate(y) if i != j) / (40 * 39)
    kxy = sum(k(a, b) for a in x for b in y) / (30 * 40)
    assert gaussian_mmd2(x, y, 1.5, chunk=7) == pytest.approx(kxx + kyy - 2 * kxy, rel=1e-9)
    same = gaussian_mmd2(torch.randn(2000, 2, generator=g), torch.randn(2000, 2, generator=g))
    apart = gaussian_mmd2(torch.randn(2000, 2, generator=g), 3 * torch.randn(2000, 2, generator=g))
    assert abs(same) < 0.003 and apart > 0.05
    d = median_distance(torch.randn(1000, 2, generator=g))
    assert abs(d - math.sqrt(2) * 1.1774) < 0.1  # the median of a chi(2) distance scaled by sqrt(2)
    with pytest.raises(ganforge.GanforgeError, match="same dimension"):
        gaussian_mmd2(x, torch.randn(5, 3))


def test_random_shift_translates_by_whole_pixels():
    x = torch.full((2, 1, 6, 6), -1.0)
    x[:, 0, 2, 3] = 1.0
    out = random_shift(x, torch.tensor([[2, 2], [0, 3]]), 2)  # content moves by k - offset: (0, 0) and (+2, -1)
    assert torch.equal(out[0], x[0])
    assert (out[1, 0] > 0).nonzero().tolist() == [[4, 2]] and (out[1] == -1).sum() == 35
    assert torch.equal(random_shift(x, torch.zeros(2, 2, dtype=torch.long), 0), x)
