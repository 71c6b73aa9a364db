"""The embedded digits, the 2-D mixtures, resizing and the device-resident loader."""
import pytest
import torch

from ganforge.data import DATASETS, TensorLoader, images_to_float, load_data, spec_of
from ganforge.errors import DataError


def test_digits_are_real_labelled_images():
    raw = load_data("digits")
    assert raw.x.shape == (1797, 1, 28, 28) and raw.x.dtype == torch.uint8
    assert raw.y.shape == (1797,) and set(raw.y.tolist()) == set(range(10))
    counts = torch.bincount(raw.y)
    assert counts.min() >= 170 and counts.max() <= 190  # the set is balanced (174..183 per class)
    assert raw.x.max() == 255 and raw.x.min() == 0
    # real digits: each class's mean image is closer to its own members than other classes' means are
    x = raw.x.float().flatten(1)
    means = torch.stack([x[raw.y == c].mean(0) for c in range(10)])
    nearest = torch.cdist(x, means).argmin(1)
    assert (nearest == raw.y).float().mean() > 0.8


def test_native_size_and_resize():
    assert load_data("digits", image_size=8).x.shape[-1] == 8
    assert load_data("digits", image_size=32).x.shape[-1] == 32
    assert spec_of("digits").shape == (1, 28, 28)  # MNIST's format, the built-in classifier's input
    assert spec_of("mnist").shape == (1, 28, 28) and spec_of("cifar10").shape == (3, 32, 32)
    assert spec_of("grid25").kind == "points" and spec_of("grid25").dim == 2


def test_toy_mixtures():
    ring = load_data("ring8").x
    assert ring.shape[1] == 2 and ring.dtype == torch.float32
    assert torch.allclose(ring.norm(dim=1).mean(), torch.tensor(1.0), atol=0.01)
    grid = load_data("grid25").x
    assert grid.abs().max() < 4.5 and set(grid.round().unique().tolist()) == {-4.0, -2.0, 0.0, 2.0, 4.0}


def test_unknown_names():
    with pytest.raises(DataError, match="mnist"):
        load_data("mnits")
    with pytest.raises(DataError, match="path"):
        load_data("folder:")


def test_loader_epochs_cover_every_item_once():
    x = torch.arange(103)
    loader = TensorLoader({"x": x}, batch_size=10, seed=0)
    seen = torch.cat([next(loader)["x"] for _ in range(10)])
    assert len(seen.unique()) == 100  # drop_last: 10 full batches from one permutation
    assert loader.epoch == 1
    next(loader)
    assert loader.epoch == 2


def test_loader_state_round_trip():
    x = torch.arange(50)
    a = TensorLoader({"x": x}, 8, seed=3)
    for _ in range(9):
        next(a)
    b = TensorLoader({"x": x}, 8, seed=99)
    b.load_state_dict(a.state_dict())
    for _ in range(20):
        assert torch.equal(next(a)["x"], next(b)["x"])


def test_loader_shards_global_batches_like_a_distributed_sampler():
    x = torch.arange(64)
    single = TensorLoader({"x": x}, 16, seed=5)
    ranks = [TensorLoader({"x": x}, 16, seed=5, rank=r, world=2) for r in range(2)]
    for _ in range(6):
        whole = next(single)["x"]
        parts = [next(r)["x"] for r in ranks]
        assert torch.equal(torch.cat(parts), whole)


def test_images_to_float_range():
    b = images_to_float({"x": torch.tensor([[0, 255]], dtype=torch.uint8)})
    assert b["x"].tolist() == [[-1.0, 1.0]]


def test_every_listed_dataset_has_a_loader_path():
    for name in DATASETS:
        spec_of(name)  # raises for a name with no shape
