"""The single-device fast path: no host sync per step, --compile falling back, fused Adam, NHWC."""
import pytest
import torch

from ganforge import config as C
from ganforge.errors import ConfigError
from ganforge.registry import get_model_class
from ganforge.training.engine import Trainer

from conftest import QUIET, TINY_DCGAN, TINY_GAN


def make_trainer(tmp_path, model="gan", **over):
    tiny = TINY_DCGAN if model == "dcgan" else TINY_GAN
    cfg = C.resolve(get_model_class(model).defaults,
                    {"model": model, "batch_size": 16, "device": "cpu", **QUIET, **tiny}, over)
    return Trainer(cfg, tmp_path, progress=False)


def run(t, steps=3):
    """Train ``steps`` iterations; trainers share the global RNG, so never interleave two."""
    acc = {}
    for _ in range(steps):
        t.train_step(acc)
    return acc


def same_weights(a, b):
    return all(torch.equal(x, y) for x, y in zip(a.model.state_dict().values(), b.model.state_dict().values()))


SYNCS = ("item", "tolist", "__bool__", "__float__", "__int__", "numpy")


@pytest.fixture
def sync_counter(monkeypatch):
    """Counts the Python-level ways of pulling a tensor's value to the host."""
    calls = []
    for name in SYNCS:
        orig = getattr(torch.Tensor, name)

        def spy(self, *a, _orig=orig, _name=name, **k):
            calls.append(_name)
            return _orig(self, *a, **k)

        monkeypatch.setattr(torch.Tensor, name, spy)
    return calls


@pytest.mark.parametrize("model,extra", [("gan", {}), ("dcgan", {"ema": 0.9}), ("gan", {"n_critic": 3})])
def test_no_host_sync_between_log_steps(tmp_path, model, extra, sync_counter):
    t = make_trainer(tmp_path, model, log_every=1000, **extra)
    acc = {}
    t.train_step(acc)  # first step: optimizer state is created lazily
    sync_counter.clear()
    for _ in range(3):
        t.train_step(acc)
    assert sync_counter == [], f"train_step pulled values to the host: {sync_counter}"
    row = t._log(acc, 0.0, 64, 0.0)  # the log step is where values come back, all at once
    assert "tolist" in sync_counter and len(sync_counter) <= 2
    assert row["D_loss"] > 0


def test_compile_that_raises_falls_back_with_one_warning(tmp_path, monkeypatch, capsys):
    def broken(*a, **k):
        raise RuntimeError("no C++ compiler found\nsecond line of the error")

    monkeypatch.setattr(torch, "compile", broken)
    eager = make_trainer(tmp_path / "eager")
    run(eager)
    assert capsys.readouterr().err == ""
    comp = make_trainer(tmp_path / "comp", compile=True)
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "torch.compile failed" in err and "no C++ compiler" in err
    run(comp)
    assert same_weights(eager, comp)


def test_compile_that_fails_at_the_first_step_restores_and_runs_eagerly(tmp_path, monkeypatch, capsys):
    # Compilation really happens at the first call: a failure there must not leave half a step.
    def lazy(fn, *a, **k):
        def compiled(*args, **kw):
            raise RuntimeError("BackendCompilerFailed: inductor could not build")
        return compiled

    monkeypatch.setattr(torch, "compile", lazy)
    eager = make_trainer(tmp_path / "eager")
    accs = [run(eager)]
    comp = make_trainer(tmp_path / "comp", compile=True)
    assert capsys.readouterr().err == ""
    accs.append(run(comp))
    err = capsys.readouterr().err
    assert err.count("torch.compile failed") == 1 and "inductor could not build" in err
    assert same_weights(eager, comp), "the failed compiled step left its traces"
    assert accs[0].keys() == accs[1].keys()
    assert torch.equal(accs[0]["D_loss"][0], accs[1]["D_loss"][0]) and accs[0]["D_loss"][1] == accs[1]["D_loss"][1]


def test_adam_is_fused_on_cpu(tmp_path):
    t = make_trainer(tmp_path)
    assert all(o.defaults.get("fused") for o in t.opts.values())


def test_channels_last_trains_the_same_model(tmp_path):
    a = make_trainer(tmp_path / "a", "dcgan", channels_last=False)
    acc_a = run(a, 1)
    b = make_trainer(tmp_path / "b", "dcgan", channels_last=True)
    conv = next(m for m in b.model.D.modules() if isinstance(m, torch.nn.Conv2d) and m.in_channels > 1)
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    acc_b = run(b, 1)
    # The same weights, data and noise give the same D outputs and loss, up to float reordering.
    # (Weights after an update are not compared: Adam's first steps are ~lr * sign(grad), which
    # amplifies rounding in gradients that are near zero.)
    for k in ("D_loss", "D(x)", "D(G(z))"):
        assert torch.allclose(acc_a[k][0], acc_b[k][0], rtol=1e-4, atol=1e-5), k
    run(b, 1)  # and it keeps training in NHWC
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)


def test_fp16_needs_cuda_and_bf16_runs_on_cpu(tmp_path):
    with pytest.raises(ConfigError, match="CUDA"):
        make_trainer(tmp_path / "fp16", amp="fp16")
    t = make_trainer(tmp_path / "bf16", amp="bf16")
    acc = {}
    t.train_step(acc)
    assert torch.isfinite(acc["D_loss"][0])


def count_calls(net):
    calls = []
    net.register_forward_hook(lambda *_: calls.append(1))
    return calls


@pytest.mark.parametrize("model", ["gan", "dcgan"])
def test_reuse_fake_runs_G_once_per_iteration_only_where_exact(tmp_path, model):
    for over, expect in (({}, 1), ({"reuse_fake": False}, 2), ({"n_critic": 2}, 3)):
        t = make_trainer(tmp_path / str(expect), model, **over)
        calls = count_calls(t.model.G)
        run(t, 2)
        assert len(calls) == 2 * expect, (over, len(calls))


def test_reused_fake_gives_the_gradient_of_a_fresh_G_on_the_same_z(tmp_path):
    """The G step backpropagates through the D step's G(z): its gradient must equal that of a new
    forward pass of the (not yet updated) G, on the same z, through the just-updated D."""
    import copy

    from ganforge import losses

    t = make_trainer(tmp_path, "gan", dropout=0.0)  # no dropout: two forward passes must agree
    m = t.model
    run(t, 1)
    seen, orig_inputs, orig_after = {}, m.sample_inputs, m.after_phase

    def record_inputs(n, *a, **k):
        assert "z" not in seen, "the G step drew new noise instead of reusing the D step's G(z)"
        seen["z"] = orig_inputs(n, *a, **k)["z"]
        seen["G"] = copy.deepcopy(m.G)  # G as the D step used it (it is not updated until the G step)
        return {"z": seen["z"]}

    def record_D(name):
        if name == "D":
            seen["D"] = copy.deepcopy(m.D)
        orig_after(name)

    grads = {}
    for name, p in m.G.named_parameters():
        p.register_hook(lambda g, name=name: grads.__setitem__(name, g.clone()))
    m.sample_inputs, m.after_phase = record_inputs, record_D
    run(t, 1)
    G, D = seen["G"].requires_grad_(True), seen["D"]
    loss = losses.g_loss(m.cfg["loss"], D(G(seen["z"])))
    want = dict(zip([n for n, _ in G.named_parameters()], torch.autograd.grad(loss, list(G.parameters()))))
    assert set(grads) == set(want)
    for name in want:
        torch.testing.assert_close(grads[name], want[name], rtol=1e-5, atol=1e-6)


def test_a_reused_fake_is_never_stale(tmp_path):
    """Steps called by hand: after G changes between d_step and g_step, g_step runs G again."""
    t = make_trainer(tmp_path, "gan", dropout=0.0)
    m, batch = t.model, next(t.loader)
    calls = count_calls(m.G)
    m.d_step(batch)
    m.g_step(batch)
    assert len(calls) == 1  # reused: G ran once for both steps
    m.d_step(batch)
    with torch.no_grad():
        next(m.G.parameters()).add_(1.0)  # G updated between the two steps
    m.g_step(batch)
    assert len(calls) == 3, "a G(z) from before G's update was reused"
