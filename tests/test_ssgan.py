"""S^2-GAN (Wang & Gupta 2016): the FCN's pixel-wise loss reaches the Style-G (and never trains
the FCN on fakes), the Structure-G's output feeds the Style-G in joint training and gets its
gradient, and the training is staged: independent until ``joint_start``, joint from it."""
import json

import pytest
import torch

import ganforge
from ganforge.data import load_data
from ganforge.errors import ConfigError

from conftest import QUIET

TINY = {"g_width": 8, "d_width": 8, "fcn_width": 8, "z_dim": 8, "style_z": 2, "g_down": 2}


@pytest.fixture(scope="module")
def pairs():
    g = load_data("digits-edges", direction="BtoA").groups["AB"]
    return {k: g[k][:8].float().div(127.5).sub(1) for k in ("A", "B")}


def tiny(**over):
    return ganforge.create("ssgan", data="digits-edges", **{**TINY, **over})


def grads(loss, net):
    return torch.autograd.grad(loss, list(net.parameters()), allow_unused=True, retain_graph=True)


def flat(gs):
    return torch.cat([g.flatten() for g in gs if g is not None])


def test_structure_is_a_and_the_image_is_b():
    raw = load_data("digits-edges", direction=type(tiny()).data_options({})["direction"])
    swapped = load_data("digits-edges")  # the set's own layout: A digit, B edges
    g = raw.groups["AB"]
    assert torch.equal(g["B"], swapped.groups["AB"]["A"]) and torch.equal(raw.x, g["B"])  # the image: the digit
    assert torch.equal(g["A"], swapped.groups["AB"]["B"]) and set(g["A"].unique().tolist()) <= {0, 255}  # edges
    assert len(set(g["B"].unique().tolist())) > 2
    assert tiny().measured_as() == "digits"  # measured in the features of the digit classifier


def test_fcn_pixelwise_loss_reaches_the_style_g(pairs):
    torch.manual_seed(0)
    m = tiny()
    s = pairs["A"]
    torch.manual_seed(1)
    x = m.render(s)
    loss, adv, fcn = m.style_g_loss(s, x)
    g_fcn = flat(grads(fcn, m.G_style))
    assert g_fcn.abs().sum() > 0  # the FCN term's gradient reaches G_style through the rendering
    g_total, g_adv = flat(grads(loss, m.G_style)), flat(grads(adv, m.G_style))
    assert torch.allclose(g_total, g_adv + m.cfg["fcn_weight"] * g_fcn, atol=1e-5)
    assert torch.allclose(fcn, (m.FCN(x) - s).abs().mean())
    # The FCN learns from real pairs only: its own phase reads (B -> A) and the G phases do not update it.
    phases = {ph.name: ph for ph in m.phases()}
    assert phases["FCN"].optimizers == ("FCN",)
    assert all("FCN" not in ph.optimizers for n, ph in phases.items() if n != "FCN")
    assert torch.allclose(m.fcn_step(pairs)["loss"], (m.FCN(pairs["B"]) - pairs["A"]).abs().mean())


def test_joint_training_feeds_the_structure_g_into_the_style_g(pairs):
    torch.manual_seed(0)
    m = tiny()
    seen = {}
    h1 = m.G_struct.register_forward_hook(lambda mod, inp, out: seen.update(s=out))
    h2 = m.G_style.register_forward_hook(lambda mod, inp, out: seen.update(style_in=inp[0]))
    out = m.g_joint_step({"n": 6})
    h1.remove(), h2.remove()
    assert torch.equal(seen["style_in"][:, :1], seen["s"])  # G_style renders G_struct's map
    # and the style losses reach G_struct through it (the joint loss), in proportion to joint_weight
    torch.manual_seed(3)
    a = flat(grads(m.g_joint_step({"n": 6})["loss"], m.G_struct))
    torch.manual_seed(3)
    m.cfg["joint_weight"] = 0.0
    b = flat(grads(m.g_joint_step({"n": 6})["loss"], m.G_struct))
    assert not torch.allclose(a, b, atol=1e-7)
    assert out["loss"].requires_grad
    # Independently, G_style renders *real* structure maps and G_struct gets nothing from it.
    seen.clear()
    h2 = m.G_style.register_forward_hook(lambda mod, inp, out: seen.update(style_in=inp[0]))
    loss = m.g_style_step(pairs)["loss"]
    h2.remove()
    assert torch.equal(seen["style_in"][:, :1], pairs["A"])
    assert all(g is None for g in grads(loss, m.G_struct))


def test_staged_training_switches_at_joint_start(tmp_path):
    m = tiny(joint_start=3)
    active = lambda step: [ph.name for ph in m.phases() if ph.active(step)]  # noqa: E731
    assert active(2) == ["FCN", "D_struct", "G_struct", "D_style", "G_style"]
    assert active(3) == ["FCN", "D", "G"]
    joint = {ph.name: ph for ph in m.phases()}
    assert joint["G"].optimizers == ("G_struct", "G_style") and joint["D"].optimizers == ("D_struct", "D_style")
    ganforge.train("ssgan", data="digits-edges[:64]", steps=5, out=tmp_path, progress=False,
                   sets={**TINY, **QUIET, "log_every": 1, "batch_size": 8, "joint_start": 3})
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    for r in rows:  # a row logs the step just finished (iteration step - 1)
        independent = r["step"] <= 3
        assert ("G_style_loss" in r) == independent and ("G_loss" in r) != independent, r
        assert "FCN_loss" in r
    run = ganforge.load_run(tmp_path)
    s, x = run.sample_pairs(4)
    assert s.shape == x.shape == (4, 1, 28, 28)
    images, nrow = run.sample_grid(8)
    s, x = run.sample_pairs(4, seed=run.cfg["seed"] + 1_000_003)  # the grids' fixed seed
    assert nrow == 8 and torch.equal(images[0::2], s) and torch.equal(images[1::2], x)
    with pytest.raises(ConfigError, match="joint_start"):
        tiny(joint_start=-1)


def test_eval_measures_the_images_as_digits(tmp_path):
    from ganforge.run_eval import evaluate_run

    ganforge.train("ssgan", data="digits-edges[:64]", steps=2, out=tmp_path, progress=False,
                   sets={**TINY, **QUIET, "batch_size": 8})
    rec = evaluate_run(tmp_path, metrics="fd", n=64, progress=False)
    assert rec["data"] == "digits" and rec["fd"] > 0 and "edges" not in rec["extractor"]
    assert rec["n_ref"] == 64  # the run's own images, B of digits-edges[:64]


def test_eval_against_a_named_reference(tmp_path, capsys):
    """``ganforge eval RUN --ref DATA``: the reference is DATA's images at the run's size, not the run's
    own; how SS-GAN on paired facades and DCGAN on a folder of the photos meet the same test photos."""
    import numpy as np
    from PIL import Image

    from ganforge.cli import main
    from ganforge.run_eval import evaluate_run

    ganforge.train("ssgan", data="digits-edges[:64]", steps=2, out=tmp_path / "run", progress=False,
                   sets={**TINY, **QUIET, "batch_size": 8})
    own = evaluate_run(tmp_path / "run", metrics="fd", n=64, progress=False)
    rec = evaluate_run(tmp_path / "run", metrics="fd", n=64, progress=False, ref="digits:test")
    test = load_data("digits:test").x
    assert rec["data"] == "digits:test" and rec["n_ref"] == len(test) != own["n_ref"]
    assert rec["fd"] != own["fd"]  # the same samples against other images
    # exactly the figure of the same samples measured against those images
    from ganforge.metrics.evaluate import Evaluator
    ev = Evaluator("digits:test", "image", test, "fd", n=64, progress=False)
    assert ev.evaluate(ganforge.load_run(tmp_path / "run"))["fd"] == pytest.approx(rec["fd"], abs=1e-4)
    # RGB images against a run of 1-channel samples: one clear line, no traceback
    (tmp_path / "rgb").mkdir()
    for i in range(3):
        Image.fromarray(np.full((28, 28, 3), 40 * i, np.uint8)).save(tmp_path / "rgb" / f"{i}.png")
    with pytest.raises(ConfigError, match="--ref folder:.*3x28x28.*1x28x28"):
        evaluate_run(tmp_path / "run", metrics="fd", n=64, progress=False, ref=f"folder:{tmp_path / 'rgb'}")
    assert main(["eval", str(tmp_path / "run"), "--metrics", "fd", "--n", "64", "--quiet",
                 "--ref", f"folder:{tmp_path / 'rgb'}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--ref" in err[0] and "Traceback" not in err[0]
