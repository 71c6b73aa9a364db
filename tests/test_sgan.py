"""SGAN (Odena 2016; Salimans et al. 2016): a balanced labelled subset chosen from the seed, a
supervised loss that sees only it, the N-logit form of the (N+1)-class D, and held-out accuracy."""
import pytest
import torch
import torch.nn.functional as F

import ganforge
from ganforge import config as C
from ganforge.data import load_data
from ganforge.errors import ConfigError, DataError, GanforgeError
from ganforge.metrics.semi import classifier_accuracy, train_supervised_only
from ganforge.registry import get_model_class
from ganforge.train.engine import Trainer

from conftest import QUIET

TINY = {"g_width": 8, "d_width": 8, "z_dim": 16}


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
    m = tiny(labels_per_class=3)
    m.set_labelled(digits)
    batch = load_data("digits")
    x = batch.x[:32].float().div(127.5).sub(1)
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


def test_trainer_takes_the_subset_from_the_runs_data(tmp_path):
    cls = get_model_class("sgan")
    cfg = C.resolve(cls.defaults, {"model": "sgan", "data": "digits[:1000]", "batch_size": 16, "steps": 1,
                                   "labels_per_class": 4, **QUIET, **TINY})
    t = Trainer(cfg, tmp_path, progress=False)
    assert (t.model.labelled_idx < 0).all()
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


def test_supervised_only_baseline_trains_only_d_on_the_subset(digits):
    m = tiny(labels_per_class=2, lr=2e-3)
    with pytest.raises(GanforgeError, match="labelled subset"):
        train_supervised_only(m, 1)
    m.set_labelled(digits)
    g0 = [p.detach().clone() for p in m.G.parameters()]
    before = F.cross_entropy(m.eval().logits(m.labelled_x.float() / 127.5 - 1), m.labelled_y)
    train_supervised_only(m, 60, batch_size=20)
    after = F.cross_entropy(m.logits(m.labelled_x.float() / 127.5 - 1), m.labelled_y)
    assert after < before * 0.5
    assert all(torch.equal(a, b) for a, b in zip(g0, m.G.parameters()))


@pytest.mark.slow
def test_short_training_on_digits_beats_the_labels_alone(tmp_path):
    from ganforge.metrics.semi import heldout_accuracy

    torch.set_num_threads(2)
    sets = {"g_width": 16, "d_width": 16, "z_dim": 32, "labels_per_class": 3, "lr": 1e-3, **QUIET, "log_every": 100}
    r = ganforge.train("sgan", data="digits[:1400]", steps=300, out=tmp_path, progress=False, batch_size=32,
                       sets=sets)
    model = ganforge.load_run(r["out"])
    got = heldout_accuracy(model)
    assert got["test_data"] == "digits[1400:]" and got["n_test"] == 397
    base = ganforge.create("sgan", data="digits[:1400]", **{k: v for k, v in sets.items() if k in TINY or k in
                                                            ("g_width", "d_width", "z_dim", "labels_per_class", "lr")})
    base.set_labelled(load_data("digits[:1400]"))
    assert torch.equal(base.labelled_idx, model.labelled_idx)
    train_supervised_only(base, 300, batch_size=32)
    alone = classifier_accuracy(base, load_data("digits[1400:]"))
    # Chance is 0.1. 300 steps on 1,400 digits measured 0.718, the labels alone 0.715: too short for
    # the unlabelled images to pay off here (on MNIST, 2,000 steps: 0.8785 vs 0.7815, docs/conditional.md),
    # so this checks only that both learned and the GAN run is not worse.
    assert got["test_accuracy"] > 0.6 and alone > 0.4 and got["test_accuracy"] > alone - 0.03, (got, alone)
