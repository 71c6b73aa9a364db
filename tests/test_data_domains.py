"""Grouped fields, splits, translation layouts, digit edge domains, joint augmentation, streaming."""
import io

import numpy as np
import pytest
import torch
from PIL import Image

from ganforge.data import (GroupLoader, JointCrop, TensorLoader, eval_data_name, images_to_float, load_data,
                           parse_name)
from ganforge.data.translation import edges
from ganforge.errors import DataError

from conftest import SHARED


def _mnist(split):
    name = {"train": "train-images-idx3-ubyte.gz", "test": "t10k-images-idx3-ubyte.gz"}[split]
    if not (SHARED / "mnist" / name).exists():
        pytest.skip(f"MNIST {split} images not found under {SHARED}/mnist")


@pytest.fixture
def facades():
    if not (SHARED / "facades" / "testB").is_dir():
        pytest.skip(f"facades not found under {SHARED}")
    return SHARED / "facades"


def _save_roundtrip(state):
    buf = io.BytesIO()
    torch.save(state, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=True)  # what checkpoints allow: tensors and plain values


def _take(loader, k):
    return [next(loader) for _ in range(k)]


def _same(a, b):
    assert len(a) == len(b)
    for p, q in zip(a, b):
        assert p.keys() == q.keys()
        for k in p:
            assert torch.equal(p[k], q[k]), k


# ---- loader ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("world", [1, 2])
def test_one_group_is_the_tensor_loader(world):
    x = torch.randint(0, 256, (23, 1, 4, 4), dtype=torch.uint8)
    y = torch.arange(23)
    for rank in range(world):
        old = TensorLoader({"x": x, "y": y}, 6, seed=5, rank=rank, world=world)
        new = GroupLoader({"data": {"x": x, "y": y}}, 6, seed=5, rank=rank, world=world)
        _same(_take(old, 12), _take(new, 12))  # 12 batches cross three epochs
    # a checkpoint written before groups (one TensorLoader's flat state) resumes exactly
    old = TensorLoader({"x": x, "y": y}, 6, seed=5)
    _take(old, 5)
    new = GroupLoader({"data": {"x": x, "y": y}}, 6, seed=99)
    new.load_state_dict(_save_roundtrip(old.state_dict()))
    _same(_take(old, 6), _take(new, 6))


def test_paired_fields_shuffle_together_unpaired_groups_do_not():
    a = torch.arange(40)
    groups = {"AB": {"A": a, "B": a * 3}, "C": {"C": torch.arange(25)}}
    batches = _take(GroupLoader(groups, 5, seed=1), 8)
    for b in batches:
        assert torch.equal(b["B"], b["A"] * 3)
    order_a = torch.cat([b["A"] for b in batches[:5]])
    order_c = torch.cat([b["C"] for b in batches[:5]])
    assert sorted(order_c.tolist()) == list(range(25))  # one epoch of C: each item once
    assert not torch.equal(order_a[:25], order_c)  # its own permutation, not A's
    assert not torch.equal(order_a[:25].sort().values, order_a[:25])
    same_size = GroupLoader({"A": {"A": torch.arange(20)}, "B": {"B": torch.arange(20)}}, 20, seed=1)
    first = next(same_size)
    assert not torch.equal(first["A"], first["B"])  # equal sizes, still not one shared permutation
    # a seed reproduces both permutations; another seed gives others
    _same(batches, _take(GroupLoader(groups, 5, seed=1), 8))
    other = _take(GroupLoader(groups, 5, seed=2), 8)
    assert not torch.equal(other[0]["A"], batches[0]["A"]) and not torch.equal(other[0]["C"], batches[0]["C"])


def test_groups_split_over_processes_like_one_process():
    groups = {"A": {"A": torch.arange(30)}, "B": {"B": torch.arange(17)}}
    whole = _take(GroupLoader(groups, 4, seed=3), 9)
    parts = [_take(GroupLoader(groups, 4, seed=3, rank=r, world=2), 9) for r in range(2)]
    for i, b in enumerate(whole):
        for k in ("A", "B"):
            assert torch.equal(b[k], torch.cat([parts[0][i][k], parts[1][i][k]]))


def test_state_round_trip_continues_identically():
    img = torch.randint(0, 256, (13, 2, 6, 6), dtype=torch.uint8)
    groups = {"AB": {"A": img, "B": 255 - img}, "C": {"C": torch.arange(9)}}
    make = lambda: GroupLoader(groups, 4, seed=7, augment=JointCrop(6, 4, seed=11))  # noqa: E731
    ref = make()
    _take(ref, 5)
    state = _save_roundtrip(ref.state_dict())
    expect = _take(ref, 7)
    fresh = make()
    fresh.load_state_dict(state)
    _same(_take(fresh, 7), expect)
    assert not torch.equal(_take(make(), 1)[0]["A"], expect[0]["A"])  # the continuation is not a restart


def test_images_to_float_converts_every_image_field():
    b = {"A": torch.full((2, 1, 2, 2), 255, dtype=torch.uint8), "B": torch.zeros(2, 3, 2, 2, dtype=torch.uint8),
         "x": torch.zeros(2, 1, 2, 2, dtype=torch.uint8), "y": torch.tensor([1, 2])}
    out = images_to_float(b)
    assert out["A"].eq(1).all() and out["B"].eq(-1).all() and out["x"].eq(-1).all()
    assert out["y"].dtype == torch.int64 and torch.equal(out["y"], b["y"])


def test_joint_crop_same_offsets_and_flip_for_a_and_b():
    n, load, crop = 64, 10, 6
    ii, jj = torch.meshgrid(torch.arange(load), torch.arange(load), indexing="ij")
    a = torch.stack([ii, jj]).to(torch.uint8).expand(n, 2, load, load).clone()  # pixel = its own coordinates
    aug = JointCrop(load, crop, seed=0)
    out = aug({"A": a, "B": a + 100, "y": torch.arange(n)}, 0, 1)
    assert out["A"].shape == (n, 2, crop, crop) and torch.equal(out["y"], torch.arange(n))
    assert torch.equal(out["B"], out["A"] + 100)  # the same crop and flip of the same sample
    rows, cols = out["A"][:, 0].long(), out["A"][:, 1].long()
    assert (rows.diff(dim=1) == 1).all()  # a crop: consecutive rows
    step = cols.diff(dim=2)
    flipped = (step == -1).all(dim=(1, 2))
    assert (flipped | (step == 1).all(dim=(1, 2))).all()
    assert 10 < flipped.sum() < n - 10  # about half flipped
    assert len(set(zip(rows[:, 0, 0].tolist(), cols[:, 0, 0].tolist()))) > 8  # offsets vary
    assert rows.min() == 0 and rows.max() == load - 1  # every offset in 0..load-crop reachable
    # each group draws its own crops: an unpaired B is not cropped like A
    loader = GroupLoader({"A": {"A": a}, "B": {"B": a.clone()}}, 64, seed=0, augment=JointCrop(load, crop, seed=0))
    b = next(loader)
    assert not torch.equal(b["A"], b["B"])  # every image is the same: only the crops can differ


# ---- names and splits ------------------------------------------------------------------------------

def test_names_and_eval_names():
    assert parse_name("mnist:test[:8000]") == ("mnist", "test", slice(None, 8000))
    assert parse_name("aligned:/d/maps:val") == ("aligned:/d/maps", "val", None)
    assert parse_name("folder:./x") == ("folder:./x", None, None)
    assert eval_data_name("mnist") == "mnist:test" and eval_data_name("mnist[:100]") == "mnist:test"
    assert eval_data_name("mnist:test[:8000]") == "mnist:test[:8000]"
    assert eval_data_name("digits") == "digits"  # plain digits is all 1,797: nothing held out
    assert eval_data_name("digits:train") == "digits:test"
    assert eval_data_name("facades") == "facades:test" and eval_data_name("cifar10:train-val") == "cifar10:val"
    assert eval_data_name("folder:./imgs") == "folder:./imgs" and eval_data_name("ring8") == "ring8"


def test_digit_splits_are_deterministic_and_disjoint():
    full = load_data("digits")
    train, test, val = load_data("digits:train"), load_data("digits:test"), load_data("digits:val")
    assert (len(train), len(test), len(val)) == (1438, 359, 143)
    assert torch.equal(torch.cat([train.x, test.x]), full.x)
    assert torch.equal(val.x, train.x[-143:]) and len(load_data("digits:train-val")) == 1438 - 143
    assert torch.equal(load_data("digits:test[:10]").x, test.x[:10])


def test_mnist_splits():
    _mnist("train")
    _mnist("test")
    assert len(load_data("mnist:train")) == 60000 and len(load_data("mnist:test")) == 10000
    val, rest = load_data("mnist:val"), load_data("mnist:train-val")
    assert (len(val), len(rest)) == (6000, 54000)
    assert len(load_data("mnist:test[:8000]")) == 8000


def test_facades_split_counts(facades):
    # streamed: counts without decoding every image
    assert len(load_data("facades", stream=True)) == 400 and len(load_data("facades:test", stream=True)) == 106
    un = load_data("facades-unpaired:test", stream=True)
    assert {k: len(g) for k, g in un.groups.items()} == {"A": 106, "B": 106}
    assert len(load_data("facades:val", stream=True)) == 40


# ---- layouts ---------------------------------------------------------------------------------------

def _rgb(path):
    return torch.from_numpy(np.asarray(Image.open(path).convert("RGB")).transpose(2, 0, 1).copy())


def test_aligned_splits_a_and_b_at_half_width(facades):
    raw = load_data("facades:test[:3]")
    (g,) = raw.groups.values()
    for i in range(3):
        for side in "AB":
            ref = _rgb(facades / f"test{side}" / f"{i + 1}_{side}.jpg").float()
            assert (g[side][i].float() - ref).abs().mean() < 5  # second JPEG encoding, README: <= 4.1/255
        assert (g["A"][i].float() - g["B"][i].float()).abs().mean() > 20  # photo and label map differ
    assert torch.equal(raw.x, g["B"])
    back = load_data("facades:test[:3]", direction="BtoA").groups["AB"]
    assert torch.equal(back["A"], g["B"]) and torch.equal(back["B"], g["A"])
    assert load_data("facades:test[:2]", image_size=32).x.shape == (2, 3, 32, 32)


def _img(path, value, size=(8, 8)):
    Image.fromarray(np.full((size[1], size[0], 3), value, dtype=np.uint8)).save(path)


def test_unaligned_layout_two_independent_groups(tmp_path):
    for side, n in (("A", 7), ("B", 4)):
        for split in ("train", "test"):
            (tmp_path / f"{split}{side}").mkdir()
            for i in range(n):
                _img(tmp_path / f"{split}{side}" / f"{i}.png", 10 * i + (0 if side == "A" else 1))
    raw = load_data(f"unaligned:{tmp_path}", image_size=8)
    assert {k: tuple(v) for k, v in raw.groups.items()} == {"A": ("A",), "B": ("B",)}
    assert (len(raw.groups["A"]["A"]), len(raw.groups["B"]["B"]), len(raw)) == (7, 4, 4)
    assert raw.groups["A"]["A"][:, 0, 0, 0].tolist() == [0, 10, 20, 30, 40, 50, 60]  # natural file order
    loader = GroupLoader(raw.batch_groups(), 4, seed=0)
    seen_b = [next(loader)["B"][:, 0, 0, 0] for _ in range(3)]
    assert all(sorted(s.tolist()) == [1, 11, 21, 31] for s in seen_b)  # B's epoch is its own 4 items
    swapped = load_data(f"unaligned:{tmp_path}:test", image_size=8, direction="BtoA")
    assert len(swapped.groups["A"]["A"]) == 4 and swapped.groups["A"]["A"][0, 0, 0, 0] == 1
    assert eval_data_name(f"unaligned:{tmp_path}") == f"unaligned:{tmp_path}:test"


# ---- derived digit domains -------------------------------------------------------------------------

def test_edges_function():
    x = torch.zeros(1, 1, 5, 5, dtype=torch.uint8)
    x[0, 0, 2, 2] = 200
    e = edges(x)
    expect = torch.zeros(5, 5, dtype=torch.uint8)
    expect[1:4, 1:4] = 255  # a lone bright pixel: its 3x3 neighbourhood changes by 200 >= 128
    assert torch.equal(e[0, 0], expect)
    assert edges(x // 2).max() == 0  # a change of 100 is under the threshold
    assert edges(torch.full((1, 1, 4, 4), 255, dtype=torch.uint8)).max() == 0  # flat: no edges


def test_digits_edges_b_is_edges_of_a():
    raw = load_data("digits-edges")
    (g,) = raw.groups.values()
    assert torch.equal(g["B"], edges(g["A"])) and torch.equal(g["A"], load_data("digits:train").x)
    assert torch.equal(g["y"], load_data("digits:train").y)
    assert g["B"].float().mean() > 10  # not an empty map
    small = load_data("digits-edges", image_size=16).groups["AB"]
    assert small["A"].shape[-1] == 16 and torch.equal(small["B"], edges(small["A"]))


def test_unpaired_halves_disjoint_test_paired():
    train = load_data("digits:train")
    raw = load_data("digits-edges-unpaired")
    ia, ib = raw.source["A"], raw.source["B"]
    assert not set(ia.tolist()) & set(ib.tolist())
    assert sorted(ia.tolist() + ib.tolist()) == list(range(len(train)))
    assert torch.equal(raw.groups["A"]["A"], train.x[ia]) and torch.equal(raw.groups["A"]["yA"], train.y[ia])
    assert torch.equal(raw.groups["B"]["B"], edges(train.x[ib])) and torch.equal(raw.groups["B"]["yB"], train.y[ib])
    test = load_data("digits-edges-unpaired:test")
    (g,) = test.groups.values()
    assert torch.equal(g["A"], load_data("digits:test").x) and torch.equal(g["B"], edges(g["A"]))


def test_mnist_edges():
    _mnist("test")
    g = load_data("mnist-edges:test[:500]").groups["AB"]
    assert len(g["A"]) == 500 and torch.equal(g["B"], edges(g["A"]))
    t = load_data("mnist-edges-unpaired:test[:50]").groups["AB"]
    assert torch.equal(t["A"], g["A"][:50]) and torch.equal(t["B"], g["B"][:50])


# ---- streaming -------------------------------------------------------------------------------------

def _aligned_folder(root, n=11):
    rng = np.random.default_rng(0)
    (root / "train").mkdir(parents=True)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (6, 12, 3), dtype=np.uint8)).save(root / "train" / f"{i}.png")
    return root


def test_streaming_equals_memory_and_resumes(tmp_path):
    root = _aligned_folder(tmp_path / "pairs")
    mem = load_data(f"aligned:{root}", image_size=6, stream=False)
    disk = load_data(f"aligned:{root}", image_size=6, stream=True)
    assert isinstance(mem.groups["AB"], dict) and not isinstance(disk.groups["AB"], dict)
    make = lambda raw: GroupLoader(raw.batch_groups(), 4, seed=9, workers=1,  # noqa: E731
                                   augment=JointCrop(6, 4, seed=1))
    expect = _take(make(mem), 9)  # 9 batches of 4 from 11 items: several epochs
    streamed = make(disk)
    _same(_take(streamed, 4), expect[:4])
    state = _save_roundtrip(streamed.state_dict())
    resumed = make(disk)
    resumed.load_state_dict(state)
    _same(_take(resumed, 5), expect[4:])
    assert torch.equal(disk.x, mem.x[:11])  # the preview is the first items


# ---- bad input -------------------------------------------------------------------------------------

def _one_line(excinfo, *words):
    msg = str(excinfo.value)
    assert "\n" not in msg
    for w in words:
        assert w in msg, msg


def test_bad_input_is_a_one_line_data_error(tmp_path):
    with pytest.raises(DataError) as e:
        load_data(f"aligned:{tmp_path / 'nowhere'}")
    _one_line(e, "does not exist")
    root = _aligned_folder(tmp_path / "p", n=2)
    (root / "train" / "1.png").write_bytes(b"not an image")
    with pytest.raises(DataError) as e:
        load_data(f"aligned:{root}", image_size=6)
    _one_line(e, "1.png")
    with pytest.raises(DataError) as e:
        load_data(f"aligned:{root}:test")
    _one_line(e, "test")
    for side in ("trainA", "trainB", "testB"):
        (tmp_path / "u" / side).mkdir(parents=True)
        _img(tmp_path / "u" / side / "0.png", 3)
    load_data(f"unaligned:{tmp_path / 'u'}", image_size=8)
    with pytest.raises(DataError) as e:
        load_data(f"unaligned:{tmp_path / 'u'}:test")
    _one_line(e, "testA")
    with pytest.raises(DataError) as e:
        load_data("aligned:")
    _one_line(e, "needs a path")
    with pytest.raises(DataError):
        load_data("ring8:test")


def test_edge_domains_turn_around_for_edges_to_digits():
    # direction=BtoA: A is the edge map, B the digit (pix2pix's edges -> digit task); labels follow the digit
    fwd, back = load_data("digits-edges"), load_data("digits-edges", direction="BtoA")
    f, b = fwd.groups["AB"], back.groups["AB"]
    assert torch.equal(b["A"], f["B"]) and torch.equal(b["B"], f["A"]) and torch.equal(b["y"], f["y"])
    assert torch.equal(b["A"], edges(b["B"]))
    un = load_data("digits-edges-unpaired", direction="BtoA").groups
    digits = load_data("digits:train").x  # the translation sets mean train without a split
    assert torch.equal(un["A"]["A"], edges(digits[0::2]))
    assert set(un) == {"A", "B"} and torch.equal(un["B"]["B"], digits[1::2])
