"""pix2pix and CycleGAN: each paper's defining mechanism, training from the API and the CLI, exact
resume, translating given images (`ganforge sample --input`) and paired evaluation (`ganforge eval`)."""
import functools
import json

import numpy as np
import pytest
import torch

import ganforge
from ganforge import losses
from ganforge.cli import main
from ganforge.data import DataSpec, spec_of
from ganforge.errors import ConfigError
from ganforge.nn import UNetGenerator
from ganforge.training.checkpoint import load_checkpoint

from conftest import SHARED, assert_same_checkpoint, make_trainer, random_pair

# Tiny networks at 32x32 (the U-Net needs a power of two; the digit domains are 28x28 natively).
P2P = {"g_width": 4, "d_width": 4, "image_size": 32}
CYC = {"g_width": 4, "d_width": 4, "n_blocks": 1, "image_size": 32}
QUIET = {"log_every": 1, "sample_every": 0, "ckpt_every": 0}
needs_facades = pytest.mark.skipif(not (SHARED / "facades" / "train").is_dir() or
                                   not (SHARED / "facades" / "trainA").is_dir(),
                                   reason=f"facades not found under {SHARED}")


pair_batch = functools.partial(random_pair, size=32)


# ---------------------------------------------------------------------------- pix2pix
def test_pix2pix_d_is_conditional_on_the_input():
    torch.manual_seed(0)
    m = ganforge.create("pix2pix", "digits-edges", **P2P)
    assert m.D.net[0].in_channels == 1 + 1  # A's channels beside B's
    assert ganforge.create("pix2pix", "facades", **P2P).D.net[0].in_channels == 3 + 3
    b = pair_batch()
    with torch.no_grad():
        d = m.judge(b["A"], b["B"])
        d_other_input = m.judge(-b["A"], b["B"])
    assert not torch.allclose(d, d_other_input)  # same output half, different input half


def test_pix2pix_g_is_a_unet_with_skips():
    m = ganforge.create("pix2pix", "digits-edges", **P2P)
    assert isinstance(m.G, UNetGenerator) and m.G.skips and m.G.n_down == 5
    assert any(isinstance(layer, torch.nn.Dropout) for layer in m.G.modules())


def test_pix2pix_takes_the_digit_domains_at_their_own_size():
    # 28x28: the U-Net pads to 32 and crops back, so the defaults work as a newcomer types them
    m = ganforge.create("pix2pix", "digits-edges", g_width=4, d_width=4).eval()
    assert m.G.side == 32 and m.G(torch.zeros(2, 1, 28, 28)).shape == (2, 1, 28, 28)


def test_pix2pix_g_loss_is_gan_plus_lambda_l1():
    torch.manual_seed(0)
    m = ganforge.create("pix2pix", "digits-edges", **P2P)
    b = pair_batch()

    def g_loss(**cfg):
        m.cfg.update(cfg)
        torch.manual_seed(1)  # the same dropout masks every time
        return m.g_step(b)

    full, gan_only = g_loss(lambda_l1=100.0, gan_weight=1.0), g_loss(lambda_l1=0.0, gan_weight=1.0)
    assert torch.allclose(full["loss"] - gan_only["loss"], 100 * full["L1"], rtol=1e-5)
    torch.manual_seed(1)
    l1 = (m.G(b["A"]) - b["B"]).abs().mean()
    assert torch.allclose(full["L1"], l1)
    # gan_weight=0: L1 alone, and D is never asked
    m.D.forward = lambda x: (_ for _ in ()).throw(AssertionError("D used for L1 alone"))
    alone = g_loss(lambda_l1=7.0, gan_weight=0.0)
    assert torch.equal(alone["loss"], 7.0 * alone["L1"])


def test_pix2pix_l1_alone_trains_no_d_and_d_loss_is_halved(tmp_path):
    t = make_trainer("pix2pix", "digits-edges", tmp_path, gan_weight=0.0, batch_size=2, **P2P)
    assert [p.name for p in t.model.phases()] == ["G"]
    d0 = {k: v.clone() for k, v in t.model.D.state_dict().items()}
    acc = {}
    t.train_step(acc)
    assert all(torch.equal(v, t.model.D.state_dict()[k]) for k, v in d0.items())
    m = ganforge.create("pix2pix", "digits-edges", **P2P)
    b = pair_batch()
    out = m.d_step(b)
    # D's loss from the G(A) its step made (a new G(A) would draw other dropout masks)
    d_real, d_fake = m.judge(b["A"], b["B"]), m.judge(b["A"], m.reuse("fake", m.G).detach())
    assert torch.allclose(out["loss"], 0.5 * losses.d_loss("nonsaturating", d_real, d_fake))


def test_pix2pix_g_step_reuses_the_d_steps_output(tmp_path):
    t = make_trainer("pix2pix", "digits-edges", tmp_path, batch_size=2, **P2P)
    calls = []
    t.model.G.register_forward_hook(lambda mod, inp, out: calls.append(1))
    t.train_step({})
    assert len(calls) == 1  # one G(A) per iteration: D's step makes it, G's step backpropagates through it


def test_pix2pix_direction_auto_is_btoa_on_facades():
    cls = ganforge.registry.get_model_class("pix2pix")
    assert cls.data_options({"data": "facades", "direction": "auto"}) == {"direction": "BtoA"}
    assert cls.data_options({"data": "facades:test", "direction": "auto"}) == {"direction": "BtoA"}
    assert cls.data_options({"data": "digits-edges", "direction": "auto"}) == {"direction": "AtoB"}
    assert cls.data_options({"data": "facades", "direction": "AtoB"}) == {"direction": "AtoB"}
    with pytest.raises(ConfigError, match="direction"):
        cls.data_options({"data": "facades", "direction": "up"})


def test_data_kinds_and_spec():
    assert spec_of("digits-edges").data_kind == "paired"
    assert spec_of("digits-edges-unpaired").data_kind == "unpaired"
    assert spec_of("digits-edges-unpaired:test").data_kind == "paired"
    assert spec_of("digits").data_kind == "image" and spec_of("digits").in_channels is None
    assert DataSpec(**{"kind": "image", "channels": 1, "image_size": 28, "dim": 0, "n_classes": 10}).paired is None
    with pytest.raises(ConfigError, match="pix2pix trains on paired data, not on unpaired"):
        ganforge.create("pix2pix", "digits-edges-unpaired", **P2P)
    with pytest.raises(ConfigError, match="not on image data"):
        ganforge.create("cyclegan", "digits", **CYC)
    with pytest.raises(ConfigError, match="dcgan trains on image data, not on paired"):
        ganforge.create("dcgan", "digits-edges")


# ---------------------------------------------------------------------------- CycleGAN
def cyclegan(**kw):
    torch.manual_seed(0)
    return ganforge.create("cyclegan", "digits-edges-unpaired", **{**CYC, **kw})


def test_cyclegan_loss_terms_by_hand():
    m = cyclegan()
    b = pair_batch()
    a, bb = b["A"], b["B"]
    out = m.g_step(b)
    with torch.no_grad():
        fb, fa = m.G_AB(a), m.G_BA(bb)
        l1 = lambda x, y: (x - y).abs().mean()  # noqa: E731
        hand = {"G_AB_gan": (m.D_B(fb) - 1).pow(2).mean(), "G_BA_gan": (m.D_A(fa) - 1).pow(2).mean(),
                "cycle_A": l1(m.G_BA(fb), a), "cycle_B": l1(m.G_AB(fa), bb),
                "idt_A": l1(m.G_BA(a), a), "idt_B": l1(m.G_AB(bb), bb)}
    for k, v in hand.items():
        assert torch.allclose(out[k], v, rtol=1e-5, atol=1e-7), k
    total = hand["G_AB_gan"] + hand["G_BA_gan"] + 10 * (hand["cycle_A"] + hand["cycle_B"]) \
        + 0.5 * 10 * (hand["idt_A"] + hand["idt_B"])
    assert torch.allclose(out["loss"], total, rtol=1e-5)
    assert m.cfg["lambda_cyc"] == 10.0 and m.cfg["lambda_id"] == 0.5 and m.cfg["pool_size"] == 50


def test_cyclegan_both_cycles_go_through_the_other_generator():
    m = cyclegan()
    b = pair_batch()
    before = m.g_step(b)
    with torch.no_grad():
        for p in m.G_BA.parameters():
            p.zero_()
    after = m.g_step(b)
    # G_BA now outputs tanh(0) = 0: A -> B -> A reconstructs zeros, so cycle_A = mean |A|
    assert not torch.allclose(before["cycle_A"], after["cycle_A"])
    assert torch.allclose(after["cycle_A"], b["A"].abs().mean())
    # and B -> A -> B starts from G_BA(B) = 0, so cycle_B = mean |G_AB(0) - B|
    with torch.no_grad():
        assert torch.allclose(after["cycle_B"], (m.G_AB(torch.zeros_like(b["B"])) - b["B"]).abs().mean(), rtol=1e-5)


@pytest.mark.parametrize("model", ["pix2pix", "cyclegan"])
def test_patchgan_depth_by_size_keeps_ds_instance_norms_seeing(model):
    """Unset d_layers: 2 below 64x64, 3 (70x70 patches) from there; at 28x28 three layers would
    instance-normalise 3x3 and 2x2 maps, which erases what D sees."""
    from ganforge.nn import PatchDiscriminator

    sizes = []

    def hook(mod, inp, out):
        sizes.append(min(inp[0].shape[-2:]))

    for size, want in ((28, 2), (32, 2), (64, 3), (128, 3)):
        data, extra = ("digits-edges", {}) if model == "pix2pix" else ("digits-edges-unpaired", {"n_blocks": 1})
        m = ganforge.create(model, data=data, image_size=size, g_width=4, d_width=4, **extra)
        d = next(x for x in m.modules() if isinstance(x, PatchDiscriminator))
        assert d.n_layers == want
        sizes.clear()
        handles = [x.register_forward_hook(hook) for x in d.modules() if isinstance(x, torch.nn.InstanceNorm2d)]
        d(torch.zeros(1, d.net[0].in_channels, size, size))
        for h in handles:
            h.remove()
        assert min(sizes) >= 4, (size, sizes)
    m = ganforge.create(model, data=data, image_size=32, d_layers=3, g_width=4, d_width=4, **extra)
    assert next(x for x in m.modules() if isinstance(x, PatchDiscriminator)).n_layers == 3  # as set


def test_cyclegan_identity_loss_setting():
    b = pair_batch()
    with_id, without = cyclegan().g_step(b), cyclegan(lambda_id=0.0).g_step(b)
    assert "idt_A" not in without
    assert torch.allclose(with_id["loss"] - without["loss"], 5.0 * (with_id["idt_A"] + with_id["idt_B"]), rtol=1e-5)
    with pytest.raises(ConfigError, match="lambda_id=0"):
        m = cyclegan()
        ganforge.models.cyclegan.CycleGAN(m.cfg, DataSpec("image", 1, 32, in_channels=3, paired=False))


def test_cyclegan_weights_each_cycle_apart():
    b = pair_batch()
    both = cyclegan(lambda_id=0.0).g_step(b)
    for k, other in (("lambda_A", "cycle_B"), ("lambda_B", "cycle_A")):
        one = cyclegan(lambda_id=0.0, **{k: 2.5}).g_step(b)  # that cycle at 2.5, the other at lambda_cyc
        mine = "cycle_A" if other == "cycle_B" else "cycle_B"
        assert torch.allclose(both["loss"] - one["loss"], 7.5 * both[mine], rtol=1e-5), k
    with pytest.raises(ConfigError, match="lambda_A"):
        cyclegan(lambda_A=-1.0)


def test_cyclegan_unet_generators():
    from ganforge.nn import UNetGenerator

    m = cyclegan(g_arch="unet", lambda_id=0.0)
    assert isinstance(m.G_AB, UNetGenerator) and isinstance(m.G_BA, UNetGenerator)
    assert not any(isinstance(x, torch.nn.Dropout) and x.p > 0 for x in m.modules())
    out = m.g_step(pair_batch())
    assert torch.isfinite(out["loss"]) and out["cycle_A"] > 0
    with pytest.raises(ConfigError, match="g_arch"):
        cyclegan(g_arch="vgg")


def _logit_sees(d, size: int) -> torch.Tensor:
    """(logits, size, size) booleans: which input pixels each of D's output logits depends on."""
    x = torch.randn(1, d.net[0].in_channels, size, size, requires_grad=True)
    out = d(x).flatten()
    return torch.stack([torch.autograd.grad(o, x, retain_graph=True)[0][0].abs().sum(0) > 0 for o in out])


def test_cyclegan_d_layers_and_norm():
    # d_layers=3, d_norm=none at 28x28: one logit, which depends on every pixel of the digit (instance
    # norm would all but erase its 3x3 and 2x2 maps, so it is left out)
    whole = ganforge.create("cyclegan", "digits-edges-unpaired", g_width=4, d_width=4, n_blocks=1, d_layers=3,
                            d_norm="none")
    assert whole.spec.image_size == 28 and whole.d_shape() == (3, "none")
    for d in (whole.D_A, whole.D_B):
        assert _logit_sees(d, 28).all()
        assert not any(isinstance(x, torch.nn.InstanceNorm2d) for x in d.modules())
    # the default there, 2 layers with instance norm: 5x5 logits, of which only the centre one's patch holds
    # the whole digit (instance norm links every pixel to every logit, but only through its statistics)
    default = ganforge.create("cyclegan", "digits-edges-unpaired", g_width=4, d_width=4, n_blocks=1)
    assert default.d_shape() == (2, "instance")
    assert sum(isinstance(x, torch.nn.InstanceNorm2d) for x in default.D_A.modules()) == 2
    patches = cyclegan(d_layers=2, d_norm="none", image_size=28).D_A
    assert int(_logit_sees(patches, 28).flatten(1).all(1).sum()) == 1
    assert cyclegan(d_norm="batch").d_shape() == (2, "batch")
    with pytest.raises(ConfigError, match="unknown norm 'group'"):
        cyclegan(d_norm="group")


def test_cyclegan_cycle_noise_jams_only_the_way_back():
    m, sd, b = cyclegan(lambda_id=0.0, cycle_noise=0.3), 0.3, pair_batch()
    torch.manual_seed(1)
    t = m.g_terms(b)
    torch.manual_seed(1)
    with torch.no_grad():
        fake_b, fake_a = m.G_AB(b["A"]), m.G_BA(b["B"])
        noise_b, noise_a = torch.randn_like(fake_b), torch.randn_like(fake_a)  # drawn in that order
        assert torch.allclose(t["cycle_A"], losses.l1(m.G_BA(fake_b + sd * noise_b), b["A"]))
        assert torch.allclose(t["cycle_B"], losses.l1(m.G_AB(fake_a + sd * noise_a), b["B"]))
        # D judges the translations as they are; without noise the way back sees them as they are too
        assert torch.equal(t["fake_B"], fake_b) and torch.allclose(t["G_AB_gan"], losses.ls_to(m.D_B(fake_b), 1.0))
        assert not torch.allclose(t["cycle_A"], losses.l1(m.G_BA(fake_b), b["A"]))
        quiet = cyclegan(lambda_id=0.0).g_terms(b)
        assert torch.allclose(quiet["cycle_A"], losses.l1(m.G_BA(fake_b), b["A"]))
        # one cycle only: the A cycle's way back is jammed, the B cycle's is not
        one = cyclegan(lambda_id=0.0, cycle_noise_A=0.3)
        torch.manual_seed(1)
        one = one.g_terms(b)
        assert torch.allclose(one["cycle_A"], t["cycle_A"])
        assert torch.allclose(one["cycle_B"], losses.l1(m.G_AB(fake_a), b["B"]))
    for k in ("cycle_noise", "cycle_noise_B"):
        with pytest.raises(ConfigError, match="cycle_noise settings must be >= 0"):
            cyclegan(**{k: -0.1})


def test_cyclegan_d_trains_on_the_pool(tmp_path):
    t = make_trainer("cyclegan", "digits-edges-unpaired", tmp_path, batch_size=1, pool_size=2, jitter=False, **CYC)
    m, seen, judged = t.model, [], []
    query = m.pool_B.query

    def recording(images):
        out = query(images)
        seen.append((images.clone(), out.clone()))
        return out

    m.pool_B.query = recording
    m.D_B.register_forward_hook(lambda mod, inp, out: judged.append(inp[0].detach().clone()))
    for _ in range(8):
        t.train_step({})
        t.step += 1
    assert len(seen) == 8
    # D_B's inputs per iteration: G's fake (G step, no pool), then real B and the pool's answer (D step)
    for i, (_, answer) in enumerate(seen):
        assert torch.equal(judged[3 * i + 2], answer)
    assert all(torch.equal(new, out) for new, out in seen[:2])  # filling: the new fakes themselves
    assert any(not torch.equal(new, out) for new, out in seen[2:])  # then older fakes too


def test_cyclegan_unpaired_domains_shuffle_independently(tmp_path):
    t = make_trainer("cyclegan", "digits-edges-unpaired", tmp_path, batch_size=8, jitter=False, **CYC)
    m, batches = t.model, []
    step = m.g_step
    m.g_step = lambda batch: (batches.append({k: v.clone() for k, v in batch.items()}), step(batch))[1]
    t._set_phases()
    t.train_step({})
    groups = t.raw.groups
    (batch,) = batches

    def index(field, label):
        # the item each batch row came from (edge maps repeat, so the label settles ties)
        pool, ys = groups[field][field].float().div(127.5).sub(1).flatten(1), groups[field][label]
        return [int(((pool == x.flatten()).all(1) & (ys == y)).nonzero()[0])
                for x, y in zip(batch[field], batch[label])]

    ia, ib = index("A", "yA"), index("B", "yB")
    sa, sb = t.raw.source["A"][ia], t.raw.source["B"][ib]
    assert all(s % 2 == 0 for s in sa) and all(s % 2 == 1 for s in sb)  # disjoint halves
    assert ia != ib  # different permutations: B is not A's neighbour item
    assert (sb != sa + 1).any()
    assert torch.equal(batch["yA"], groups["A"]["yA"][ia]) and torch.equal(batch["yB"], groups["B"]["yB"][ib])


def test_cyclegan_lr_is_constant_then_decays_to_zero(tmp_path):
    t = make_trainer("cyclegan", "digits-edges-unpaired", tmp_path, batch_size=1, steps=4, **CYC)
    assert t.cfg["lr_decay"] == 0.5
    lrs = []
    for _ in range(4):
        t.train_step({})
        lrs.append((t.opts["G"].param_groups[0]["lr"], t.opts["D"].param_groups[0]["lr"]))
        t.step += 1
    base = 2e-4
    assert [g for g, _ in lrs] == pytest.approx([base, base, base, base / 2])
    assert [d for _, d in lrs] == pytest.approx([base, base, base, base / 2])


# ---------------------------------------------------------------------------- training and resume
# jitter on (at 28x28 it is off unless set), so that its crop state must travel through the checkpoint
RUNS = [("pix2pix", "digits-edges", {**P2P, "batch_size": 2, "jitter": True}),
        ("cyclegan", "digits-edges-unpaired", {**CYC, "batch_size": 2, "ema": 0.9, "jitter": True})]


@pytest.mark.parametrize("model", ["pix2pix", "cyclegan"])
def test_jitter_by_size_unless_set(tmp_path, model):
    # Off on the 28x28 digit domains (a flip mirrors a digit, the resize greys the binary edge maps),
    # on from 64x64 up (the papers' photographs); a setting wins; nonsense is one line.
    data = "digits-edges" + ("-unpaired" if model == "cyclegan" else "")
    assert make_trainer(model, data, tmp_path / "a").model.loader_augment() is None
    assert make_trainer(model, data, tmp_path / "b", image_size=64).model.loader_augment() is not None
    assert make_trainer(model, data, tmp_path / "c", jitter=True).model.loader_augment() is not None
    assert make_trainer(model, data, tmp_path / "d", image_size=64, jitter=False).model.loader_augment() is None
    with pytest.raises(ConfigError, match="jitter must be true, false or auto"):
        make_trainer(model, data, tmp_path / "e", jitter="sometimes").model.loader_augment()


@pytest.mark.parametrize("model,data,sets", RUNS, ids=[r[0] for r in RUNS])
def test_train_and_resume_bit_exact(tmp_path, model, data, sets):
    kw = dict(data=data, progress=False, sets={**QUIET, **sets})
    ganforge.train(model, out=tmp_path / "one", steps=4, **kw)
    ganforge.train(model, out=tmp_path / "two", steps=2, **kw)
    ganforge.train(resume=tmp_path / "two", steps=4, progress=False)
    a, b = (load_checkpoint(tmp_path / r / "checkpoints" / "last.pt") for r in ("one", "two"))
    assert_same_checkpoint(a, b, "loader")
    assert a["loader"]["augment"] is not None  # the jitter's state travels too
    if model == "cyclegan":
        assert a["model"]["pool_A.images"].shape[0] == 50 and a["model"]["G_AB_ema.net.0.weight"] is not None


@needs_facades
@pytest.mark.parametrize("model,data,sets", [("pix2pix", "facades", P2P), ("cyclegan", "facades-unpaired", CYC)],
                         ids=["pix2pix", "cyclegan"])
def test_facades_tiny_and_resume(tmp_path, model, data, sets):
    kw = dict(data=data, progress=False, sets={**QUIET, **sets, "sample_every": 2})
    ganforge.train(model, out=tmp_path / "one", steps=3, **kw)
    ganforge.train(model, out=tmp_path / "two", steps=2, **kw)
    ganforge.train(resume=tmp_path / "two", steps=3, progress=False)
    a, b = (load_checkpoint(tmp_path / r / "checkpoints" / "last.pt") for r in ("one", "two"))
    assert_same_checkpoint(a, b, "loader")
    assert a["spec"]["channels"] == 3 and a["spec"]["in_channels"] == 3
    assert (tmp_path / "one" / "samples" / "step_000002.png").is_file()


@needs_facades
@needs_facades
def test_cyclegan_on_unpaired_facades_is_measured_on_the_test_pairs(tmp_path):
    from ganforge.run_eval import evaluate_run

    run = tmp_path / "cyc"
    assert main(["train", "cyclegan", "--data", "facades-unpaired[:4]", "--steps", "1", "--out", str(run), "--quiet",
                 *_sets({**CYC, "sample_every": 0})]) == 0
    rec = evaluate_run(run, metrics=["l1", "psnr"], n=4, progress=False)
    assert rec["data"] == "facades:test" and rec["n"] == 4 and "BtoA_l1" in rec


def test_facades_direction_reaches_the_data(tmp_path):
    t = make_trainer("pix2pix", "facades[:4]", tmp_path, batch_size=1, **P2P)
    assert t.cfg["direction"] == "auto" and "swapped" in t.raw.note  # label map -> photo
    t = make_trainer("pix2pix", "facades[:4]", tmp_path, batch_size=1, direction="AtoB", **P2P)
    assert "swapped" not in t.raw.note


def test_sample_grid_is_input_output_target(tmp_path):
    t = make_trainer("pix2pix", "digits-edges", tmp_path, batch_size=2, **P2P)
    images, nrow = t.model.sample_grid(12)
    assert nrow == 3 and images.shape == (12, 1, 32, 32)
    # the first test images, never trained on
    from ganforge.data import load_data
    test = load_data("digits-edges:test", 32).groups["AB"]
    a, b = (test[f][:4].float() / 127.5 - 1 for f in ("A", "B"))
    assert torch.equal(images[0::3], a) and torch.equal(images[2::3], b)
    train_a = t.raw.groups["AB"]["A"].flatten(1)
    assert not (train_a[:, None] == test["A"][:4].flatten(1)[None]).all(-1).any()
    assert torch.equal(images[1::3], t.model.translate(a))
    with pytest.raises(ConfigError, match="--input"):
        t.model.sample(4)


# ---------------------------------------------------------------------------- the CLI
def _cli(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def _sets(d):
    return [x for k, v in d.items() for x in ("--set", f"{k}={v}")]


@pytest.fixture(scope="module")
def p2p_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("p2p")
    assert main(["train", "pix2pix", "--data", "digits-edges", "--steps", "2", "--batch-size", "2", "--out", str(out),
                 "--force", "--quiet", *_sets({**P2P, "sample_every": 2})]) == 0
    assert (out / "samples" / "step_000002.png").is_file()
    return out


def test_cli_sample_translates_given_images(p2p_run, tmp_path, capsys):
    from PIL import Image

    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(3):
        Image.new("L", (20 + i, 28), color=40 * i).save(folder / f"{i}.png")
    code, out, err = _cli(capsys, "sample", p2p_run, "--input", folder, "--out", tmp_path / "out")
    assert code == 0, err
    assert "translated 3 images AtoB with G" in out
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == ["0.png", "1.png", "2.png"]
    assert Image.open(tmp_path / "out" / "0.png").size == (32, 32)
    code, out, err = _cli(capsys, "sample", p2p_run, "--input", folder / "1.png", "--out", tmp_path / "one")
    assert code == 0 and (tmp_path / "one" / "1.png").is_file()
    # the same image translated by the library
    model = ganforge.load(p2p_run)
    x = torch.from_numpy(np.array(Image.open(folder / "1.png").resize((32, 32), Image.Resampling.BICUBIC)))
    y = model.translate(x[None, None])
    got = torch.from_numpy(np.array(Image.open(tmp_path / "one" / "1.png")))
    assert torch.equal(got, y[0, 0].clamp(-1, 1).add(1).mul(127.5).round().to(torch.uint8))


@pytest.mark.parametrize("what,needle", [("missing", "does not exist"), ("corrupt", "cannot read image"),
                                         ("none", "--input IMAGE_OR_FOLDER")])
def test_cli_sample_errors_are_one_line(p2p_run, tmp_path, capsys, what, needle):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png")
    args = {"missing": ["--input", tmp_path / "nope"], "corrupt": ["--input", bad], "none": []}[what]
    code, out, err = _cli(capsys, "sample", p2p_run, *args, "--out", tmp_path / "o")
    assert code == 2 and len(err.strip().splitlines()) == 1 and needle in err


def test_cli_sample_input_refused_for_noise_models(tmp_path, capsys):
    run = tmp_path / "dc"
    assert main(["train", "dcgan", "--steps", "1", "--batch-size", "8", "--out", str(run), "--quiet",
                 *_sets({"g_width": 4, "d_width": 4, "z_dim": 4, "sample_every": 0})]) == 0
    code, out, err = _cli(capsys, "sample", run, "--input", tmp_path)
    assert code == 2 and "draws images from noise" in err


def test_cli_eval_translation_run(p2p_run, capsys):
    code, out, err = _cli(capsys, "eval", p2p_run, "--quiet", "--n", "40")
    assert code == 0, err
    rec = json.loads((p2p_run / "eval.jsonl").read_text().splitlines()[-1])
    assert rec["data"] == "digits-edges:test" and rec["n"] == 40 and rec["net"] == "G"
    assert {"fd", "kid", "l1", "psnr", "ssim", "label_preservation"} <= set(rec)
    assert 0 <= rec["l1"] <= 1 and 0 <= rec["label_preservation"] <= 1
    # digit -> edges: the outputs are edge maps, measured with the edge-map classifier's features
    assert rec["features"] == "digits" and "classifier-digits-edges" in rec["extractor"]


class _Oracle(torch.nn.Module):
    """The exact translation digit -> edge map, as a network: what a perfect translator outputs."""

    def forward(self, x):
        from ganforge.data.translation import edges

        u8 = ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
        return edges(u8).float() / 127.5 - 1


def test_eval_of_a_perfect_translator_uses_the_target_domains_classifier(p2p_run):
    """An oracle G (the edge map itself): l1 0, fd ~0, and label preservation equal to the edge-map
    classifier's accuracy on the real test edge maps; the digit classifier would read them worse."""
    from ganforge.data import load_data, translation_domains
    from ganforge.metrics.classifier import load_classifier, predict
    from ganforge.run_eval import _evaluate_translation
    from ganforge.training.engine import run_config

    assert translation_domains("mnist-edges:test") == ("mnist", "mnist-edges")
    assert translation_domains("digits-edges", "BtoA") == ("digits-edges", "digits")
    assert translation_domains("facades") == (None, None)
    model = ganforge.load(p2p_run)
    model.G = _Oracle()
    rec = _evaluate_translation(model, run_config(p2p_run), metrics=None, n=None, ema=False, seed=0,
                                device=torch.device("cpu"), data_root=None, progress=False)
    assert rec["l1"] == 0 and rec["ssim"] == pytest.approx(1) and abs(rec["fd"]) < 1e-3
    test = load_data("digits-edges:test", 32).groups["AB"]
    right = {w: float((predict(load_classifier(w)[0], test["B"]).argmax(1) == test["y"]).float().mean())
             for w in ("digits-edges", "digits")}
    assert rec["label_preservation"] == pytest.approx(right["digits-edges"], abs=1e-6)
    assert right["digits-edges"] > right["digits"] + 0.1


def test_cli_eval_cyclegan_measures_both_ways(tmp_path, capsys):
    run = tmp_path / "cyc"
    assert main(["train", "cyclegan", "--data", "digits-edges-unpaired", "--steps", "1", "--batch-size", "2",
                 "--out", str(run), "--quiet", *_sets({**CYC, "sample_every": 0})]) == 0
    code, out, err = _cli(capsys, "eval", run, "--quiet", "--n", "30")
    assert code == 0, err
    rec = json.loads((run / "eval.jsonl").read_text().splitlines()[-1])
    assert rec["data"] == "digits-edges-unpaired:test" and rec["net"] == "G_AB" and rec["BtoA_net"] == "G_BA"
    for key in ("fd", "kid", "l1", "psnr", "ssim", "label_preservation"):
        assert key in rec and f"BtoA_{key}" in rec
    assert rec["l1"] != rec["BtoA_l1"]
    assert "BtoA label_preservation" in out and "\nl1 " in out
