"""The Improved-GAN techniques (Salimans et al. 2016) as options of the default GAN steps: each
test shows the option acting, against a direct computation."""
import pytest
import torch
import torch.nn.functional as F

import ganforge
from ganforge.metrics import sample_mixture
from ganforge import config as C
from ganforge.errors import ConfigError
from ganforge.nn import HistoricalAverage, MinibatchDiscrimination
from ganforge.registry import get_model_class
from ganforge.training.engine import Trainer

from conftest import QUIET, TINY_DCGAN, TINY_GAN

# dropout 0: D is deterministic, so a step can be recomputed exactly
GAN = {**TINY_GAN, "dropout": 0.0}


def points(n=16, seed=0):
    return {"x": sample_mixture("grid25", n, generator=torch.Generator().manual_seed(seed))}


def test_feature_matching_g_loss_is_the_squared_distance_of_mean_features():
    m = ganforge.create("gan", data="grid25", feature_matching=True, **GAN)
    batch = points()
    torch.manual_seed(5)
    loss = m.g_step(batch)["loss"]
    torch.manual_seed(5)
    fake = m.generate(m.sample_inputs(16))
    direct = (m.D.features(batch["x"]).mean(0) - m.D.features(fake).mean(0)).pow(2).sum()
    assert loss.item() == pytest.approx(direct.item(), rel=1e-5)
    torch.manual_seed(5)
    plain = ganforge.create("gan", data="grid25", **GAN)
    plain.load_state_dict(m.state_dict())
    assert plain.g_step(batch)["loss"].item() != pytest.approx(loss.item())


def test_feature_matching_trains_dcgan_through_the_engine(tmp_path):
    cls = get_model_class("dcgan")
    cfg = C.resolve(cls.defaults, {"model": "dcgan", "batch_size": 8, "device": "cpu", **QUIET, **TINY_DCGAN,
                                   "feature_matching": True})
    t = Trainer(cfg, tmp_path, progress=False)
    g0 = [p.detach().clone() for p in t.model.G.parameters()]
    acc = {}
    t.train_step(acc)
    assert torch.isfinite(acc["G_loss"][0]) and acc["G_loss"][0] > 0
    assert any(not torch.equal(a, b) for a, b in zip(g0, t.model.G.parameters()))


def test_one_sided_label_smoothing_changes_only_the_real_target():
    batch = points()
    m = ganforge.create("gan", data="grid25", label_smoothing=0.1, **GAN)
    torch.manual_seed(0)
    loss = m.d_step(batch)["loss"]
    torch.manual_seed(0)
    fake = m.generate(m.sample_inputs(16))
    d_real, d_fake = m.D(batch["x"]), m.D(fake)
    direct = (F.binary_cross_entropy_with_logits(d_real, torch.full_like(d_real, 0.9))
              + F.binary_cross_entropy_with_logits(d_fake, torch.zeros_like(d_fake)))
    assert loss.item() == pytest.approx(direct.item(), rel=1e-5)
    unsmoothed = (F.binary_cross_entropy_with_logits(d_real, torch.ones_like(d_real))
                  + F.binary_cross_entropy_with_logits(d_fake, torch.zeros_like(d_fake)))
    assert abs(loss.item() - unsmoothed.item()) > 1e-4
    # for least squares the real target b moves towards a
    ls = ganforge.create("lsgan", data="grid25", label_smoothing=0.25, toy_hidden=8, toy_layers=1)
    assert ls._d_loss_kwargs()["b"] == pytest.approx(0.75)


def test_label_smoothing_needs_real_fake_targets():
    with pytest.raises(ConfigError, match="label_smoothing"):
        ganforge.create("gan", data="grid25", loss="wasserstein", label_smoothing=0.1, **GAN)
    with pytest.raises(ConfigError, match="label_smoothing"):
        ganforge.create("gan", data="grid25", label_smoothing=1.0, **GAN)


def test_minibatch_discrimination_output_depends_on_the_rest_of_the_batch():
    layer = MinibatchDiscrimination(6, kernels=4, kernel_dim=3)
    f = torch.randn(5, 6)
    out = layer(f)
    assert out.shape == (5, 10) and torch.equal(out[:, :6], f)
    g = f.clone()
    g[4] += 3.0  # change only sample 4
    out2 = layer(g)
    assert not torch.allclose(out[0, 6:], out2[0, 6:])  # sample 0's statistics moved
    # direct computation for sample 0, kernel b: sum over j != 0 of exp(-||M_0b - M_jb||_1)
    M = (f @ layer.T).view(5, 4, 3)
    direct = torch.stack([sum(torch.exp(-(M[0, b] - M[j, b]).abs().sum()) for j in range(1, 5)) for b in range(4)])
    assert torch.allclose(out[0, 6:], direct, atol=1e-6)
    # a batch of identical samples gets the largest statistics: what D learns to flag as collapse
    same = layer(f[:1].repeat(5, 1))[0, 6:]
    assert torch.allclose(same, torch.full((4,), 4.0))


def test_minibatch_discrimination_is_inserted_before_ds_head():
    m = ganforge.create("gan", data="grid25", minibatch_discrimination=True, mbd_kernels=7, **GAN)
    assert isinstance(m.D.head[0], MinibatchDiscrimination) and m.D.head[1].in_features == 16 + 7
    x = points(6)["x"]
    y = x.clone()
    y[5] = torch.tensor([4.0, -4.0])
    assert m.D(x)[0].item() != pytest.approx(m.D(y)[0].item())  # D(x_0) changed with x_5
    plain = ganforge.create("gan", data="grid25", **GAN)
    assert plain.D(x)[0].item() == pytest.approx(plain.D(y)[0].item())
    dc = ganforge.create("dcgan", minibatch_discrimination=True, **TINY_DCGAN)
    assert dc.D(torch.randn(3, *dc.spec.shape)).shape == (3,)


def test_minibatch_discrimination_head_gets_the_dcgan_init_of_the_rest_of_d():
    torch.manual_seed(0)
    m = ganforge.create("dcgan", data="digits", minibatch_discrimination=True)
    mbd, lin = m.D.head
    # PyTorch's default would give the linear layer std 1/sqrt(3 * 6372) = 0.0072 and biases != 0.
    assert lin.weight.std().item() == pytest.approx(0.02, rel=0.05) and torch.all(lin.bias == 0)
    assert mbd.T.std().item() == pytest.approx(0.02, rel=0.05) and abs(mbd.T.mean().item()) < 0.001
    # A D that keeps PyTorch's default init everywhere keeps it in the new head too.
    g = ganforge.create("gan", data="grid25", minibatch_discrimination=True, **GAN)
    assert g.D.head[1].bias.abs().sum() > 0


def test_historical_average_is_the_mean_of_past_parameters():
    net = torch.nn.Linear(3, 2)
    h = HistoricalAverage(net)
    assert h.penalty(net).item() == 0.0  # at the running mean
    snaps = [[p.detach().clone() for p in net.parameters()]]
    for _ in range(3):
        with torch.no_grad():
            for p in net.parameters():
                p.add_(torch.randn_like(p))
        h.update(net)
        snaps.append([p.detach().clone() for p in net.parameters()])
    means = [torch.stack([s[i] for s in snaps]).mean(0) for i in range(2)]
    assert all(torch.allclose(m, a, atol=1e-6) for m, a in zip(h.means(), means))
    direct = sum((p - m).pow(2).sum() for p, m in zip(net.parameters(), means))
    assert h.penalty(net).item() == pytest.approx(direct.item(), rel=1e-5)
    with torch.no_grad():
        for p, m in zip(net.parameters(), means):
            p.copy_(m)
    assert h.penalty(net).item() == pytest.approx(0.0, abs=1e-10)


def test_historical_averaging_through_the_engine(tmp_path):
    cls = get_model_class("gan")
    cfg = C.resolve(cls.defaults, {"model": "gan", "data": "grid25", "batch_size": 8, "device": "cpu", **QUIET,
                                   **GAN, "historical_averaging": 0.5})
    t = Trainer(cfg, tmp_path, progress=False)
    m = t.model
    d_snaps = [[p.detach().clone() for p in m.D.parameters()]]
    acc = {}
    for _ in range(2):
        t.train_step(acc)
        d_snaps.append([p.detach().clone() for p in m.D.parameters()])
    means = [torch.stack([s[i] for s in d_snaps]).mean(0) for i in range(len(d_snaps[0]))]
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(m.hist_avg["D"].means(), means))
    assert "hist_avg.D.count" in m.state_dict()  # saved with checkpoints, so resume keeps the history
    torch.manual_seed(0)
    with_pen = m.d_step(points(8))["loss"]
    torch.manual_seed(0)
    pen = 0.5 * m.hist_avg["D"].penalty(m.D)
    assert pen.item() > 0
    cfg0 = dict(cfg, historical_averaging=0.0)
    plain = type(m)(cfg0, m.spec)
    plain.load_state_dict({k: v for k, v in m.state_dict().items() if not k.startswith("hist_avg")})
    torch.manual_seed(0)
    assert with_pen.item() == pytest.approx(plain.d_step(points(8))["loss"].item() + pen.item(), rel=1e-5)


def test_options_are_refused_by_models_with_their_own_steps():
    with pytest.raises(ConfigError, match="feature_matching"):
        ganforge.create("ebgan", data="grid25", feature_matching=True, toy_hidden=8, toy_layers=2)
