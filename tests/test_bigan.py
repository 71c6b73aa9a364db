"""BiGAN (Donahue et al. 2017) and ALI (Dumoulin et al. 2017): D judges joint pairs (x, E(x)) against
(G(z), z), E and G are trained together on D's loss with the labels exchanged, ALI's encoder is
reparameterised; ``ganforge encode`` / ``sample --input`` on them; the encoder metrics against brute force."""
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import ganforge
from ganforge import config as C
from ganforge.cli import main
from ganforge.data import load_data
from ganforge.data.loader import images_to_float
from ganforge.errors import ConfigError, GanforgeError
from ganforge.metrics.encoding import encoder_data, knn_accuracy, nearest_neighbours
from ganforge.registry import get_model_class
from ganforge.training.engine import Trainer

from conftest import QUIET

TINY = {"g_width": 8, "e_width": 8, "d_width": 8, "d_z_width": 16, "d_joint_width": 16, "z_dim": 6}
MODELS = ["bigan", "ali"]


def trainer(tmp_path, model, **over):
    cfg = C.resolve(get_model_class(model).defaults, {"model": model, "batch_size": 16, "steps": 2, **QUIET, **TINY},
                    over)
    return Trainer(cfg, tmp_path, progress=False)


def digits(n=16):
    return images_to_float({"x": load_data("digits").x[:n]})["x"]


def spy(m):
    """Record D's inputs, E's outputs and G's inputs and outputs during the next calls."""
    seen = {"D": [], "E": [], "G": []}
    d_forward = m.D.forward
    m.D.forward = lambda x, z: (seen["D"].append((x, z)), d_forward(x, z))[1]
    m.E.register_forward_hook(lambda mod, inp, out: seen["E"].append(out))
    m.G.register_forward_hook(lambda mod, inp, out: seen["G"].append((inp[0], out)))
    return seen


@pytest.mark.parametrize("model", MODELS)
def test_d_judges_the_pair_x_with_its_code_against_g_of_z_with_z(model, monkeypatch):
    torch.manual_seed(0)
    m = ganforge.create(model, data="digits", **TINY)
    seen = spy(m)
    noise, randn = [], m.randn  # every draw of the model's noise: the prior's z, and ALI's eps
    monkeypatch.setattr(m, "randn", lambda *a, **kw: (noise.append(randn(*a, **kw)), noise[-1])[1])
    x = digits()
    m.d_step({"x": x})
    (x_real, z_real), (x_fake, z_fake) = seen["D"]
    (code,), ((z_in, g_out),) = seen["E"], seen["G"]
    assert x_real is x  # the real image itself, beside E's code of it
    if model == "bigan":
        assert torch.equal(z_real, code)  # deterministic: the code is E(x)
    else:
        mu, logvar = code.chunk(2, 1)
        (eps,) = [n for n in noise if n is not z_fake]  # a sample of q(z | x): z = mu + sigma * eps
        assert torch.allclose(z_real, mu + (0.5 * logvar).exp() * eps, atol=1e-6)
        assert not torch.allclose(z_real, mu)
    assert torch.equal(x_fake, g_out) and torch.equal(z_fake, z_in)  # G's image beside the z it came from
    assert not torch.allclose(z_real, z_fake)
    assert z_real.shape == z_fake.shape == (16, 6)
    # D's update sees both pairs cut from E's and G's graphs; E and G's update sees them attached.
    assert not z_real.requires_grad and not x_fake.requires_grad
    m.eg_step({"x": x})
    (x_f, z_f), (x_r, z_r) = seen["D"][2:]
    assert x_r is x and x_f.grad_fn is not None and z_r.grad_fn is not None and torch.equal(z_f, z_fake)


def test_d_reads_both_halves_of_the_pair_through_its_own_branch():
    torch.manual_seed(0)
    m = ganforge.create("bigan", data="digits", **TINY).eval()  # eval: no dropout noise
    D, x, z = m.D, digits(4), torch.randn(4, 6)
    assert D.z_branch[0].in_features == 6 and D.x_branch[0].in_channels == 1
    assert D.joint[0].in_features == D.x_branch(x).shape[1] + 16
    with torch.no_grad():
        out = D(x, z)
        assert not torch.allclose(out, D(x, torch.randn(4, 6))) and not torch.allclose(out, D(digits(8)[4:], z))
    norms = lambda d: sum(isinstance(l, torch.nn.BatchNorm2d) for l in d.x_branch)  # noqa: E731
    assert norms(D) == 1 and norms(ganforge.create("bigan", data="digits", d_norm=False, **TINY).D) == 0
    assert sum(isinstance(l, torch.nn.Dropout) for l in D.modules()) == 5


def test_e_and_g_minimise_ds_loss_with_the_labels_exchanged():
    torch.manual_seed(0)
    m = ganforge.create("bigan", data="digits", d_dropout=0.0, **TINY)
    x = digits()
    m.d_step({"x": x})  # leaves its pairs for the EG step
    p = m.ctx["pairs"][0]
    out = m.eg_step({"x": x})
    with torch.no_grad():
        d_real, d_fake = m.D(x, p["q"]["z"]), m.D(p["fake"], p["z"])
    # -log D(G(z), z) - log(1 - D(x, E(x))) (ALI's Algorithm 1; BiGAN's non-saturating form)
    want = -torch.log(torch.sigmoid(d_fake)).mean() - torch.log(1 - torch.sigmoid(d_real)).mean()
    assert torch.allclose(out["loss"], want, atol=1e-5)
    assert torch.allclose(out["loss_E"], -torch.log(1 - torch.sigmoid(d_real)).mean(), atol=1e-5)
    m.cfg["loss"] = "minimax"  # E and G then maximise D's own loss
    d_out = m.d_step({"x": x})
    p = m.ctx["pairs"][0]
    out = m.eg_step({"x": x})
    with torch.no_grad():
        d_real, d_fake = m.D(x, p["q"]["z"]), m.D(p["fake"], p["z"])
    assert torch.allclose(out["loss"], torch.log(1 - torch.sigmoid(d_fake)).mean()
                          + torch.log(torch.sigmoid(d_real)).mean(), atol=1e-5)
    assert torch.allclose(out["loss"], -d_out["loss"], atol=1e-5)  # same pairs; d_dropout=0: D is deterministic
    with pytest.raises(ConfigError, match="labels exchanged.*wasserstein"):
        ganforge.create("bigan", data="digits", loss="wasserstein", **TINY)
    with pytest.raises(ConfigError, match="d_dropout"):
        ganforge.create("ali", data="digits", d_dropout=1.0, **TINY)


def test_alis_code_is_a_reparameterised_sample_and_encode_returns_the_mean():
    reparameterise = ganforge.create("ali", data="digits", **TINY).reparameterise
    mu = torch.randn(500, 4, requires_grad=True)
    logvar = torch.randn(500, 4, requires_grad=True)
    torch.manual_seed(5)
    z = reparameterise(mu, logvar)
    torch.manual_seed(5)
    eps = torch.randn(500, 4)  # the same draw (z - mu would lose it to rounding where mu >> sigma * eps)
    assert torch.allclose(z, mu + (0.5 * logvar).exp() * eps)
    g_mu, g_logvar = torch.autograd.grad(z.sum(), [mu, logvar])
    # dz/dmu = 1 and dz/dlogvar = sigma * eps / 2: the gradient goes through the sample
    assert torch.equal(g_mu, torch.ones_like(mu)) and torch.allclose(g_logvar, (0.5 * logvar).exp().detach() * eps / 2)
    assert not torch.equal(z, reparameterise(mu, logvar))

    torch.manual_seed(0)
    m = ganforge.create("ali", data="digits", **TINY)
    assert m.E.head.out_features == 12  # mean and log-variance of a 6-d Gaussian
    x = digits()
    q1, q2 = m.infer(x), m.infer(x)
    assert not torch.equal(q1["z"], q2["z"]) and torch.equal(q1["mu"], q2["mu"])  # two draws, one posterior
    # E's loss reaches both the mean's and the log-variance's rows of E's head through the sample
    w = m.E.head.weight
    (gw,) = torch.autograd.grad(m.D(x, q1["z"]).sum(), [w])
    assert gw[:6].abs().sum() > 0 and gw[6:].abs().sum() > 0
    codes = m.encode(x)
    assert torch.equal(codes, m.encode(x))  # deterministic
    m.E.eval()
    with torch.no_grad():
        assert torch.allclose(codes, m.E(x)[:, :6], atol=1e-6)  # the mean, not a sample


def test_bigans_encoder_is_deterministic():
    torch.manual_seed(0)
    m = ganforge.create("bigan", data="digits", **TINY)
    assert m.E.head.out_features == 6
    x = digits()
    assert torch.equal(m.infer(x)["z"], m.infer(x)["z"])
    m.E.eval()
    with torch.no_grad():
        assert torch.equal(m.encode(x), m.E(x))


def _snapshot(*nets):
    return [p.detach().clone() for n in nets for p in n.parameters()]


def _moved(before, *nets):
    return any(not torch.equal(a, b) for a, b in zip(before, [p for n in nets for p in n.parameters()]))


@pytest.mark.parametrize("model", MODELS)
def test_d_phase_moves_only_d_and_the_eg_phase_moves_e_and_g_with_one_optimizer(tmp_path, model):
    t = trainer(tmp_path, model)
    m = t.model
    d_phase, eg_phase = t.phases
    assert (d_phase.optimizers, eg_phase.optimizers) == (("D",), ("EG",))
    ids = lambda *nets: {id(p) for n in nets for p in n.parameters()}  # noqa: E731
    assert {id(p) for g in t.opts["EG"].param_groups for p in g["params"]} == ids(m.E, m.G)
    assert {id(p) for g in t.opts["D"].param_groups for p in g["params"]} == ids(m.D)
    for phases, moves, stays in (([d_phase], (m.D,), (m.E, m.G)), ([eg_phase], (m.E, m.G), (m.D,))):
        t.phases = phases
        before_moves, before_stays = [_snapshot(n) for n in moves], _snapshot(*stays)
        t.train_step({})
        assert all(_moved(b, n) for b, n in zip(before_moves, moves)), phases[0].name
        assert not _moved(before_stays, *stays), phases[0].name


def test_the_eg_step_reuses_the_d_steps_pairs_and_recomputes_stale_ones():
    torch.manual_seed(0)
    m = ganforge.create("bigan", data="digits", **TINY)
    seen = spy(m)
    x = digits()
    m.d_step({"x": x})
    m.eg_step({"x": x})
    assert len(seen["E"]) == len(seen["G"]) == 1  # E(x) and G(z) of the D step, not computed again
    m.d_step({"x": x})
    m.eg_step({"x": digits(8)})  # another batch: its own pairs
    assert len(seen["E"]) == len(seen["G"]) == 3


def _png(path, size, value=128):
    from PIL import Image

    Image.fromarray(np.full((size[1], size[0]), value, np.uint8)).save(path)


def test_cli_train_encode_sample_input_and_eval(tmp_path, capsys):
    run = tmp_path / "run"
    sets = sum((["--set", f"{k}={v}"] for k, v in {**TINY, **QUIET, "ema": 0.9}.items()), [])
    assert main(["train", "ali", "--data", "digits", "--steps", "3", "--batch-size", "16", "--out", str(run),
                 "--quiet", *sets]) == 0
    model = ganforge.load_run(run)
    assert hasattr(model, "E_ema") and model.encoder_name() == "E_ema" and model.generator_name() == "G_ema"
    images = tmp_path / "images"
    images.mkdir()
    from PIL import Image

    x = load_data("digits").x[:3]
    for i, a in enumerate(x):
        Image.fromarray(a[0].numpy()).save(images / f"d{i}.png")
    _png(images / "wide.png", (40, 20))  # another size: resized to the model's 28x28
    capsys.readouterr()

    codes = tmp_path / "codes.npz"
    assert main(["encode", str(run), "--input", str(images), "--out", str(codes)]) == 0
    z = np.load(codes)
    assert z["codes"].shape == (4, 6) and list(z["files"]) == ["d0.png", "d1.png", "d2.png", "wide.png"]
    from ganforge.cli import _read_inputs

    xs, _ = _read_inputs(images, 1, 28)
    assert np.allclose(z["codes"], model.encode(xs).numpy(), atol=1e-5)
    assert main(["encode", str(run), "--input", str(images), "--out", str(codes), "--no-ema"]) == 0
    assert not np.allclose(np.load(codes)["codes"], z["codes"])  # E, not its EMA copy

    out = tmp_path / "recon"
    assert main(["sample", str(run), "--input", str(images), "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["d0.png", "d1.png", "d2.png", "wide.png"]
    got = np.asarray(Image.open(out / "d1.png"))
    want = ((model.reconstruct(xs[1:2])[0, 0].clamp(-1, 1) + 1) * 127.5).round().numpy()
    assert got.shape == (28, 28) and np.abs(got - want).max() <= 1
    assert "G_ema(E_ema(x))" in capsys.readouterr().out

    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    for args in (["encode", str(run), "--input", str(tmp_path / "missing")],
                 ["sample", str(run), "--input", str(tmp_path / "missing")],
                 ["encode", str(run), "--input", str(bad)],
                 ["encode", str(run), "--input", str(images), "--out", str(tmp_path / "codes.txt")]):
        assert main(args) == 2, args
        err = capsys.readouterr().err.strip()
        assert err.startswith("ganforge: error:") and len(err.splitlines()) == 1, err
    with pytest.raises(ConfigError, match=r"shape \(N, 1, 28, 28\)"):
        model.encode(torch.zeros(2, 1, 8, 8))

    # ganforge eval adds the encoder metrics: test codes against training codes, reconstructions
    assert main(["eval", str(run), "--n", "200", "--metrics", "fd"]) == 0
    rec = json.loads((run / "eval.jsonl").read_text().splitlines()[-1])
    assert rec["knn_n_query"] == 359 and rec["knn_n_reference"] == 1797 - 359  # digits:test vs digits:train
    assert 0 <= rec["knn_accuracy"] <= 1 and 0 <= rec["recon_label_preservation"] <= 1 and rec["recon_l1"] > 0


def _brute_nn(q, r, metric):
    best = []
    for a in q:
        if metric == "cosine":
            d = [1 - float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b))) for b in r]
        else:
            d = [float(np.sqrt(((a - b) ** 2).sum())) for b in r]
        best.append(int(np.argmin(d)))
    return np.array(best)


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_knn_accuracy_matches_brute_force(metric):
    rng = np.random.default_rng(0)
    r, q = rng.normal(size=(300, 5)), rng.normal(size=(120, 5))
    yr, yq = rng.integers(0, 4, 300), rng.integers(0, 4, 120)
    q[:5] = r[[3, 10, 99, 150, 299]] * (2.0 if metric == "cosine" else 1.0)  # exact neighbours
    nn = _brute_nn(q, r, metric)
    assert np.array_equal(nearest_neighbours(q, r, metric, chunk=32).numpy(), nn)
    assert list(nn[:5]) == [3, 10, 99, 150, 299]
    want = float(np.mean(yr[nn] == yq))
    assert knn_accuracy(q, yq, r, yr, metric) == pytest.approx(want)
    # cosine ignores length, euclidean does not
    assert np.array_equal(nearest_neighbours(q * 7, r, "cosine").numpy(), _brute_nn(q, r, "cosine"))
    # codes that are the labels themselves (plus a little noise) classify perfectly
    onehot = lambda y: np.eye(4)[y] + 0.01 * rng.normal(size=(len(y), 4))  # noqa: E731
    assert knn_accuracy(onehot(yq), yq, onehot(yr), yr, metric) == 1.0


def test_knn_ties_go_to_the_first_reference_and_bad_input_is_one_line():
    r = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    assert nearest_neighbours(np.array([[2.0, 0.0]]), r).tolist() == [0]
    assert knn_accuracy([[2.0, 0.0]], [1], r, [1, 0, 0]) == 1.0
    for call, msg in ((lambda: nearest_neighbours(np.zeros((2, 3)), r), "dimension"),
                      (lambda: nearest_neighbours(r, r, "manhattan"), "unknown metric"),
                      (lambda: knn_accuracy(r, [0, 1], r, [0, 1, 2]), r"query labels must be \(3,\)"),
                      (lambda: knn_accuracy(r, [0.5, 1, 2], r, [0, 1, 2]), "integer"),
                      (lambda: knn_accuracy(r * np.nan, [0, 1, 2], r, [0, 1, 2]), "NaN"),
                      (lambda: knn_accuracy(np.zeros((0, 2)), [], r, [0, 1, 2]), "non-empty")):
        with pytest.raises(GanforgeError, match=msg):
            call()


def test_encoder_data_queries_the_test_split_against_training_data():
    assert encoder_data("mnist") == ("mnist", "mnist:test")
    assert encoder_data("mnist[:8000]") == ("mnist[:8000]", "mnist:test")
    assert encoder_data("digits") == ("digits:train", "digits:test")
    assert encoder_data("mnist:test") is None and encoder_data("ring8") is None
