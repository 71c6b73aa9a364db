"""The derived colour and negative digit domains: colours drawn per image by (split, index), the
unpaired halves, uncolor's round trip, and the digit classifier reading them through their inverse."""
import itertools

import pytest
import torch

from ganforge.data import load_data, spec_of, translation_domains
from ganforge.data.translation import (COLOR_NAMES, COLORS, PALETTE, color, color_indices, domain_view, negative,
                                       uncolor)
from ganforge.errors import DataError
from ganforge.metrics.features import DigitsExtractor

from conftest import SHARED


def test_palette_is_named_and_fg_differs_from_bg():
    assert len(COLOR_NAMES) == len(COLORS) >= 8 and {"black", "white", "red", "blue"} <= set(PALETTE)
    assert [tuple(c) for c in COLORS.tolist()] == list(PALETTE.values())
    fg, bg = color_indices(torch.arange(5000), "train")
    assert (fg != bg).all()
    pairs = set(zip(fg.tolist(), bg.tolist()))
    assert len(pairs) == len(COLORS) * (len(COLORS) - 1)  # every ordered pair of distinct colours occurs


def test_colours_are_fixed_by_split_and_index():
    fg, bg = color_indices(torch.arange(100), "train")
    f2, b2 = color_indices(torch.arange(40, 60), "train")
    assert torch.equal(f2, fg[40:60]) and torch.equal(b2, bg[40:60])  # not a draw that depends on N
    ft, bt = color_indices(torch.arange(100), "test")
    assert (ft != fg).any()  # the test split has a stream of its own
    whole = load_data("digits-color").groups["AB"]
    part = load_data("digits-color[100:140]").groups["AB"]
    for k in ("fg", "bg", "B", "A", "y"):
        assert torch.equal(part[k], whole[k][100:140]), k
    f3, b3 = color_indices(torch.arange(len(whole["A"])), "train")
    assert torch.equal(whole["fg"], f3) and torch.equal(whole["bg"], b3)
    assert torch.equal(whole["B"], color(whole["A"], whole["fg"], whole["bg"]))
    assert whole["B"].shape[1] == 3 and whole["A"].shape[1] == 1


def test_color_renders_ink_and_paper():
    a = torch.tensor([0, 255, 51], dtype=torch.uint8).view(1, 1, 1, 3)
    fg, bg = COLOR_NAMES.index("red"), COLOR_NAMES.index("blue")
    out = color(a, [fg], [bg])
    assert out[0, :, 0, 0].tolist() == [0, 0, 255]  # 0: background (blue)
    assert out[0, :, 0, 1].tolist() == [255, 0, 0]  # 255: ink (red)
    assert out[0, :, 0, 2].tolist() == [51, 0, 204]  # in between: bg + (fg - bg) * a / 255


def test_test_split_keeps_colours_and_labels():
    paired = load_data("digits-color:test").groups["AB"]
    (unp,) = load_data("digits-color-unpaired:test").groups.values()
    for k in ("A", "B", "y", "fg", "bg"):
        assert torch.equal(paired[k], unp[k]), k
    assert torch.equal(paired["A"], load_data("digits:test").x)
    fg, bg = color_indices(torch.arange(len(paired["A"])), "test")
    assert torch.equal(paired["fg"], fg) and torch.equal(paired["bg"], bg)
    assert spec_of("digits-color-unpaired:test").paired and not spec_of("digits-color-unpaired").paired
    assert spec_of("digits-color").in_channels == 1 and spec_of("digits-color").channels == 3


@pytest.mark.parametrize("name", ["digits-color-unpaired", "digits-negative-unpaired"])
def test_unpaired_halves_are_disjoint(name):
    train = load_data("digits:train")
    raw = load_data(name)
    ia, ib = raw.source["A"], raw.source["B"]
    assert not set(ia.tolist()) & set(ib.tolist())
    assert sorted(ia.tolist() + ib.tolist()) == list(range(len(train)))
    assert torch.equal(raw.groups["A"]["A"], train.x[ia]) and torch.equal(raw.groups["B"]["yB"], train.y[ib])
    if "color" in name:
        fg, bg = color_indices(ib, "train")  # the colours the item has in the paired set too
        assert torch.equal(raw.groups["B"]["fg"], fg)
        assert torch.equal(raw.groups["B"]["B"], color(train.x[ib], fg, bg))
    else:
        assert torch.equal(raw.groups["B"]["B"], 255 - train.x[ib])
    back = load_data(name, direction="BtoA").groups  # the derived images become A, the digits B
    assert back["A"]["A"].shape[1] == (3 if "color" in name else 1) and torch.equal(back["B"]["B"], train.x[ib])


def test_uncolor_recovers_the_digit_for_every_colour_pair():
    a = load_data("digits:test").x[:64]
    assert (a.flatten(1).max(1).values < 255).any()  # dim digits too: no contrast stretch
    for f, b in itertools.permutations(range(len(COLORS)), 2):
        n = len(a)
        x = color(a, torch.full((n,), f), torch.full((n,), b))
        back = uncolor(x)
        assert back.shape == a.shape and back.dtype == torch.uint8
        assert (back.int() - a.int()).abs().max() <= 1, (COLOR_NAMES[f], COLOR_NAMES[b])
        # floats in [-1, 1] (a generator's outputs) give floats in [-1, 1]
        xf = x.float() / 127.5 - 1
        assert ((uncolor(xf) + 1) * 127.5 - a.float()).abs().max() <= 1.5
    assert uncolor(torch.full((1, 3, 8, 8), 77, dtype=torch.uint8)).max() == 0  # a blank image stays blank
    assert torch.equal(negative(negative(a)), a) and torch.equal(negative(a), 255 - a)


def test_classifier_reads_colour_and_negative_domains_through_their_inverse():
    assert domain_view("mnist-color:test")[0] == "mnist" and domain_view("digits-negative")[1] is negative
    assert domain_view("mnist-edges") == ("mnist-edges", None)
    assert translation_domains("digits-color-unpaired") == ("digits", "digits-color")
    assert translation_domains("mnist-negative", "BtoA") == ("mnist-negative", "mnist")
    g = load_data("digits-color:test").groups["AB"]
    y = g["y"]
    acc = (DigitsExtractor("digits-color").extract(g["B"])[1].argmax(1) == y).float().mean()
    plain = (DigitsExtractor("digits").extract(g["B"])[1].argmax(1) == y).float().mean()
    assert acc > 0.9 and plain < 0.6  # the grey reading of a colour image is no digit to the classifier
    neg = load_data("digits-negative:test").groups["AB"]
    assert (DigitsExtractor("digits-negative").extract(neg["B"])[1].argmax(1) == y).float().mean() > 0.9


def test_mnist_color_when_present():
    if not (SHARED / "mnist" / "t10k-images-idx3-ubyte.gz").exists():
        pytest.skip(f"MNIST not found under {SHARED}")
    g = load_data("mnist-color:test[:300]").groups["AB"]
    assert torch.equal(g["B"], color(g["A"], *color_indices(torch.arange(300), "test")))
    tail = load_data("mnist-color:test[-5:]").groups["AB"]
    assert torch.equal(tail["fg"], color_indices(torch.arange(9995, 10000), "test")[0])


def test_clear_errors():
    a = torch.zeros(2, 1, 4, 4, dtype=torch.uint8)
    with pytest.raises(DataError, match="one fg and one bg"):
        color(a, [1], [2])
    with pytest.raises(DataError, match="0..7"):
        color(a, [1, 8], [2, 0])
    with pytest.raises(DataError, match="grey uint8"):
        color(torch.zeros(2, 3, 4, 4, dtype=torch.uint8), [1, 1], [2, 2])
    with pytest.raises(DataError, match="split"):
        color_indices([0], "nonsense")
    with pytest.raises(DataError, match="uncolor"):
        uncolor(torch.zeros(2, 2, 4, 4))
    with pytest.raises(DataError, match="selects nothing"):
        load_data("digits-color[5000:]")
    with pytest.raises(DataError, match="disjoint halves"):
        load_data("digits-negative-unpaired[:1]")
