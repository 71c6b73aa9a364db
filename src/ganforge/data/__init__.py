"""Data sets: the embedded digits, the 2-D mixtures, MNIST, Fashion-MNIST, CIFAR-10 and folders.

``load_data(name, ...)`` returns a :class:`RawData` (the whole set in memory) resized to the
requested image size; ``spec_of(name, ...)`` gives the shape a model is built for without
loading anything where that is known in advance.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from ..errors import DataError, closest
from .base import RawData
from .loader import TensorLoader, images_to_float


@dataclass(frozen=True)
class DataSpec:
    """What a model needs to know to size its networks."""

    kind: str  # "image" | "points"
    channels: int = 0
    image_size: int = 0
    dim: int = 0  # for points
    n_classes: int | None = None

    @property
    def shape(self) -> tuple:
        return (self.channels, self.image_size, self.image_size) if self.kind == "image" else (self.dim,)


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    kind: str
    description: str
    channels: int = 0
    image_size: int = 0
    n_classes: int | None = None
    files: str = ""  # where the loader looks, relative to the data root

    def spec(self, image_size=None) -> DataSpec:
        if self.kind == "points":
            return DataSpec("points", dim=2)
        return DataSpec("image", self.channels, image_size or self.image_size, n_classes=self.n_classes)


DATASETS = {
    "digits": DatasetInfo("digits", "image", "scikit-learn's 1,797 8x8 handwritten digits (embedded), as 28x28",
                          1, 28, 10),
    "ring8": DatasetInfo("ring8", "points", "8 Gaussians on a circle of radius 1, std 0.01 (PacGAN)"),
    "grid25": DatasetInfo("grid25", "points", "25 Gaussians on {-4,-2,0,2,4}^2, std 0.05 (PacGAN)"),
    "mnist": DatasetInfo("mnist", "image", "MNIST handwritten digits, IDX files", 1, 28, 10, "mnist/"),
    "fashion-mnist": DatasetInfo("fashion-mnist", "image", "Fashion-MNIST clothing, IDX files", 1, 28, 10,
                                 "fashion-mnist/"),
    "cifar10": DatasetInfo("cifar10", "image", "CIFAR-10 natural images, python pickles", 3, 32, 10,
                           "cifar10/cifar-10-batches-py/"),
}


def data_root(root=None) -> Path:
    """Where downloadable data sets live: ``root``, else $GANFORGE_DATA, else the user cache."""
    if root:
        return Path(root).expanduser()
    env = os.environ.get("GANFORGE_DATA")
    if env:
        return Path(env).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "ganforge" / "data"


_PART = re.compile(r"^(?P<base>.+)\[(?P<start>-?\d*):(?P<stop>-?\d*)\]$")


def split_name(name: str) -> tuple[str, slice | None]:
    """``"mnist[:8000]"`` -> ``("mnist", slice(None, 8000))``.

    A fixed, contiguous part of a data set in the data name itself, so that every command taking
    ``--data`` can train on one part and measure on another (``mnist[:8000]`` / ``mnist[8000:]``)
    with nothing else to keep in step.
    """
    m = _PART.match(name)
    if not m:
        return name, None
    num = (lambda t: int(t) if t else None)
    return m["base"], slice(num(m["start"]), num(m["stop"]))


def _check_name(name: str) -> None:
    name = split_name(name)[0]
    if name.startswith("folder:"):
        if len(name) == len("folder:"):
            raise DataError("folder: needs a path, e.g. --data folder:./my_images")
        return
    if name not in DATASETS:
        raise DataError(f"unknown data set {name!r}{closest(name, DATASETS)}; `ganforge datasets` lists them, "
                        "or use folder:PATH")


def load_raw(name: str, root=None, download: bool = False, split: str = "auto", image_size=None) -> RawData:
    """Load a data set at its native size (only the part ``name[a:b]`` names, if it names one)."""
    _check_name(name)
    name, part = split_name(name)
    if part is not None:
        raw = load_raw(name, root=root, download=download, split=split, image_size=image_size)
        n = len(raw)
        raw.x = raw.x[part]
        raw.y = raw.y[part] if raw.y is not None else None
        if not len(raw.x):
            raise DataError(f"[{part.start or ''}:{part.stop or ''}] selects nothing of {name}'s {n:,} items")
        raw.note = f"{raw.note}; items [{part.start or ''}:{part.stop or ''}] of {n:,} ({len(raw.x):,} used)"
        return raw
    if name == "digits":
        from .digits import load_digits
        return load_digits()
    if name in ("ring8", "grid25"):
        from .toy import load_toy
        return load_toy(name)
    if name in ("mnist", "fashion-mnist"):
        from .mnist import load_idx
        return load_idx(name, data_root(root), split=split, download=download)
    if name == "cifar10":
        from .cifar import load_cifar10
        return load_cifar10(data_root(root), split=split, download=download)
    from .folder import load_folder
    return load_folder(Path(name[len("folder:"):]).expanduser(), image_size=image_size)


def resize_images(x: torch.Tensor, size: int) -> torch.Tensor:
    """Resize uint8 (N, C, H, W) images to size x size, antialiased, in chunks to bound memory."""
    if x.shape[-1] == size and x.shape[-2] == size:
        return x
    out = []
    for chunk in x.split(4096):
        y = F.interpolate(chunk.float(), size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        out.append(y.round_().clamp_(0, 255).to(torch.uint8))
    return torch.cat(out)


def load_data(name: str, image_size=None, root=None, download: bool = False, split: str = "auto") -> RawData:
    """Load a data set and bring its images to ``image_size`` (default: the set's own size)."""
    raw = load_raw(name, root=root, download=download, split=split, image_size=image_size)
    base = split_name(name)[0]
    size = image_size or (DATASETS[base].image_size if base in DATASETS else None)
    if raw.kind == "image" and size:
        raw.x = resize_images(raw.x, int(size))
    return raw


def spec_of(name: str, image_size=None, raw: RawData | None = None) -> DataSpec:
    """The shape models are built for; needs the loaded data only for folders."""
    _check_name(name)
    if raw is not None:
        if raw.kind == "points":
            return DataSpec("points", dim=raw.x.shape[1])
        return DataSpec("image", raw.x.shape[1], raw.x.shape[-1], n_classes=raw.n_classes)
    if split_name(name)[0] in DATASETS:
        return DATASETS[split_name(name)[0]].spec(image_size)
    return spec_of(name, raw=load_data(name, image_size))


def availability(name: str, root=None) -> str:
    """A short phrase: is this data set usable here, and from where."""
    info = DATASETS[name]
    if not info.files:
        return "embedded"
    base = data_root(root)
    if name == "cifar10":
        found = [p for p in (base / "cifar10" / "cifar-10-batches-py", base / "cifar-10-batches-py")
                 if (p / "test_batch").exists() or (p / "data_batch_1").exists()]
        return f"available ({found[0]})" if found else f"not found under {base} (use --download)"
    folder = base / name
    files = sorted(p.name for p in folder.glob("*-ubyte*")) if folder.is_dir() else []
    if any(f.startswith("train-images") for f in files):
        return f"available ({folder})"
    if any(f.startswith("t10k-images") for f in files):
        return f"partial: test images only ({folder})"
    return f"not found under {base} (use --download)"


__all__ = ["DATASETS", "DataSpec", "RawData", "TensorLoader", "availability", "data_root", "images_to_float",
           "load_data", "load_raw", "spec_of", "resize_images", "split_name"]
