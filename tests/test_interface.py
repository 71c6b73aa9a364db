"""The model interface for models with several networks, shared per-iteration work, scheduled
phases and growth: toy models registered for the duration of a test."""
import pytest
import torch
from torch import nn

import ganforge
from ganforge import config as C
from ganforge import losses, registry
from ganforge.errors import ConfigError
from ganforge.files import atomic_save
from ganforge.models import Change, GANModel, Phase
from ganforge.training.checkpoint import load_checkpoint
from ganforge.training.engine import Trainer

QUIET = {"log_every": 1, "sample_every": 0, "ckpt_every": 0}


class ThreeNets(GANModel):
    """G, D and an encoder E under their own optimizers; the generator is not called G."""
    name = "iface-three"
    data_kinds = ("points",)
    defaults = {"z_dim": 4, "loss": "nonsaturating", "d_repeats": 1}
    generator = "G_AB"
    ema_nets = ("G_AB", "E")

    def build(self):
        self.G_AB, self.D, self.E = nn.Linear(4, 2), nn.Linear(2, 1), nn.Linear(2, 4)
        self.seen = []

    def optimizers(self):
        return {k: torch.optim.SGD(getattr(self, k).parameters(), lr=0.01) for k in ("G_AB", "D", "E")}

    def phases(self):
        r = self.cfg["d_repeats"]
        return [Phase("D", self.d_step, ("D",), r, fresh=r > 1),
                Phase("GE", self.ge_step, ("G_AB", "E"), keep_graph=("D",)),
                Phase("E", self.e_step, ("E",), every=2, start=1, stop=5),
                Phase("N", self.n_step, ("E",), data=False)]

    def d_step(self, batch):
        self.seen.append(("D", batch, len(self.ctx)))
        fake = self.generate(self.sample_inputs(len(batch["x"])))
        self.share("fake", fake, self.G_AB)
        self.ctx["unread"] = True  # left over for no one: gone by the next iteration
        return {"loss": self.d_adversarial(self.D(batch["x"]), self.D(fake.detach()))}

    def ge_step(self, batch):
        fake = self.reuse("fake", self.G_AB)
        self.seen.append(("GE", batch, fake is not None))
        return {"loss": self.g_adversarial(self.D(fake)) + (self.E(fake) - self.E(batch["x"])).pow(2).mean()}

    def e_step(self, batch):
        self.seen.append(("E", batch, None))
        return {"loss": self.E(batch["x"]).pow(2).mean()}

    def n_step(self, batch):
        self.seen.append(("N", batch, None))
        return {"loss": self.E(self.randn(batch["n"], 2)).pow(2).mean()}


class Growing(GANModel):
    """G gains a layer, the optimizers restart and the batch size halves at step grow_at."""
    name = "iface-grow"
    data_kinds = ("points",)
    defaults = {"z_dim": 4, "loss": "nonsaturating", "grow_at": 3}

    def build(self):
        self.G = nn.Sequential(nn.Linear(4, 2))
        self.D = nn.Sequential(nn.Linear(2, 8), nn.LeakyReLU(0.2), nn.Linear(8, 1))

    def on_step(self, step):
        if step == self.cfg["grow_at"]:
            self.G.append(nn.Linear(2, 2))
            return Change(nets=True, optimizers=True, batch_size=8)
        return None


@pytest.fixture(autouse=True)
def toy_models():
    registry._load_all()
    for cls in (ThreeNets, Growing):
        registry._MODELS[cls.name] = cls
    yield
    for cls in (ThreeNets, Growing):
        registry._MODELS.pop(cls.name, None)


def trainer(tmp_path, model, **over):
    cls = registry.get_model_class(model)
    cfg = C.resolve(cls.defaults, {"model": model, "data": "ring8", "batch_size": 16, **QUIET}, over)
    return Trainer(cfg, tmp_path, progress=False)


def test_phases_share_one_batch_and_a_context_emptied_every_iteration(tmp_path):
    t = trainer(tmp_path, "iface-three")
    for _ in range(3):
        t.train_step({})
        t.step += 1
    m = t.model
    ds = [s for s in m.seen if s[0] == "D"]
    ges = [s for s in m.seen if s[0] == "GE"]
    assert [s[2] for s in ds] == [0, 0, 0], "the context was not emptied at the start of an iteration"
    assert all(g[2] for g in ges), "the G step did not find the D step's G(z) in the context"
    assert all(d[1] is g[1] for d, g in zip(ds, ges)), "phases of one iteration saw different batches"
    assert not torch.equal(ds[0][1]["x"], ds[1][1]["x"])  # but each iteration a new one
    assert t.loader.state_dict()["pos"] == 3 * 16  # one batch per iteration
    assert [s[1] for s in m.seen if s[0] == "N"] == [{"n": 16}] * 3  # no data: only the batch size


def test_a_fresh_phase_draws_a_batch_per_repeat_which_later_phases_share(tmp_path):
    t = trainer(tmp_path, "iface-three", d_repeats=2)
    assert t.train_step({}) == 32
    d1, d2, ge = [s[1] for s in t.model.seen if s[0] in ("D", "GE")]
    assert d1 is not d2 and ge is d2
    assert t.loader.state_dict()["pos"] == 32


def test_phases_run_every_k_steps_within_their_range(tmp_path):
    t = trainer(tmp_path, "iface-three")
    steps = []
    for step in range(8):
        t.step = step
        t.model.seen.clear()
        t.train_step({})
        if any(s[0] == "E" for s in t.model.seen):
            steps.append(step)
    assert steps == [1, 3]  # Phase("E", every=2, start=1, stop=5)
    assert [Phase("x", None, (), every=3, start=2).active(s) for s in range(9)] == \
        [False, False, True, False, False, True, False, False, True]


def test_ema_and_saving_follow_networks_not_called_G(tmp_path):
    r = ganforge.train("iface-three", data="ring8", out=tmp_path, steps=3, batch_size=16, progress=False,
                       sets={**QUIET, "ema": 0.5})
    m = ganforge.load_run(r["out"])
    assert m.generator_name() == "G_AB_ema" and m.generator_name(use_ema=False) == "G_AB"
    assert m.sample(5).shape == (5, 2)
    t = trainer(tmp_path / "t", "iface-three", ema=0.5)
    before = {k: v.clone() for k, v in t.model.E_ema.state_dict().items()}
    t.train_step({})
    assert any(not torch.equal(before[k], v) for k, v in t.model.E_ema.state_dict().items()), "E's EMA copy did not move"
    from safetensors.torch import load_file

    keys = {k.split(".")[0] for k in load_file(str(r["out"] / "generator.safetensors"))}
    assert keys == {"G_AB", "G_AB_ema", "E", "E_ema"}


def test_objective_helpers_apply_the_loss_kind_and_label_smoothing():
    m = ganforge.create("cgan", data="digits", label_smoothing=0.2, g_width=8, d_width=8, z_dim=8)
    real, fake = torch.randn(6, 1), torch.randn(6, 1)
    want = losses.d_loss("nonsaturating", real, fake, real_label=0.8)
    assert m.d_adversarial(real, fake).item() == pytest.approx(want.item())
    assert m.d_adversarial(real, fake).item() != pytest.approx(losses.d_loss("nonsaturating", real, fake).item())


@pytest.mark.parametrize("model", ["cgan", "acgan", "infogan"])
def test_models_with_their_own_steps_now_take_r1_and_label_smoothing(model):
    tiny = {"g_width": 8, "d_width": 8} if model != "infogan" else {}
    m = ganforge.create(model, data="digits", r1_gamma=4.0, label_smoothing=0.1, **tiny)
    batch = {"x": torch.rand(4, *m.spec.shape) * 2 - 1, "y": torch.arange(4)}
    out = m.d_step(batch)
    assert out["R1"].item() > 0
    out["loss"].backward()
    assert all(p.grad is not None for p in m.D.parameters() if p.requires_grad) or model == "infogan"


def test_options_a_model_cannot_honour_are_refused_in_one_line():
    with pytest.raises(ConfigError, match="own training steps do not implement feature_matching$"):
        ganforge.create("cgan", data="digits", feature_matching=True, g_width=8, d_width=8)


def _tensors_equal(a, b):
    if torch.is_tensor(a):
        return torch.equal(a, b)
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_tensors_equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_tensors_equal(x, y) for x, y in zip(a, b))
    return a == b


def _run(t, upto):
    while t.step < upto:
        t.train_step({})
        t.step += 1
    return t


def test_growth_rebuilds_the_engine_and_resumes_bit_exactly_from_either_side(tmp_path):
    over = {"ema": 0.5, "lr_decay": 1.0, "steps": 6}  # EMA copies and base learning rates are rebuilt too
    full = _run(trainer(tmp_path / "whole", "iface-grow", **over), 6).state_dict()
    assert full["grown"] == [3] and len(full["model"]) == 4 + 4 + 4  # G (2 layers), D, G_ema (2 layers)
    assert full["loader"]["pos"] == 3 * 16 + 3 * 8  # the batch size halved at step 3
    for stop in (2, 3, 5):  # before the change, just before it, after it
        t = _run(trainer(tmp_path / str(stop), "iface-grow", **over), stop)
        atomic_save(t.state_dict(), tmp_path / f"{stop}.pt")  # through a file: weights_only must load it
        resumed = Trainer(t.cfg, tmp_path / str(stop), resume_state=load_checkpoint(tmp_path / f"{stop}.pt"),
                          progress=False)
        part = _run(resumed, 6).state_dict()
        for key in ("model", "optimizers", "loader", "grown"):
            assert _tensors_equal(full[key], part[key]), (stop, key)


def test_growth_reaches_the_optimizers_phases_and_loader(tmp_path):
    t = trainer(tmp_path, "iface-grow", ema=0.5)
    for step in range(4):
        t.step = step
        t.train_step({})
    new = list(t.model.G[1].parameters())
    assert all(any(p is q for q in t.opts["G"].param_groups[0]["params"]) for p in new)
    assert all(id(p) in t._phase_ids["G"] for p in new)
    assert t.loader.local == 8 and len(t.model.G_ema) == 2


def test_config_lists_are_checked_by_element_not_length():
    assert C._coerce("sched", [0.1, 0.2, 3], [0.5, 0.5]) == [0.1, 0.2, 3.0]
    assert C.resolve({"g_hidden": [8, 8]}, {"g_hidden": [4, 4, 4]})["g_hidden"] == [4, 4, 4]
    with pytest.raises(ConfigError, match=r"^sched\[1\] must be a number, got 'x'$"):
        C._coerce("sched", [0.1, "x"], [0.5, 0.5])
    with pytest.raises(ConfigError, match="^sched must be a list, got 3$"):
        C._coerce("sched", 3, [0.5, 0.5])
    with pytest.raises(ConfigError, match="betas must be a list of 2 numbers"):
        C.resolve({}, {"betas": [0.5, 0.9, 0.99]})
