"""GAN-INT-CLS's D options from the fourth pass of issue 18: minibatch standard deviation, the
colour-free contrast channel at D's input, spectral normalisation."""
import pytest
import torch

import ganforge
from ganforge.data.translation import uncolor
from ganforge.errors import ConfigError
from ganforge.nn.spectral import is_spectral
from ganforge.text import contrast_map, pick_captions

from test_text_models import TINY_TEXT, _cache, data  # noqa: F401


def _xe(m, data, n=8):
    g = data.groups["data"]
    return g["x"][:n].float() / 127.5 - 1, m.embed(pick_captions(g["tokens"][:n]))


def test_d_mbstd_lets_d_see_a_batch_of_one_repeated_image(data):
    """With d_mbstd (and no batch norm, so nothing else couples the batch), an image's score depends on
    whether the rest of its group is the same image; without it, it does not."""
    torch.manual_seed(0)
    m = ganforge.create("gan-int-cls", data="digits-captions", **TINY_TEXT, d_norm="none", d_mbstd=4).train()
    x, e = _xe(m, data)
    same = x[:1].expand(8, -1, -1, -1)
    with torch.no_grad():
        assert m.D.mbstd(m.D.body(same))[:, -1].abs().max() < 1e-3  # no spread in a repeated batch
        assert m.D.mbstd(m.D.body(x))[:, -1].min() > 1e-3
        varied = torch.cat([x[:1], x[1:]])
        assert not torch.allclose(m.D(same, e[:1].expand(8, -1))[0], m.D(varied, e[:1].expand(8, -1))[0], atol=1e-5)
        off = ganforge.create("gan-int-cls", data="digits-captions", **TINY_TEXT, d_norm="none").train()
        assert torch.allclose(off.D(same, e[:1].expand(8, -1))[0], off.D(varied, e[:1].expand(8, -1))[0], atol=1e-5)
    for bad in (1, -2, 2.5):
        with pytest.raises(ConfigError, match="d_mbstd"):
            ganforge.create("gan-int-cls", data="digits-captions", **TINY_TEXT, d_mbstd=bad)


def test_contrast_map_is_the_digit_whatever_its_colours(data):
    g = data.groups["data"]
    x = g["x"][:16].float() / 127.5 - 1
    c = contrast_map(x)
    assert c.shape == (16, 1, 28, 28) and c.min() >= -1 and c.max() <= 1 + 1e-6
    r = torch.corrcoef(torch.stack([c.flatten(), uncolor(x).flatten()]))[0, 1]
    assert r > 0.9
    # the same digit in other colours gives the same map
    grey = uncolor(x)
    a = torch.cat([grey, -grey, -torch.ones_like(grey)], 1)  # red on cyan, say
    b = torch.cat([torch.ones_like(grey), -torch.ones_like(grey), grey], 1)
    assert torch.allclose(contrast_map(a), contrast_map(b), atol=1e-3)
    xg = x.clone().requires_grad_(True)
    contrast_map(xg).sum().backward()
    assert xg.grad.abs().sum() > 0  # G gets a gradient through it


def test_d_contrast_feeds_the_map_to_ds_input(data, monkeypatch):
    torch.manual_seed(0)
    m = ganforge.create("gan-int-cls", data="digits-captions", **TINY_TEXT, d_contrast=True).train()
    assert m.D.body[0].in_channels == 4
    x, e = _xe(m, data)
    seen = []
    m.D.body[0].register_forward_hook(lambda mod, inp, out: seen.append(inp[0]))
    m.D(x, e)
    assert torch.allclose(seen[0][:, 3:], contrast_map(x)) and torch.equal(seen[0][:, :3], x)
    assert ganforge.create("gan-int-cls", data="digits-captions", **TINY_TEXT).D.body[0].in_channels == 3


def test_spectral_norm_on_the_text_d(data):
    m = ganforge.create("gan-int-cls", data="digits-captions", **TINY_TEXT, spectral_norm=True)
    layers = [l for l in m.D.modules() if isinstance(l, (torch.nn.Conv2d, torch.nn.Linear))]
    assert layers and all(is_spectral(l) for l in layers)
    assert not any(is_spectral(l) for l in m.G.modules() if isinstance(l, (torch.nn.Conv2d, torch.nn.Linear)))


def test_d_mbd_scores_an_image_by_its_closeness_to_the_batch(data):
    torch.manual_seed(0)
    m = ganforge.create("gan-int-cls", data="digits-captions", **TINY_TEXT, d_norm="none", d_mbd=6).train()
    mbd = m.D.joint[4]
    x, e = _xe(m, data)
    seen = []
    mbd.register_forward_hook(lambda mod, inp, out: seen.append(out[:, -6:]))
    same = x[:1].expand(8, -1, -1, -1)
    with torch.no_grad():
        a, b = m.D(same, e[:1].expand(8, -1)), m.D(x, e[:1].expand(8, -1))
    assert torch.allclose(seen[0], torch.full_like(seen[0], 7.0), atol=1e-4)  # 7 identical neighbours each
    assert (seen[1] < 7.0 - 1e-3).all() and not torch.allclose(a[0], b[0], atol=1e-5)
    with pytest.raises(ConfigError, match="d_mbd"):
        ganforge.create("gan-int-cls", data="digits-captions", **TINY_TEXT, d_mbd=-1)
