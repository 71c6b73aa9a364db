"""CIFAR-10 from its standard "python version".

Source: Krizhevsky, https://www.cs.toronto.edu/~kriz/cifar.html. ``cifar-10-python.tar.gz``
unpacks to ``cifar-10-batches-py/``: ``data_batch_1`` .. ``data_batch_5`` (10,000 images
each), ``test_batch`` (10,000) and ``batches.meta``. Each batch is a pickled dict with
``b"data"``, a uint8 ``(N, 3072)`` array (1024 red, then green, then blue values of a 32x32
image in row-major order) and ``b"labels"``, a list of N ints in 0-9; ``batches.meta`` has
``b"label_names"``.

Unpickling an arbitrary file can run arbitrary code, so the batches are read with an unpickler
that only lets numpy rebuild its arrays.
"""
from __future__ import annotations

import os
import pickle
import shutil
import tarfile
from pathlib import Path

import numpy as np
import torch

from ..errors import ConfigError, DataError
from .base import RawData
from .mnist import fetch

ARCHIVE, ARCHIVE_MD5 = "cifar-10-python.tar.gz", "c58f30108f718f92721af3b95e74349a"
MIRRORS = ["https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"]
BATCH_DIR = "cifar-10-batches-py"
TRAIN = [f"data_batch_{i}" for i in range(1, 6)]
TEST = ["test_batch"]
CLASS_NAMES = ["airplane", "automobile", "bird", "cat", "deer",
               "dog", "frog", "horse", "ship", "truck"]

try:  # numpy >= 2 moved the array internals to numpy._core; numpy.core warns when touched
    from numpy._core.multiarray import _reconstruct
except ImportError:  # pragma: no cover - numpy 1.x
    from numpy.core.multiarray import _reconstruct

# The only globals a CIFAR batch refers to: how numpy pickles an ndarray.
_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}


class _SafeUnpickler(pickle.Unpickler):
    """Refuses every global except numpy's array reconstruction, so a crafted file cannot
    name ``os.system`` (or anything else) for the unpickler to call."""

    def __init__(self, f, path):
        super().__init__(f, encoding="bytes")  # the batches were pickled by Python 2
        self.path = path

    def find_class(self, module, name):
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise DataError(f"refusing to load {self.path}: it asks to run {module}.{name}, "
                            "which a CIFAR-10 batch never does") from None


def _unpickle(path: Path) -> dict:
    try:
        with open(path, "rb") as f:
            obj = _SafeUnpickler(f, path).load()
    except DataError:
        raise
    except Exception as e:  # a corrupt pickle can fail in many ways (EOF, bad opcode, ...)
        raise DataError(f"corrupt CIFAR-10 file {path}: {type(e).__name__}: {e}") from None
    if not isinstance(obj, dict):
        raise DataError(f"corrupt CIFAR-10 file {path}: holds a {type(obj).__name__}, not a dict")
    # Accept str keys too, for batches re-pickled under Python 3.
    return {k.decode() if isinstance(k, bytes) else k: v for k, v in obj.items()}


def _read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    d = _unpickle(path)
    data, labels = d.get("data"), d.get("labels")
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 \
            or data.shape[1] != 3 * 32 * 32:
        raise DataError(f"corrupt CIFAR-10 file {path}: 'data' is not a uint8 (N, 3072) array")
    try:
        labels = np.asarray(labels, dtype=np.int64)
    except (TypeError, ValueError):
        labels = None
    if labels is None or labels.shape != (len(data),) \
            or (len(labels) and (labels.min() < 0 or labels.max() > 9)):
        raise DataError(f"corrupt CIFAR-10 file {path}: 'labels' is not {len(data)} ints in 0-9")
    return data.reshape(-1, 3, 32, 32), labels


def _safe_extract(archive: Path, dest: Path) -> None:
    """Unpack ``archive`` into ``dest``, refusing members that are not plain files or folders
    under ``cifar-10-batches-py/`` (absolute paths, '..', links), and renaming into place
    only once everything is out."""
    tmp = dest / f".extract.{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        with tarfile.open(archive, "r:gz") as tar:
            members = tar.getmembers()
            for m in members:
                parts = Path(m.name).parts
                if not (m.isfile() or m.isdir()) or Path(m.name).is_absolute() \
                        or ".." in parts or not parts or parts[0] != BATCH_DIR:
                    raise DataError(f"refusing to extract {archive}: "
                                    f"unexpected member {m.name!r}")
            # The "data" filter (Python >= 3.11.4) re-checks the same things inside tarfile.
            safe = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
            tar.extractall(tmp, members, **safe)
        shutil.rmtree(dest / BATCH_DIR, ignore_errors=True)
        os.replace(tmp / BATCH_DIR, dest / BATCH_DIR)
    except (tarfile.TarError, EOFError, OSError) as e:
        raise DataError(f"cannot extract {archive}: {e}") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def load_cifar10(root, split: str = "auto", download: bool = False) -> RawData:
    """Load CIFAR-10 from ``root/cifar10/cifar-10-batches-py`` (or ``root/cifar-10-batches-py``).

    ``split`` is "train" (50,000 images), "test" (10,000) or "auto": train when all five
    training batches are there, else the test batch (``note`` says so). ``download`` fetches
    and unpacks the archive when the batches are not there.
    """
    if split not in ("train", "test", "auto"):
        raise ConfigError(f"split must be train, test or auto, not {split!r}")
    root = Path(root).expanduser()
    candidates = [root / "cifar10" / BATCH_DIR, root / BATCH_DIR]
    folder = next((c for c in candidates if c.is_dir()), candidates[0])
    if download and not all((folder / b).is_file() for b in TRAIN + TEST):
        archive = root / "cifar10" / ARCHIVE
        if not archive.is_file():
            fetch(MIRRORS, archive, ARCHIVE_MD5)
        folder = candidates[0]
        _safe_extract(archive, folder.parent)

    note = ""
    if split == "auto":
        split = "train"
        if not all((folder / b).is_file() for b in TRAIN) and (folder / TEST[0]).is_file():
            split = "test"
            note = (f"not all CIFAR-10 training batches were found in {folder}, "
                    "so its test batch is used")
    missing = [b for b in (TRAIN if split == "train" else TEST) if not (folder / b).is_file()]
    if missing:
        raise DataError(f"CIFAR-10 not found in {folder} (missing {', '.join(missing)}): pass "
                        "--download on a machine with internet, or set GANFORGE_DATA to the "
                        "folder that holds it")

    batches = [_read_batch(folder / b) for b in (TRAIN if split == "train" else TEST)]
    x = np.concatenate([b[0] for b in batches])
    y = np.concatenate([b[1] for b in batches])
    names = CLASS_NAMES
    if (folder / "batches.meta").is_file():
        meta = _unpickle(folder / "batches.meta").get("label_names")
        if isinstance(meta, list) and len(meta) == 10:
            names = [n.decode() if isinstance(n, bytes) else str(n) for n in meta]
    note = f"{note}: {len(x):,} images" if note else \
        f"CIFAR-10 {split} split: {len(x):,} images from {folder}"
    return RawData(name="cifar10", kind="image", x=torch.from_numpy(x), y=torch.from_numpy(y),
                   n_classes=10, note=note, class_names=list(names))
