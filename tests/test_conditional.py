"""CGAN (Mirza & Osindero 2014) and AC-GAN (Odena et al. 2017): the label really conditions G,
CGAN's D sees it too, AC-GAN's D outputs source and class from one body and the class loss trains
both networks; sampling a chosen class from the CLI, with one-line errors for bad labels."""
import pytest
import torch

import ganforge
from ganforge.cli import main
from ganforge.errors import ConfigError
from ganforge.training.engine import Trainer
from ganforge import config as C
from ganforge.registry import get_model_class

from conftest import QUIET

TINY = {"g_width": 8, "d_width": 8, "z_dim": 16}


def tiny(name, **over):
    return ganforge.create(name, data="digits", **TINY, **over)


@pytest.mark.parametrize("name", ["cgan", "acgan"])
def test_label_controls_the_sample(name):
    m = tiny(name).eval()
    a, a2 = m.sample(6, seed=1, label=3), m.sample(6, seed=1, label=3)
    b = m.sample(6, seed=1, label=5)
    assert torch.equal(a, a2)
    # Same seed, so the same z: only the label differs, and the images do.
    assert (a - b).abs().amax(dim=(1, 2, 3)).min() > 1e-4
    inputs = m.sample_inputs(6, torch.Generator().manual_seed(0), label=7)
    assert inputs["y"].tolist() == [7] * 6
    drawn = m.sample_inputs(2000, torch.Generator().manual_seed(0))["y"]
    assert torch.bincount(drawn, minlength=10).min() > 150  # without a label: all classes, evenly


@pytest.mark.parametrize("bad", [10, 12, -1, True, 2.0])
def test_bad_label_is_a_config_error(bad):
    with pytest.raises(ConfigError, match="label must be a class index in 0..9"):
        tiny("cgan").sample(2, label=bad)


def test_cgan_d_is_told_the_label():
    m = tiny("cgan").eval()
    assert m.D.body[0].in_channels == 1 + 10  # image + one plane per class
    x = torch.rand(4, *m.spec.shape) * 2 - 1
    with torch.no_grad():
        assert not torch.allclose(m.judge(x, torch.full((4,), 1)), m.judge(x, torch.full((4,), 8)))


def test_training_grid_has_one_row_per_class():
    m = tiny("cgan")
    inputs = m.fixed_inputs(64, torch.Generator().manual_seed(0))
    cols = m.grid_nrow
    assert cols == 6 and len(inputs["y"]) == 60
    assert inputs["y"].view(10, cols).eq(torch.arange(10)[:, None]).all()
    z = inputs["z"].view(10, cols, -1)
    assert torch.equal(z[0], z[9])  # the same noise in every row: only the class changes down a column


def test_acgan_d_outputs_source_and_class_from_one_body():
    m = tiny("acgan")
    assert m.D.head.out_features == 1 + 10
    s, c = m.judge(torch.zeros(3, *m.spec.shape))
    assert s.shape == (3,) and c.shape == (3, 10)


def _grads(loss, params):
    gs = torch.autograd.grad(loss, list(params), allow_unused=True, retain_graph=True)
    return sum(float(g.abs().sum()) for g in gs if g is not None)


def test_acgan_class_loss_trains_both_g_and_d():
    torch.manual_seed(0)
    m = tiny("acgan")
    batch = {"x": torch.rand(8, *m.spec.shape) * 2 - 1, "y": torch.randint(10, (8,))}
    g_out = m.g_step(batch)
    assert _grads(g_out["G_L_C"], m.G.parameters()) > 0  # G is pushed to make recognisable classes
    d_out = m.d_step(batch)
    assert _grads(d_out["L_C"], m.D.body.parameters()) > 0
    # The class loss acts through the class logits only, never the source logit's weights.
    head_grad = torch.autograd.grad(d_out["L_C"], m.D.head.weight, retain_graph=True)[0]
    assert head_grad[0].abs().sum() == 0 and head_grad[1:].abs().sum() > 0
    # D's class loss covers generated images too (the paper's L_C on both sources): it is larger
    # than the real-image term alone.
    _, c_real = m.judge(batch["x"])
    assert d_out["L_C"] > torch.nn.functional.cross_entropy(c_real, batch["y"]) + 0.5


@pytest.fixture(scope="module")
def cgan_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("cgan_run")
    cls = get_model_class("cgan")
    cfg = C.resolve(cls.defaults, {"model": "cgan", "batch_size": 16, "steps": 2, **QUIET, **TINY})
    Trainer(cfg, out, progress=False).fit()
    C.save_yaml(cfg, out / "config.yaml")
    return out


def test_cli_samples_a_chosen_class(cgan_run, capsys):
    out = cgan_run / "seven.npz"
    assert main(["sample", str(cgan_run), "--label", "7", "--n", "5", "--out", str(out)]) == 0
    import numpy as np

    got = torch.from_numpy(np.load(out)["images"])
    want = ganforge.load_run(cgan_run).sample(5, seed=0, label=7)
    assert torch.allclose(got, want)


def test_cli_bad_label_is_one_line(cgan_run, capsys):
    assert main(["sample", str(cgan_run), "--label", "12"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "0..9" in err and "12" in err
    assert main(["sample", str(cgan_run), "--vary", "c1"]) == 2
    assert "no latent codes" in capsys.readouterr().err


def test_cli_label_on_an_unconditional_model_is_one_line(tmp_path, capsys):
    cls = get_model_class("dcgan")
    cfg = C.resolve(cls.defaults, {"model": "dcgan", "batch_size": 16, "steps": 1, **QUIET, **TINY})
    Trainer(cfg, tmp_path, progress=False).fit()
    C.save_yaml(cfg, tmp_path / "config.yaml")
    assert main(["sample", str(tmp_path), "--label", "3"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "not class-conditional" in err


@pytest.mark.slow
@pytest.mark.parametrize("name", ["cgan", "acgan"])
def test_short_training_on_digits_makes_the_label_control_the_class(tmp_path, name):
    from ganforge.metrics import conditional_accuracy

    torch.set_num_threads(2)
    r = ganforge.train(name, data="digits", steps=400, out=tmp_path, progress=False, batch_size=32,
                       sets={"g_width": 16, "d_width": 16, "z_dim": 32, "lr": 5e-4, **QUIET, "log_every": 100})
    model = ganforge.load_run(r["out"])
    acc, per_class = conditional_accuracy(model, n_per_class=50, data="digits", per_class=True)
    # Chance is 0.1; the digit classifier is measured on its own held-out digits in its tests.
    assert acc > 0.6, per_class
    assert sum(a > 0.3 for a in per_class) >= 8, per_class
