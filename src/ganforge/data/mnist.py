"""MNIST and Fashion-MNIST from their original IDX files.

Sources: MNIST by LeCun, Cortes and Burges (http://yann.lecun.com/exdb/mnist/), Fashion-MNIST by
Zalando Research (https://github.com/zalandoresearch/fashion-mnist). Both ship four files,
``{train,t10k}-{images-idx3,labels-idx1}-ubyte``, usually gzipped.

IDX format: a 4-byte magic number (two zero bytes, a type code, the number of dimensions), then
one big-endian uint32 per dimension, then the values in row-major order (big-endian when wider
than a byte). Images are ``(N, 28, 28)`` uint8, labels ``(N,)`` uint8.
"""
from __future__ import annotations

import gzip
import hashlib
import http.client
import os
import struct
import sys
import urllib.request
import zlib
from pathlib import Path

import numpy as np
import torch

from ..errors import ConfigError, DataError, closest
from .base import RawData

# IDX type code -> numpy dtype (big-endian as stored).
_IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}

FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
# Tried in order; module-level so a deployment (or a test) can change them.
MIRRORS = {
    "mnist": [
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
        "http://yann.lecun.com/exdb/mnist/",
    ],
    "fashion-mnist": [
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
    ],
}
# The published md5 sums of the gzipped files.
MD5 = {
    "mnist": {
        "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
        "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
        "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
    },
    "fashion-mnist": {
        "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
        "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
        "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
    },
}
TITLES = {"mnist": "MNIST", "fashion-mnist": "Fashion-MNIST"}
CLASS_NAMES = {
    "mnist": [str(i) for i in range(10)],
    "fashion-mnist": ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                      "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"],
}


def read_idx(path) -> np.ndarray:
    """Parse one IDX file (gzipped when its name ends in .gz) into a native-endian array."""
    path = Path(path)
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                data = f.read()
        else:
            data = path.read_bytes()
    except (OSError, EOFError, zlib.error) as e:  # bad or cut-off gzip stream, unreadable file
        raise DataError(f"corrupt IDX file {path}: {e}") from None
    if len(data) < 4:
        raise DataError(f"corrupt IDX file {path}: truncated ({len(data)} bytes, no header)")
    zero, code, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or code not in _IDX_TYPES or ndim == 0:
        raise DataError(f"corrupt IDX file {path}: bad magic number 0x{data[:4].hex()}")
    start = 4 + 4 * ndim
    if len(data) < start:
        raise DataError(f"corrupt IDX file {path}: truncated header")
    dims = struct.unpack(f">{ndim}I", data[4:start])
    dtype = np.dtype(_IDX_TYPES[code])
    want, got = int(np.prod(dims)) * dtype.itemsize, len(data) - start
    if got != want:
        problem = "truncated" if got < want else "has trailing bytes"
        raise DataError(f"corrupt IDX file {path}: {problem} (header {dims} needs {want} data "
                        f"bytes, found {got})")
    return np.frombuffer(data, dtype, offset=start).reshape(dims).astype(dtype.newbyteorder("="))


def fetch(urls, dest: Path, md5: str) -> None:
    """Download ``dest`` from the first of ``urls`` that serves it with the given md5.

    Written to a temporary file beside ``dest`` and renamed into place, so an interrupted or
    bad download never leaves a file that looks complete.
    """
    from tqdm import tqdm

    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.part")
    errors = []
    for url in urls:
        try:
            digest = hashlib.md5(usedforsecurity=False)
            with urllib.request.urlopen(url, timeout=60) as r, open(tmp, "wb") as f:
                total = int(r.headers.get("Content-Length") or 0) or None
                with tqdm(total=total, unit="B", unit_scale=True, desc=dest.name,
                          file=sys.stderr, leave=False) as bar:
                    while chunk := r.read(1 << 20):
                        f.write(chunk)
                        digest.update(chunk)
                        bar.update(len(chunk))
            if digest.hexdigest() != md5:
                raise ValueError(f"md5 {digest.hexdigest()} is not the published {md5}")
            os.replace(tmp, dest)
            return
        except (OSError, ValueError, http.client.HTTPException) as e:  # URLError is an OSError
            errors.append(f"{url}: {e}")
        finally:
            tmp.unlink(missing_ok=True)
    raise DataError(f"could not download {dest.name}: " + "; ".join(errors))


def _find(folder: Path, base: str) -> Path | None:
    """The gzipped or raw copy of one IDX file, whichever is there (gzipped first)."""
    return next((p for p in (folder / f"{base}.gz", folder / base) if p.is_file()), None)


def load_idx(name: str, root, split: str = "auto", download: bool = False) -> RawData:
    """Load MNIST or Fashion-MNIST from ``root/<name>/``.

    ``split`` is "train", "test" or "auto": the training set when its images are there, else
    the test set (``note`` says so). ``download`` fetches the missing files of the wanted split.
    """
    if name not in TITLES:
        raise ConfigError(f"unknown IDX data set {name!r}{closest(name, TITLES)}")
    if split not in ("train", "test", "auto"):
        raise ConfigError(f"split must be train, test or auto, not {split!r}")
    folder, title = Path(root).expanduser() / name, TITLES[name]
    if download:
        for base in FILES["train" if split == "auto" else split]:
            if _find(folder, base) is None:
                fetch([m + base + ".gz" for m in MIRRORS[name]], folder / f"{base}.gz",
                      MD5[name][base + ".gz"])

    note = ""
    if split == "auto":
        # Train when its images are there; else the test set, if that is there (this is the
        # partial set some machines hold); else train, so the error names the train files.
        split = "train"
        if _find(folder, FILES["train"][0]) is None and _find(folder, FILES["test"][0]):
            split = "test"
            note = (f"only the test images of {title} were found in {folder} "
                    f"(no {FILES['train'][0]}.gz), so its test split is used")
    missing = [f"{b}.gz" for b in FILES[split] if _find(folder, b) is None]
    if missing:
        raise DataError(f"{title} not found in {folder} (missing {', '.join(missing)}): pass "
                        "--download on a machine with internet, or set GANFORGE_DATA to the "
                        "folder that holds it")

    img_path, lab_path = (_find(folder, b) for b in FILES[split])
    images, labels = read_idx(img_path), read_idx(lab_path)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise DataError(f"{img_path} holds {images.dtype} {images.shape}, "
                        "not uint8 (N, H, W) images")
    if labels.ndim != 1 or len(labels) != len(images):
        raise DataError(f"{lab_path} holds {labels.shape} labels for {len(images)} images "
                        f"in {img_path.name}")
    if len(labels) and labels.max() > 9:
        raise DataError(f"{lab_path} holds label {labels.max()}, outside 0-9")
    note = f"{note}: {len(images):,} images" if note else \
        f"{title} {split} split: {len(images):,} images from {folder}"
    return RawData(name=name, kind="image", x=torch.from_numpy(images).unsqueeze(1),
                   y=torch.from_numpy(labels.astype(np.int64)), n_classes=10, note=note,
                   class_names=list(CLASS_NAMES[name]))

