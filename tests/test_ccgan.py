"""CC-GAN (Denton et al. 2016): G fills exactly the removed patch from the context and the
low-resolution image, D's class head learns from the labelled subset only while its real/fake
loss reads the unlabelled batch and its in-painted copy, and the held-out accuracy is reported."""
import json

import pytest
import torch
import torch.nn.functional as F

import ganforge
from ganforge.data import load_data
from ganforge.errors import ConfigError

from conftest import QUIET

TINY = {"g_width": 8, "d_width": 8, "g_down": 2}


@pytest.fixture(scope="module")
def digits():
    return load_data("digits")


def tiny(digits=None, **over):
    m = ganforge.create("ccgan", data="digits", **{**TINY, **over})
    if digits is not None:
        m.prepare(digits)
    return m


def images(digits, n=16, start=0):
    return digits.x[start:start + n].float().div(127.5).sub(1)


def test_the_patch_removed_is_the_one_g_fills(digits):
    torch.manual_seed(0)
    m = tiny(digits, shift=0).eval()
    x = images(digits, 6)
    corners = m.hole_corners(6)
    mask = m.hole_mask(corners)
    assert mask.sum((1, 2, 3)).tolist() == [14 * 14] * 6
    for i, (r, c) in enumerate(corners.tolist()):
        assert mask[i, 0, r:r + 14, c:c + 14].all() and mask[i].sum() == 14 * 14
    seen = {}
    hook = m.G.register_forward_hook(lambda mod, inp, out: seen.update(inp=inp[0], out=out))
    filled = m.inpaint(x, corners)
    hook.remove()
    hole = mask.bool().expand_as(x)
    assert torch.equal(filled[~hole], x[~hole])  # the context is kept exactly
    assert torch.equal(filled[hole], seen["out"][hole])  # the hole is G's
    # G sees the context with the hole blanked, and the low-resolution whole image.
    context, low = seen["inp"][:, :1], seen["inp"][:, 1:]
    assert torch.equal(context[hole], torch.zeros(int(hole.sum()))) and torch.equal(context[~hole], x[~hole])
    assert torch.allclose(low, F.interpolate(F.avg_pool2d(x, 4), scale_factor=4, mode="nearest"))
    # What is inside the hole reaches G only through the low-resolution image.
    changed = torch.where(hole, -x, x)
    assert torch.equal(m.g_input(changed, mask)[:, :1], context)
    assert not torch.equal(m.g_input(changed, mask)[:, 1:], low)
    assert m.g_input(x, mask).shape[1] == 2 and tiny(lowres=False).g_input(x, mask).shape[1] == 1


def test_settings_are_checked():
    with pytest.raises(ConfigError, match="hole"):
        tiny(hole=28)
    with pytest.raises(ConfigError, match="lowres_factor"):
        tiny(lowres_factor=3)


def test_class_head_learns_from_the_labelled_subset_only(digits):
    m = tiny(digits, labels_per_class=3, shift=0, dropout=0.0)
    x, y = images(digits, 16), digits.y[:16]
    torch.manual_seed(0)
    right = m.d_step({"x": x, "y": y})
    torch.manual_seed(0)
    wrong = m.d_step({"x": x, "y": (y + 1) % 10})  # the unlabelled batch's labels are never read
    for k in ("L_sup", "L_unsup", "loss"):
        assert torch.equal(right[k], wrong[k])
    # L_sup is the cross-entropy of the labelled batch the step drew from the subset.
    torch.manual_seed(0)
    xl, yl = m.labelled_batch(16)
    torch.manual_seed(0)
    out = m.d_step({"x": x, "y": y})
    pool = m.labelled_x.float().div(127.5).sub(1).flatten(1)
    assert all((pool == row).all(1).any() for row in xl.flatten(1))
    assert torch.allclose(out["L_sup"], F.cross_entropy(m.logits(xl), yl), atol=1e-6)
    assert set(yl.tolist()) <= set(m.labelled_y.tolist()) and out["L_sup"] > 0


def test_the_unlabelled_path_judges_real_images_against_their_inpainted_copies(digits):
    m = tiny(digits, shift=0, dropout=0.0)
    x, other = images(digits, 8), images(digits, 8, start=100)
    seen = []
    hook = m.D.body[0].register_forward_hook(lambda mod, inp, out: seen.append(inp[0].detach()))
    torch.manual_seed(0)
    a = m.d_step({"x": x})
    hook.remove()
    d_in = seen[0]
    assert len(d_in) == 24  # labelled, unlabelled, in-painted
    real, fake = d_in[8:16], d_in[16:]
    assert torch.equal(real, x)
    differs = (fake != x).flatten(1).any(1)
    assert differs.all()  # every image has a hole filled by G ...
    assert ((fake != x).flatten(1).sum(1) <= 14 * 14).all()  # ... and only there
    torch.manual_seed(0)
    b = m.d_step({"x": other})
    assert torch.equal(a["L_sup"], b["L_sup"]) and not torch.equal(a["L_unsup"], b["L_unsup"])
    # G is trained through D's real/fake logit on its in-paintings.
    for p in m.G.parameters():
        p.grad = None
    m.g_step({"x": x})["loss"].backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in m.G.parameters())


def test_trains_from_the_engine_and_reports_held_out_accuracy(tmp_path):
    from ganforge.run_eval import evaluate_run

    r = ganforge.train("ccgan", data="digits[:600]", steps=4, out=tmp_path / "run", progress=False,
                       sets={**TINY, **QUIET, "batch_size": 8, "labels_per_class": 2})
    m = ganforge.load_run(r["out"])
    assert m.sample(6, seed=0).shape == (6, 1, 28, 28) and torch.equal(m.sample(6, seed=0), m.sample(6, seed=0))
    rec = evaluate_run(r["out"], metrics="classes", n=50, progress=False)
    assert rec["test_data"] == "digits[600:]" and rec["n_test"] == 1797 - 600 and 0 <= rec["test_accuracy"] <= 1
    # the baseline: the same D on the labels alone, G untouched, no unlabelled image read
    base = ganforge.train("ccgan", data="digits[:600]", steps=4, out=tmp_path / "base", progress=False,
                          sets={**TINY, **QUIET, "batch_size": 8, "labels_per_class": 2, "labels_only": True})
    rows = [json.loads(line) for line in (tmp_path / "base" / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["img_per_s"] == 0.0 and "L_sup" not in rows[-1]
    assert [ph.name for ph in ganforge.load_run(base["out"]).phases()] == ["D"]
