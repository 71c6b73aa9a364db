"""The training engine: update isolation, the D:G schedule, exact resume, Ctrl-C, atomic checkpoints."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

import ganforge
from ganforge.files import atomic_save
from ganforge.training.checkpoint import load_checkpoint
from ganforge.training.engine import Trainer, build_model, run_config
from ganforge import config as C
from ganforge.registry import get_model_class

from conftest import QUIET, TINY_DCGAN, TINY_GAN, assert_same_checkpoint


def make_trainer(tmp_path, model="dcgan", **over):
    cls = get_model_class(model)
    tiny = TINY_DCGAN if model == "dcgan" else TINY_GAN
    cfg = C.resolve(cls.defaults, {"model": model, "batch_size": 16, **QUIET, **tiny}, over)
    return Trainer(cfg, tmp_path, progress=False)


def snapshot(net):
    return [p.detach().clone() for p in net.parameters()]


def changed(before, net):
    return [not torch.equal(a, b) for a, b in zip(before, net.parameters())]


@pytest.mark.parametrize("model", ["gan", "dcgan"])
def test_d_step_changes_only_d_and_g_step_only_g(tmp_path, model):
    t = make_trainer(tmp_path, model)
    d_phase, g_phase = t.phases
    m = t.model

    t.phases = [d_phase]
    g0, d0 = snapshot(m.G), snapshot(m.D)
    t.train_step({})
    assert not any(changed(g0, m.G)), "a D step touched G's parameters"
    assert all(changed(d0, m.D)), "a D step left some of D's parameters unchanged"
    assert all(p.grad is None for p in m.G.parameters()), "a D step backpropagated into G"

    t.phases = [g_phase]
    g0, d0 = snapshot(m.G), snapshot(m.D)
    t.train_step({})
    assert not any(changed(d0, m.D)), "a G step touched D's parameters"
    assert all(changed(g0, m.G)), "a G step left some of G's parameters unchanged"
    assert all(p.grad is None for p in m.D.parameters()), "a G step accumulated gradients in D"


@pytest.mark.parametrize("n_critic,g_steps", [(1, 1), (3, 1), (1, 2), (5, 2)])
def test_update_schedule(tmp_path, n_critic, g_steps):
    t = make_trainer(tmp_path, "gan", n_critic=n_critic, g_steps=g_steps)
    calls = []
    for ph in t.phases:
        step = ph.step
        ph.step = (lambda s, name: (lambda b: (calls.append(name), s(b))[1]))(step, ph.name)
    consumed = [t.train_step({}) for _ in range(4)]
    assert calls == (["D"] * n_critic + ["G"] * g_steps) * 4
    # every critic update draws a fresh real batch, as in WGAN's critic loop; the G step reads none
    assert consumed == [16 * n_critic] * 4


def _weights(run):
    return load_checkpoint(run / "checkpoints" / "last.pt")


@pytest.mark.parametrize("model,extra", [("dcgan", {}), ("gan", {"ema": 0.9}), ("dcgan", {"n_critic": 2})])
def test_resume_is_bit_exact(tmp_path, model, extra):
    tiny = TINY_DCGAN if model == "dcgan" else TINY_GAN
    # batch 500 of 1,797 makes the N-step boundary fall mid-epoch with a partial epoch dropped
    kw = dict(data="digits", batch_size=500, progress=False, sets={**QUIET, **tiny, **extra})
    ganforge.train(model, out=tmp_path / "one", steps=8, **kw)
    ganforge.train(model, out=tmp_path / "two", steps=4, **kw)
    ganforge.train(resume=tmp_path / "two", steps=8, progress=False)
    assert_same_checkpoint(_weights(tmp_path / "one"), _weights(tmp_path / "two"))
    rows = [json.loads(line) for line in (tmp_path / "two" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [2, 4, 6, 8]


def test_resume_drops_log_rows_past_the_checkpoint(tmp_path):
    kw = dict(data="digits", batch_size=16, progress=False, sets={**QUIET, **TINY_GAN})
    ganforge.train("gan", out=tmp_path, steps=4, **kw)
    # as if the process died after logging step 6 but before checkpointing it
    with open(tmp_path / "metrics.jsonl", "a") as f:
        f.write(json.dumps({"step": 6, "time": 1.0, "D_loss": 0.0}) + "\n")
    ganforge.train(resume=tmp_path, steps=6, progress=False)
    steps = [json.loads(line)["step"] for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert steps == [2, 4, 6]


def test_run_directory_contents(tmp_path):
    ganforge.train("dcgan", out=tmp_path, steps=4, data="digits", batch_size=16, progress=False,
                   sets={**TINY_DCGAN, "log_every": 2, "sample_every": 2, "ckpt_every": 2})
    cfg = C.load_yaml(tmp_path / "config.yaml")
    assert cfg["model"] == "dcgan" and cfg["steps"] == 4 and cfg["g_width"] == 8
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [2, 4]
    assert {"step", "time", "D_loss", "G_loss", "img_per_s"} <= set(rows[0])
    assert all(isinstance(r["D_loss"], float) for r in rows)
    assert sorted(p.name for p in (tmp_path / "samples").iterdir()) == ["step_000002.png", "step_000004.png"]
    assert (tmp_path / "losses.png").stat().st_size > 1000
    from safetensors.torch import load_file

    g = load_file(tmp_path / "generator.safetensors")
    model = ganforge.load(tmp_path)
    assert torch.equal(g["G.net.0.weight"], model.G.net[0].weight)


def test_checkpoint_write_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    atomic_save({"step": 1, "w": torch.ones(3)}, path)

    def broken_save(obj, f, *a, **k):
        f.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError):
        atomic_save({"step": 2, "w": torch.zeros(3)}, path)
    monkeypatch.undo()
    state = torch.load(path, weights_only=True)  # not a whole training state, so not load_checkpoint
    assert state["step"] == 1 and torch.equal(state["w"], torch.ones(3))
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"], "temporary file left behind"


def test_ema_tracks_generator(tmp_path):
    t = make_trainer(tmp_path, "gan", ema=0.5)
    m = t.model
    before = snapshot(m.G_ema)
    t.train_step({})
    for e0, e, g in zip(before, m.G_ema.parameters(), m.G.parameters()):
        assert torch.allclose(e, 0.5 * e0 + 0.5 * g, atol=1e-6)
    assert not any(p.requires_grad for p in m.G_ema.parameters())


def test_ema_rampup_averages_recent_weights_early_and_reaches_the_set_decay(tmp_path):
    t = make_trainer(tmp_path, "gan", ema=0.999, ema_rampup=True)
    m = t.model
    assert t.ema_decay() == pytest.approx(0.1)  # the first update: (1 + 0) / (10 + 0)
    before = snapshot(m.G_ema)
    t.train_step({})
    for e0, e, g in zip(before, m.G_ema.parameters(), m.G.parameters()):
        assert torch.allclose(e, 0.1 * e0 + 0.9 * g, atol=1e-6)
    t.step = 100
    assert t.ema_decay() == pytest.approx(101 / 110)
    t.step = 100_000
    assert t.ema_decay() == 0.999  # capped at the set decay
    t.cfg["ema_rampup"] = False
    t.step = 0
    assert t.ema_decay() == 0.999


def test_ctrl_c_saves_a_checkpoint_and_resume_continues(tmp_path):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "ganforge", "train", "gan", "--steps", "1000000", "--batch-size", "16",
           "--out", str(out), "--quiet", "--set", "log_every=1", "--set", "g_hidden=32", "--set", "d_hidden=16"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    log = out / "metrics.jsonl"
    deadline = time.time() + 300
    while time.time() < deadline and not (log.exists() and log.stat().st_size > 0):
        time.sleep(0.2)
    if not log.exists():
        proc.kill()
        pytest.fail(f"training never logged a step: {proc.communicate()[1][-2000:]}")
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr and "--resume" in stderr
    state = load_checkpoint(out / "checkpoints" / "last.pt")
    assert 0 < state["step"] < 1_000_000
    result = ganforge.train(resume=out, steps=state["step"] + 2, progress=False)
    assert result["step"] == state["step"] + 2


def test_build_model_names_networks_after_the_paper():
    m = ganforge.create("dcgan", **TINY_DCGAN)
    assert isinstance(m.G, torch.nn.Module) and isinstance(m.D, torch.nn.Module)
    x = m.sample(5, seed=3)
    assert x.shape == (5, 1, 28, 28) and x.min() >= -1 and x.max() <= 1
    assert torch.equal(x, m.sample(5, seed=3)) and not torch.equal(x, m.sample(5, seed=4))
    m2 = build_model(m.cfg, m.spec)
    assert type(m2) is type(m)


def test_lr_decay_schedules_every_optimizer_and_survives_an_interrupted_run(tmp_path):
    t = make_trainer(tmp_path, "gan", steps=8, lr_decay=0.5, lr=1e-3, lr_d=2e-3)
    seen = []
    after = t.model.after_phase
    t.model.after_phase = lambda name: (after(name), seen.append(
        (name, t.opts["D"].param_groups[0]["lr"], t.opts["G"].param_groups[0]["lr"])))
    t.fit()
    # constant for the first half, then linear to 0 over the last 4 of 8 iterations
    factors = [1, 1, 1, 1, 1, 0.75, 0.5, 0.25]
    assert [round(d, 12) for n, d, g in seen if n == "D"] == pytest.approx([2e-3 * f for f in factors])
    assert [round(g, 12) for n, d, g in seen if n == "G"] == pytest.approx([1e-3 * f for f in factors])

    # Stopped at step 6 (as by Ctrl-C) and resumed: the optimizers' saved rates are decayed ones,
    # yet the schedule continues from the configured rates, so the run ends exactly where one run does.
    kw = dict(data="digits", batch_size=64, progress=False, sets={**QUIET, **TINY_GAN, "lr_decay": 0.5})
    ganforge.train("gan", out=tmp_path / "one", steps=8, **kw)
    cfg = C.resolve(get_model_class("gan").defaults, {"model": "gan", "data": "digits", "batch_size": 64,
                                                       "steps": 8, **QUIET, **TINY_GAN, "lr_decay": 0.5})
    (tmp_path / "two").mkdir()
    C.save_yaml(cfg, tmp_path / "two" / "config.yaml")
    part = Trainer(cfg, tmp_path / "two", progress=False)
    for _ in range(6):
        part.train_step({})
        part.step += 1
    part.save_checkpoint()
    ganforge.train(resume=tmp_path / "two", progress=False)
    assert_same_checkpoint(_weights(tmp_path / "one"), _weights(tmp_path / "two"))


@pytest.mark.parametrize("key,value", [("lr_decay", 1.5), ("lr_decay", -0.1), ("r1_gamma", -1.0), ("lr_decay", "x")])
def test_schedule_and_r1_settings_are_checked(tmp_path, key, value):
    with pytest.raises(C.ConfigError, match=key):
        make_trainer(tmp_path, "gan", **{key: value})


def test_a_run_made_before_a_setting_existed_still_loads(tmp_path):
    ganforge.train("gan", out=tmp_path, steps=2, data="digits", batch_size=64, progress=False,
                   sets={**QUIET, **TINY_GAN})
    cfg = C.load_yaml(tmp_path / "config.yaml")
    del cfg["lr_decay"], cfg["r1_gamma"]  # as written by an older ganforge
    C.save_yaml(cfg, tmp_path / "config.yaml")
    m = ganforge.load_run(tmp_path)
    assert m.cfg["lr_decay"] == 0.0 and m.cfg["r1_gamma"] == 0.0 and m.sample(3).shape[0] == 3


def test_a_run_made_before_a_setting_existed_keeps_training_as_it_did(tmp_path):
    # InfoGAN's c1_invariance is on by default now; a run recorded without it was trained without it.
    tiny = {"g_width": 8, "d_width": 8, "z_dim": 16, "q_hidden": 16, "fc_width": 32}
    ganforge.train("infogan", out=tmp_path, steps=1, data="digits", batch_size=16, progress=False,
                   sets={**QUIET, **tiny})
    assert ganforge.load_run(tmp_path).cfg["c1_invariance"] == 1.0
    cfg = C.load_yaml(tmp_path / "config.yaml")
    del cfg["c1_invariance"]  # as written by an older ganforge
    C.save_yaml(cfg, tmp_path / "config.yaml")
    assert ganforge.load_run(tmp_path).cfg["c1_invariance"] == 0.0
    assert run_config(tmp_path)["c1_invariance"] == 0.0
    assert run_config(tmp_path, c1_invariance=0.5)["c1_invariance"] == 0.5


@pytest.mark.parametrize("sets,reads", [({}, 1), ({"feature_matching": True}, 2)])
def test_g_phase_draws_real_images_only_when_it_reads_them(tmp_path, sets, reads):
    # The default G step needs only a batch size: D alone walks through the data (an epoch is an
    # epoch), and img/s counts images a phase read. Feature matching reads real images in G's step too.
    r = ganforge.train("dcgan", out=tmp_path, steps=10, data="digits", batch_size=32, progress=False,
                       sets={"g_width": 8, "d_width": 8, "z_dim": 8, "log_every": 10, "sample_every": 0, **sets})
    state = load_checkpoint(r["out"] / "checkpoints" / "last.pt")
    assert state["loader"]["pos"] == 10 * 32 * reads and state["loader"]["epoch"] == 1
    model = ganforge.load_run(r["out"])
    assert [(ph.name, ph.data) for ph in model.phases()] == [("D", True), ("G", reads == 2)]
