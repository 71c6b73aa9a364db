"""Defaults per data kind (GANModel.defaults_by_kind, issue 19): a model's defaults for the 2-D point
mixtures apply when the data is points and not for images, sit under every user setting, are recorded
in the run's config.yaml, and a resumed run keeps the settings it recorded."""
import pytest
import yaml

import ganforge
from ganforge import config as C
from ganforge.registry import get_model_class
from ganforge.training.engine import run_config

POINT_MODELS = ["gan", "lsgan", "wgan", "wgan-gp", "ebgan", "bgan"]
QUIET = {"log_every": 1, "sample_every": 0, "ckpt_every": 0}


def resolve(model, *layers):
    cls = get_model_class(model)
    return C.resolve(cls.defaults, {"model": model}, *layers, by_kind=cls.defaults_by_kind)


@pytest.mark.parametrize("model", POINT_MODELS)
def test_point_defaults_apply_to_points_and_not_to_images(model):
    cls = get_model_class(model)
    points = cls.defaults_by_kind["points"]
    assert points, f"{model} has no defaults for the 2-D mixtures"
    image_defaults = {**C.ENGINE_DEFAULTS, **cls.defaults}
    assert any(points[k] != image_defaults[k] for k in points)
    for data in ("ring8", "grid25"):
        cfg = resolve(model, {"data": data})
        assert {k: cfg[k] for k in points} == points
    cfg = resolve(model, {"data": "digits"})
    assert {k: cfg[k] for k in points} == {k: image_defaults[k] for k in points}
    cfg = resolve(model, {})  # no data named: the engine's default, digits (images)
    assert {k: cfg[k] for k in points} == {k: image_defaults[k] for k in points}


def test_the_authors_toy_settings_for_wgan_gp():
    # gan_toy.py (igul222/improved_wgan_training): DIM 512, LAMBDA .1, CRITIC_ITERS 5, BATCH_SIZE 256,
    # Adam 1e-4 (0.5, 0.9), 2-D noise.
    cfg = resolve("wgan-gp", {"data": "grid25"})
    assert (cfg["toy_hidden"], cfg["lambda_gp"], cfg["n_critic"], cfg["batch_size"], cfg["lr"], cfg["betas"],
            cfg["z_dim"]) == (512, 0.1, 5, 256, 1e-4, [0.5, 0.9], 2)
    img = resolve("wgan-gp", {"data": "mnist"})
    assert (img["lambda_gp"], img["betas"], img["batch_size"], img["z_dim"]) == (10.0, [0.0, 0.9], 64, 100)


def test_user_settings_win_over_point_defaults():
    # the kind follows the last layer that names the data (a --config file, then flags, then --set)
    cfg = resolve("wgan-gp", {"data": "digits"}, {"data": "grid25"}, {"lambda_gp": 5, "batch_size": 32})
    assert (cfg["lambda_gp"], cfg["batch_size"], cfg["toy_hidden"]) == (5.0, 32, 512)
    cfg = resolve("wgan-gp", {"data": "grid25"}, {"data": "digits"})
    assert cfg["lambda_gp"] == 10.0


def test_create_uses_point_defaults():
    m = ganforge.create("wgan-gp", data="ring8")
    assert m.cfg["lambda_gp"] == 0.1
    assert m.D.body[1].out_features == 512  # the authors' 512 hidden units
    assert m.sample(3, seed=0).shape == (3, 2)


def test_run_records_point_defaults_and_resume_keeps_the_runs_own(tmp_path):
    out = tmp_path / "run"
    # toy_hidden and batch_size set by the user (small and quick); the rest from the point defaults
    ganforge.train("wgan-gp", data="ring8", out=out, steps=2, batch_size=16, progress=False,
                   sets={**QUIET, "toy_hidden": 16})
    rec = yaml.safe_load((out / "config.yaml").read_text())
    assert (rec["lambda_gp"], rec["betas"], rec["z_dim"], rec["n_critic"]) == (0.1, [0.5, 0.9], 2, 5)
    assert (rec["toy_hidden"], rec["batch_size"]) == (16, 16)

    # A run made before point defaults existed recorded the image defaults; one made even earlier
    # lacks settings added since (here: tensorboard). Resume keeps what it recorded.
    rec.update(lambda_gp=10.0, betas=[0.0, 0.9], n_critic=3)
    rec.pop("tensorboard")
    (out / "config.yaml").write_text(yaml.safe_dump(rec))
    cfg = run_config(out)
    assert (cfg["lambda_gp"], cfg["betas"], cfg["n_critic"], cfg["tensorboard"]) == (10.0, [0.0, 0.9], 3, False)
    ganforge.train(resume=out, steps=3, progress=False)
    again = yaml.safe_load((out / "config.yaml").read_text())
    assert (again["lambda_gp"], again["betas"], again["n_critic"], again["steps"]) == (10.0, [0.0, 0.9], 3, 3)
    assert ganforge.load(out).cfg["lambda_gp"] == 10.0
