"""Loaders of real data sets in their published formats: IDX (MNIST), CIFAR-10 pickles, folders.

Everything but the real-MNIST test runs on small files the tests write themselves; nothing
here touches the network (download paths are exercised with file:// and a dead local port).
"""
from __future__ import annotations

import gzip
import hashlib
import io
import os
import pickle
import struct
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ganforge.data import cifar, mnist
from ganforge.data.cifar import load_cifar10
from ganforge.data.folder import load_folder
from ganforge.data.mnist import load_idx, read_idx
from ganforge.errors import DataError

DEAD_MIRROR = "http://127.0.0.1:9/"  # the discard port: connection refused, no network used


# ----------------------------------------------------------------------------- IDX / MNIST

def idx_bytes(a: np.ndarray) -> bytes:
    """An IDX file written independently of the loader: magic, big-endian dims, data."""
    code = {np.dtype(np.uint8): 0x08, np.dtype(np.int32): 0x0C}[a.dtype]
    head = struct.pack(">HBB", 0, code, a.ndim) + struct.pack(f">{a.ndim}I", *a.shape)
    return head + a.astype(a.dtype.newbyteorder(">")).tobytes()


def write_idx(path: Path, a: np.ndarray, gz: bool) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = idx_bytes(a)
    if gz:
        path = path.with_name(path.name + ".gz")
        data = gzip.compress(data)
    path.write_bytes(data)
    return path


def fake_split(folder: Path, split: str, n: int, gz: bool, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
    y = rng.integers(0, 10, n, dtype=np.uint8)
    img, lab = mnist.FILES[split]
    write_idx(folder / img, x, gz)
    write_idx(folder / lab, y, gz)
    return x, y


@pytest.mark.parametrize("gz", [True, False])
def test_idx_round_trip(tmp_path, gz):
    x, y = fake_split(tmp_path / "mnist", "train", 7, gz)
    fake_split(tmp_path / "mnist", "test", 3, gz, seed=1)
    d = load_idx("mnist", tmp_path, split="train")
    assert d.x.shape == (7, 1, 28, 28) and d.x.dtype == torch.uint8
    assert d.y.dtype == torch.int64
    assert np.array_equal(d.x[:, 0].numpy(), x) and np.array_equal(d.y.numpy(), y)
    assert d.n_classes == 10 and d.class_names == [str(i) for i in range(10)]
    assert "train" in d.note
    assert len(load_idx("mnist", tmp_path, split="test")) == 3
    assert len(load_idx("mnist", tmp_path)) == 7  # auto picks train when it is there


def test_idx_wider_types_are_big_endian(tmp_path):
    a = np.array([[1, -2, 70000], [3, 4, -5]], dtype=np.int32)
    p = write_idx(tmp_path / "ints-idx2-int", a, gz=False)
    assert np.array_equal(read_idx(p), a)


def test_fashion_mnist_class_names(tmp_path):
    fake_split(tmp_path / "fashion-mnist", "test", 4, gz=True)
    d = load_idx("fashion-mnist", tmp_path, split="test")
    assert d.class_names[0] == "T-shirt/top" and d.class_names[9] == "Ankle boot"
    assert d.name == "fashion-mnist"


def test_idx_bad_magic(tmp_path):
    x, y = fake_split(tmp_path / "mnist", "test", 5, gz=False)
    bad = tmp_path / "mnist" / "t10k-images-idx3-ubyte"
    bad.write_bytes(b"\x12\x34" + bad.read_bytes()[2:])
    with pytest.raises(DataError, match="t10k-images-idx3-ubyte.*bad magic"):
        load_idx("mnist", tmp_path, split="test")


@pytest.mark.parametrize("gz", [True, False])
def test_idx_truncated(tmp_path, gz):
    fake_split(tmp_path / "mnist", "test", 5, gz=gz)
    f = tmp_path / "mnist" / ("t10k-images-idx3-ubyte" + (".gz" if gz else ""))
    f.write_bytes(f.read_bytes()[:-100])
    with pytest.raises(DataError, match=r"t10k-images-idx3-ubyte.*(truncated|end-of-stream|EOF)"):
        load_idx("mnist", tmp_path, split="test")


def test_idx_label_count_mismatch(tmp_path):
    fake_split(tmp_path / "mnist", "test", 5, gz=True)
    write_idx(tmp_path / "mnist" / "t10k-labels-idx1-ubyte", np.zeros(4, np.uint8), gz=True)
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte"):
        load_idx("mnist", tmp_path, split="test")


def test_idx_missing_files(tmp_path):
    with pytest.raises(DataError, match="--download") as e:
        load_idx("mnist", tmp_path)
    msg = str(e.value)
    assert "train-images-idx3-ubyte.gz" in msg and "GANFORGE_DATA" in msg
    assert str(tmp_path / "mnist") in msg and "\n" not in msg


def test_idx_auto_uses_test_when_only_test_present(tmp_path):
    x, y = fake_split(tmp_path / "mnist", "test", 6, gz=True)
    # The shared folder's partial set: test images + labels, and train labels only.
    write_idx(tmp_path / "mnist" / "train-labels-idx1-ubyte", np.zeros(9, np.uint8), gz=True)
    d = load_idx("mnist", tmp_path, split="auto")
    assert len(d) == 6 and np.array_equal(d.x[:, 0].numpy(), x)
    assert "test" in d.note and "only" in d.note
    with pytest.raises(DataError, match="train-images-idx3-ubyte"):
        load_idx("mnist", tmp_path, split="train")


def test_idx_download_unreachable_mirrors(tmp_path, monkeypatch):
    monkeypatch.setitem(mnist.MIRRORS, "mnist", [DEAD_MIRROR, "http://127.0.0.1:9/other/"])
    with pytest.raises(DataError, match="could not download train-images-idx3-ubyte.gz"):
        load_idx("mnist", tmp_path, download=True)
    assert not any((tmp_path / "mnist").iterdir())  # no partial file left behind


def test_idx_download_from_file_mirror_checks_md5(tmp_path, monkeypatch):
    # A local "mirror" reached through urllib's file:// handler: the real download code path.
    src = tmp_path / "mirror"
    fake_split(src, "train", 4, gz=True)
    sums = {p.name: hashlib.md5(p.read_bytes()).hexdigest() for p in src.iterdir()}
    monkeypatch.setitem(mnist.MIRRORS, "mnist", [DEAD_MIRROR, src.as_uri() + "/"])
    monkeypatch.setitem(mnist.MD5, "mnist", sums)
    d = load_idx("mnist", tmp_path / "data", download=True)
    assert len(d) == 4 and "train" in d.note

    bad = dict(sums, **{"train-images-idx3-ubyte.gz": "0" * 32})
    monkeypatch.setitem(mnist.MD5, "mnist", bad)
    with pytest.raises(DataError, match="md5"):
        load_idx("mnist", tmp_path / "other", download=True)
    assert not (tmp_path / "other" / "mnist" / "train-images-idx3-ubyte.gz").exists()


def shared_root() -> Path:
    return Path(os.environ.get("GANFORGE_DATA")
                or Path(__file__).resolve().parents[1].parent / "shared" / "datasets")


def test_real_mnist_test_set():
    root = shared_root()
    if not (root / "mnist" / "t10k-images-idx3-ubyte.gz").is_file():
        pytest.skip(f"real MNIST test images not found under {root} (set GANFORGE_DATA)")
    d = load_idx("mnist", root, split="test")
    assert d.x.shape == (10000, 1, 28, 28) and d.x.dtype == torch.uint8
    counts = torch.bincount(d.y, minlength=10)
    assert len(counts) == 10 and counts.sum() == 10000
    assert int(counts.min()) > 850 and int(counts.max()) < 1200, counts
    mean = d.x.float().mean().item()
    assert 30 <= mean <= 35, mean  # MNIST's mean pixel is about 33.3 of 255
    assert d.x.max() == 255 and d.x.min() == 0
    assert d.y[:5].tolist() == [7, 2, 1, 0, 4]  # the well-known first test digits


# ----------------------------------------------------------------------------- CIFAR-10

def py2_style_pickle(obj) -> bytes:
    """Pickle as the published batches are: bytes keys, and numpy's array globals under their
    pre-numpy-2 name (protocol 3 writes globals as plain text, so the name can be swapped)."""
    return pickle.dumps(obj, protocol=3).replace(b"cnumpy._core.multiarray\n",
                                                 b"cnumpy.core.multiarray\n")


def write_batch(path: Path, data: np.ndarray, labels: list[int]):
    path.parent.mkdir(parents=True, exist_ok=True)
    d = {b"batch_label": b"testing batch", b"labels": labels, b"data": data,
         b"filenames": [b"img%d.png" % i for i in range(len(labels))]}
    path.write_bytes(py2_style_pickle(d))


def fake_cifar(folder: Path, n: int, train: bool = True, seed: int = 0):
    rng = np.random.default_rng(seed)
    out = {}
    for name in (cifar.TRAIN if train else []) + cifar.TEST:
        data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        labels = rng.integers(0, 10, n).tolist()
        write_batch(folder / name, data, labels)
        out[name] = (data, labels)
    meta = {b"label_names": [n.encode() for n in cifar.CLASS_NAMES], b"num_vis": 3072}
    (folder / "batches.meta").write_bytes(py2_style_pickle(meta))
    return out


def test_cifar_round_trip(tmp_path):
    batches = fake_cifar(tmp_path / "cifar10" / "cifar-10-batches-py", 3)
    d = load_cifar10(tmp_path, split="train")
    assert d.x.shape == (15, 3, 32, 32) and d.x.dtype == torch.uint8 and len(d.y) == 15
    data, labels = batches["data_batch_1"]
    # Channel-major layout: the first 1024 bytes are the red plane, row by row.
    assert np.array_equal(d.x[0, 0].numpy().ravel(), data[0, :1024])
    assert np.array_equal(d.x[2, 2, 31].numpy(), data[2, 3072 - 32:])
    assert d.y[:3].tolist() == labels
    assert d.class_names == cifar.CLASS_NAMES and d.n_classes == 10
    t = load_cifar10(tmp_path, split="test")
    assert np.array_equal(t.x.reshape(3, -1).numpy(), batches["test_batch"][0])


def test_cifar_flat_layout_and_auto_falls_back_to_test(tmp_path):
    fake_cifar(tmp_path / "cifar-10-batches-py", 2, train=False)
    d = load_cifar10(tmp_path)
    assert len(d) == 2 and "test" in d.note
    with pytest.raises(DataError, match="data_batch_1.*--download"):
        load_cifar10(tmp_path, split="train")


def test_cifar_missing(tmp_path):
    with pytest.raises(DataError, match="CIFAR-10 not found.*--download"):
        load_cifar10(tmp_path)


class _Evil:
    """Pickles to 'call os.system(...)', the classic pickle exploit."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_cifar_malicious_pickle_is_refused_and_not_run(tmp_path):
    folder = tmp_path / "cifar10" / "cifar-10-batches-py"
    fake_cifar(folder, 2, train=False)
    marker = tmp_path / "pwned"
    bad = {b"data": np.zeros((1, 3072), np.uint8), b"labels": [0], b"x": _Evil(marker)}
    (folder / "test_batch").write_bytes(pickle.dumps(bad, protocol=3))
    with pytest.raises(DataError, match=r"test_batch.*(posix|os)\.system"):
        load_cifar10(tmp_path, split="test")
    assert not marker.exists()


def test_cifar_unpickler_allows_only_numpy_arrays(tmp_path):
    u = cifar._SafeUnpickler(io.BytesIO(b""), "f")
    assert u.find_class("numpy.core.multiarray", "_reconstruct") is not None
    assert u.find_class("numpy", "ndarray") is np.ndarray
    for module, name in [("builtins", "eval"), ("subprocess", "Popen"), ("numpy", "load")]:
        with pytest.raises(DataError, match=f"{module}.{name}"):
            u.find_class(module, name)


def test_cifar_corrupt_batch(tmp_path):
    folder = tmp_path / "cifar10" / "cifar-10-batches-py"
    fake_cifar(folder, 2, train=False)
    (folder / "test_batch").write_bytes((folder / "test_batch").read_bytes()[:200])
    with pytest.raises(DataError, match="test_batch"):
        load_cifar10(tmp_path, split="test")
    write_batch(folder / "test_batch", np.zeros((2, 100), np.uint8), [0, 1])
    with pytest.raises(DataError, match="3072"):
        load_cifar10(tmp_path, split="test")


def make_tar(path: Path, members: dict[str, bytes]):
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def test_cifar_download_and_safe_extract(tmp_path, monkeypatch):
    src = tmp_path / "src" / "cifar-10-batches-py"
    fake_cifar(src, 2)
    archive = tmp_path / "mirror" / "cifar-10-python.tar.gz"
    archive.parent.mkdir()
    make_tar(archive, {f"cifar-10-batches-py/{p.name}": p.read_bytes() for p in src.iterdir()})
    monkeypatch.setattr(cifar, "MIRRORS", [DEAD_MIRROR, archive.as_uri()])
    monkeypatch.setattr(cifar, "ARCHIVE_MD5", hashlib.md5(archive.read_bytes()).hexdigest())
    d = load_cifar10(tmp_path / "data", download=True)
    assert len(d) == 10 and "train" in d.note

    evil = tmp_path / "mirror" / "evil.tar.gz"
    make_tar(evil, {"cifar-10-batches-py/../../escaped": b"x"})
    (tmp_path / "x").mkdir()
    with pytest.raises(DataError, match="escaped"):
        cifar._safe_extract(evil, tmp_path / "x")
    assert not (tmp_path / "escaped").exists() and list((tmp_path / "x").iterdir()) == []


def test_cifar_download_unreachable(tmp_path, monkeypatch):
    monkeypatch.setattr(cifar, "MIRRORS", [DEAD_MIRROR])
    with pytest.raises(DataError, match="could not download cifar-10-python.tar.gz"):
        load_cifar10(tmp_path, download=True)


# ----------------------------------------------------------------------------- folders

def save(path: Path, size, mode="RGB", color=(200, 30, 60)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, color if mode == "RGB" else color[0]).save(path)


def test_folder_labels_from_subfolders(tmp_path):
    save(tmp_path / "dog" / "b.png", (20, 20))
    save(tmp_path / "cat" / "a.PNG", (20, 20), color=(10, 20, 30))
    save(tmp_path / "cat" / "deeper" / "c.jpg", (20, 20))
    (tmp_path / "cat" / "notes.txt").write_text("not an image")
    d = load_folder(tmp_path)
    assert d.x.shape == (3, 3, 20, 20) and d.x.dtype == torch.uint8
    assert d.class_names == ["cat", "dog"] and d.n_classes == 2
    assert d.y.tolist() == [0, 0, 1]  # files sorted: cat/a.PNG, cat/deeper/c.jpg, dog/b.png
    assert d.x[0, :, 0, 0].tolist() == [10, 20, 30]
    assert d.x[2, :, 5, 5].tolist() == [200, 30, 60]


def test_folder_unlabelled_when_images_at_top(tmp_path):
    save(tmp_path / "top.png", (8, 8))
    save(tmp_path / "sub" / "x.png", (8, 8))
    d = load_folder(tmp_path)
    assert d.y is None and d.class_names == [] and d.x.shape == (2, 3, 8, 8)


def test_folder_resize_and_crop(tmp_path):
    im = Image.new("RGB", (60, 40), (0, 0, 255))
    im.paste((255, 0, 0), (0, 0, 10, 40))   # left and right 10 columns are cropped away
    im.paste((0, 255, 0), (50, 0, 60, 40))
    im.save(tmp_path / "wide.png")
    save(tmp_path / "small.png", (16, 16))
    d = load_folder(tmp_path, image_size=16)
    assert d.x.shape == (2, 3, 16, 16)
    assert d.x[1].reshape(3, -1).float().mean(1).tolist() == [0.0, 0.0, 255.0]  # wide.png
    d = load_folder(tmp_path)  # mixed sizes -> 64
    assert d.x.shape == (2, 3, 64, 64)


def test_folder_grey_vs_rgb(tmp_path):
    save(tmp_path / "a.png", (12, 12), mode="L", color=(77,))
    save(tmp_path / "b.bmp", (12, 12), mode="L", color=(5,))
    d = load_folder(tmp_path)
    assert d.x.shape == (2, 1, 12, 12) and d.x[0].unique().tolist() == [77]
    d3 = load_folder(tmp_path, channels=3)
    assert d3.x.shape == (2, 3, 12, 12) and d3.x[0, :, 0, 0].tolist() == [77, 77, 77]
    save(tmp_path / "c.png", (12, 12))
    assert load_folder(tmp_path).x.shape == (3, 3, 12, 12)  # one colour image -> RGB
    assert load_folder(tmp_path, channels=1).x.shape == (3, 1, 12, 12)


def test_folder_corrupt_image(tmp_path):
    save(tmp_path / "good.png", (8, 8))
    bad = tmp_path / "bad.png"
    bad.write_bytes(np.random.default_rng(0).integers(0, 256, 500, dtype=np.uint8).tobytes())
    with pytest.raises(DataError, match=r"1 of the 2 images .* cannot be read: bad\.png"):
        load_folder(tmp_path)
    # A valid header with the pixel data cut off only fails when decoded.
    good = (tmp_path / "good.png").read_bytes()
    bad.write_bytes(good[: len(good) // 2])
    with pytest.raises(DataError, match=r"1 of the 2 images .* cannot be read: bad\.png"):
        load_folder(tmp_path, image_size=8, channels=3)


def test_folder_empty_or_missing(tmp_path):
    with pytest.raises(DataError, match="no images"):
        load_folder(tmp_path)
    with pytest.raises(DataError, match="does not exist"):
        load_folder(tmp_path / "nope")
