"""DRIT: the content discriminator's gradient reaches the content encoders (and the shared layer),
cross-cycle consistency (two translations, back where one began), latent regression that trains G
alone, KL on the attribute codes; translating with drawn and example attributes."""
import pytest
import torch

import ganforge
from ganforge.nn.style import kl_normal

from conftest import random_pair

TINY = {"g_width": 4, "d_width": 4, "n_res": 1}


@pytest.fixture
def m(monkeypatch):
    torch.manual_seed(0)
    model = ganforge.create("drit", "digits-color-unpaired", **TINY)
    return model


def batch(n=2, seed=0):
    return random_pair(n, 1, 3, seed=seed)  # grey digits A, coloured digits B


def no_noise(m, monkeypatch):
    """Attributes at their means and drawn attributes fixed, so terms can be recomputed by hand."""
    monkeypatch.setattr(m, "randn", lambda n, *shape, **kw: torch.zeros(n, *shape))


def grad_sum(net):
    return sum(float(p.grad.abs().sum()) for p in net.parameters() if p.grad is not None)


def test_content_discriminator_gradient_reaches_both_content_encoders(m):
    t = m.g_terms(batch())
    t["content_adv"].backward()
    # both domains' own layers and the layer they share get the content adversary's gradient
    assert grad_sum(m.E_c.front["A"]) > 0 and grad_sum(m.E_c.front["B"]) > 0 and grad_sum(m.E_c.shared) > 0
    assert grad_sum(m.G_A) == 0 and grad_sum(m.E_a_A) == 0  # nothing else is in that term
    # and D_c itself is trained, in D's phase, to tell A's contents (1) from B's (0)
    m.zero_grad()
    out = m.d_step(batch())
    out["loss"].backward()
    assert grad_sum(m.D_c) > 0 and out["D_c"] > 0
    # the shared layer is one module in both encoders
    assert m.E_c.front["A"] is not m.E_c.front["B"]


def test_encoders_aim_at_one_half_for_d_c(m):
    # With D_c's logit held at 0 (probability 1/2), the content adversarial loss is at its minimum.
    for p in m.D_c.parameters():
        torch.nn.init.zeros_(p)
    t = m.g_terms(batch())
    assert t["content_adv"].item() == pytest.approx(2 * torch.log(torch.tensor(2.0)).item(), rel=1e-5)


def test_cross_cycle_is_two_translations_back(m, monkeypatch):
    no_noise(m, monkeypatch)
    b = batch()
    t = m.g_terms(b)
    a, bb = b["A"], b["B"]
    with torch.no_grad():
        za, zb = m.E_a_A(a)[0], m.E_a_B(bb)[0]
        u = m.G_A(m.E_c(bb, "B"), za)  # b's content, a's attribute: an A image
        v = m.G_B(m.E_c(a, "A"), zb)  # a's content, b's attribute: a B image
        a_back = m.G_A(m.E_c(v, "B"), m.E_a_A(u)[0])  # swap back
        b_back = m.G_B(m.E_c(u, "A"), m.E_a_B(v)[0])
        want = (a_back - a).abs().mean() + (b_back - bb).abs().mean()
    assert torch.allclose(t["cross_cycle"], want, atol=1e-6)
    assert t["cross_cycle"] > 0


def test_latent_regression_trains_g_alone(m, monkeypatch):
    z = torch.randn(2, 8)
    monkeypatch.setattr(m, "draw_style", lambda n: z)
    b = batch()
    t = m.g_terms(b)
    with torch.no_grad():
        r_a = m.G_A(m.E_c(b["B"], "B"), z)
        r_b = m.G_B(m.E_c(b["A"], "A"), z)
    # the attribute recovered from a random-attribute output must be that attribute (means only)
    # (the latent term reads the encoder mean, so it does not depend on the reparameterisation noise)
    want = (m.E_a_A(r_a)[0] - z).abs().mean() + (m.E_a_B(r_b)[0] - z).abs().mean()
    assert torch.allclose(t["latent"], want.detach(), atol=1e-6)
    t["latent"].backward()
    assert grad_sum(m.G_A) > 0 and grad_sum(m.G_B) > 0
    assert grad_sum(m.E_a_A) == 0 and grad_sum(m.E_a_B) == 0  # E_a is held for this term


def test_kl_on_attribute_codes(m, monkeypatch):
    b = batch()
    t = m.g_terms(b)
    with torch.no_grad():
        want = kl_normal(*m.E_a_A(b["A"])) + kl_normal(*m.E_a_B(b["B"]))
    assert torch.allclose(t["KL"], want, atol=1e-6)
    mu, logvar = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 1.0]])
    assert kl_normal(mu, logvar).item() == pytest.approx(0.5 * (1 + (2.718281828 - 1 - 1)), rel=1e-6)
    t["KL"].backward()
    assert grad_sum(m.E_a_A) > 0


def test_attributes_change_the_output_both_ways(m):
    m.eval()
    x = batch(2)["A"]
    out = m.translate_styles(x, "AtoB", k=3, seed=0)
    assert out.shape == (2, 3, 3, 28, 28)
    assert (out[:, 0] - out[:, 1]).abs().max() > 1e-4
    back = m.translate_styles(batch(2)["B"], "BtoA", k=2)
    assert back.shape == (2, 2, 1, 28, 28)
    ex = batch(1, seed=3)["B"]
    with torch.no_grad():
        want = m.G_B(m.E_c(x, "A"), m.E_a_B(ex)[0].expand(2, -1))
    assert torch.allclose(m.translate_styles(x, "AtoB", style_images=ex)[:, 0], want, atol=1e-5)


def test_trains_from_the_api(tmp_path):
    from ganforge import config as C
    from ganforge.training.engine import Trainer

    cls = ganforge.registry.get_model_class("drit")
    cfg = C.resolve(cls.defaults, {"model": "drit", "data": "digits-color-unpaired", "device": "cpu", "log_every": 1,
                                   "sample_every": 2, "ckpt_every": 0}, {**TINY, "steps": 2, "batch_size": 2})
    Trainer(cfg, tmp_path, progress=False).fit()
    rows = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert len(rows) >= 2 and "cross_cycle" in rows[-1] and "D_c" in rows[-1]
