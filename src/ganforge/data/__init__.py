"""Data sets: the embedded digits, the 2-D mixtures, MNIST, Fashion-MNIST, CIFAR-10, folders and
image-to-image translation sets (facades, ``aligned:PATH``, ``unaligned:PATH``, digit edge domains).

``load_data(name, ...)`` returns a :class:`RawData` (the whole set in memory) resized to the
requested image size; ``spec_of(name, ...)`` gives the shape a model is built for without
loading anything where that is known in advance.

Data names: ``BASE[:SPLIT][[a:b]]``. ``SPLIT`` is ``train``, ``test``, ``val`` (the last tenth of
train, or the set's own val folder) or ``train-val`` (train without that tenth), e.g.
``mnist:test``, ``mnist:test[:8000]``, ``facades:test``, ``aligned:./maps:val``. Without a split a
name means what it always meant (``mnist``: train, or test where only test is there; ``digits``:
all 1,797) and, for the translation sets, train. ``[a:b]`` then takes a contiguous part.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from ..errors import DataError, closest
from .names import SPLITS, _with, parse_name, split_name  # noqa: F401  (re-exported)
from .base import RawData, resize_images
from .loader import FileSource, GroupLoader, JointCrop, TensorLoader, images_to_float


@dataclass(frozen=True)
class DataSpec:
    """What a model needs to know to size its networks."""

    kind: str  # "image" | "points"
    channels: int = 0
    image_size: int = 0
    dim: int = 0  # for points
    n_classes: int | None = None
    # Translation data only (None otherwise): the input domain A's channels (``channels`` is the
    # target domain B's, as ``raw.x`` is B) and whether A and B come in pairs or shuffle apart.
    in_channels: int | None = None
    paired: bool | None = None

    @property
    def shape(self) -> tuple:
        return (self.channels, self.image_size, self.image_size) if self.kind == "image" else (self.dim,)

    @property
    def data_kind(self) -> str:
        """What ``GANModel.data_kinds`` is checked against: "paired" or "unpaired" for translation
        data, else the kind ("image", "points"); plain image models never meet grouped batches."""
        if self.paired is None:
            return self.kind
        return "paired" if self.paired else "unpaired"


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
    "facades": DatasetInfo("facades", "image", "CMP facades, paired photo A | label map B (pix2pix layout "
                           "train/ test/); 400/106", 3, 256, None, "facades/"),
    "facades-unpaired": DatasetInfo("facades-unpaired", "image", "CMP facades as two unpaired domains (CycleGAN "
                                    "layout trainA trainB testA testB)", 3, 256, None, "facades/"),
    "mnist-edges": DatasetInfo("mnist-edges", "image", "MNIST digit A paired with its edge map B", 1, 28, 10,
                               "mnist/"),
    "mnist-edges-unpaired": DatasetInfo("mnist-edges-unpaired", "image", "MNIST digits and edge maps from "
                                        "disjoint halves of train; test paired", 1, 28, 10, "mnist/"),
    "digits-edges": DatasetInfo("digits-edges", "image", "embedded digit A paired with its edge map B; test = "
                                "last 20%", 1, 28, 10),
    "digits-edges-unpaired": DatasetInfo("digits-edges-unpaired", "image", "embedded digits and edge maps from "
                                         "disjoint halves; test paired", 1, 28, 10),
    "mnist-color": DatasetInfo("mnist-color", "image", "MNIST digit A (grey) paired with B, the same digit in a "
                               "foreground and background colour drawn per image (fields fg, bg)", 3, 28, 10,
                               "mnist/"),
    "mnist-color-unpaired": DatasetInfo("mnist-color-unpaired", "image", "MNIST grey and coloured digits from "
                                        "disjoint halves of train; test paired", 3, 28, 10, "mnist/"),
    "digits-color": DatasetInfo("digits-color", "image", "embedded digit A paired with B, the same digit in two "
                                "colours drawn per image; test = last 20%", 3, 28, 10),
    "digits-color-unpaired": DatasetInfo("digits-color-unpaired", "image", "embedded grey and coloured digits "
                                         "from disjoint halves; test paired", 3, 28, 10),
    "mnist-negative": DatasetInfo("mnist-negative", "image", "MNIST digit A paired with its negative B = 255 - A",
                                  1, 28, 10, "mnist/"),
    "mnist-negative-unpaired": DatasetInfo("mnist-negative-unpaired", "image", "MNIST digits and negatives from "
                                           "disjoint halves of train; test paired", 1, 28, 10, "mnist/"),
    "digits-negative": DatasetInfo("digits-negative", "image", "embedded digit A paired with its negative B = "
                                   "255 - A; test = last 20%", 1, 28, 10),
    "digits-negative-unpaired": DatasetInfo("digits-negative-unpaired", "image", "embedded digits and negatives "
                                            "from disjoint halves; test paired", 1, 28, 10),
    "mnist-captions": DatasetInfo("mnist-captions", "image", "mnist-color's digits with 5 generated captions each "
                                  "(class, colours, thickness, slant, size; fields kept for measuring)", 3, 28, 10,
                                  "mnist/"),
    "digits-captions": DatasetInfo("digits-captions", "image", "digits-color's digits with 5 generated captions "
                                   "each; test = last 20%", 3, 28, 10),
}
CAPTIONED = ("mnist-captions", "digits-captions")  # data/captions.py; also captions:PATH
_PATH_KINDS = ("folder:", "aligned:", "unaligned:", "captions:")
DIGITS_TEST = 5  # digits:test is the last 1/5 of the 1,797


def data_root(root=None) -> Path:
    """Where downloadable data sets live: ``root``, else $GANFORGE_DATA, else the user cache."""
    if root:
        return Path(root).expanduser()
    env = os.environ.get("GANFORGE_DATA")
    if env:
        return Path(env).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "ganforge" / "data"


def has_test(name: str) -> bool:
    """Whether the data named has a test split (for paths: whether its folders are there)."""
    base = parse_name(name)[0]
    if base.startswith("aligned:"):
        return (Path(base[len("aligned:"):]).expanduser() / "test").is_dir()
    if base.startswith("unaligned:"):
        return (Path(base[len("unaligned:"):]).expanduser() / "testA").is_dir()
    if base.startswith("captions:"):
        return (Path(base[len("captions:"):]).expanduser() / "testclasses.txt").is_file()
    # Every built-in image set has one (in its files; digits: its last 20%); the 2-D mixtures do not.
    info = DATASETS.get(base)
    return info is not None and info.kind == "image"


def eval_data_name(name: str) -> str:
    """The data to measure a run trained on ``name`` against: its test split where it has one
    (``mnist`` -> ``mnist:test``, ``facades[:100]`` -> ``facades:test``), val for ``train-val``,
    else the training data itself (``digits``, which means all 1,797, ``folder:PATH``, ``ring8``)."""
    base, split, _ = parse_name(name)
    if split in ("test", "val"):
        return name
    if split == "train-val":
        return _with(base, "val")
    if base == "digits" and split is None:
        return name
    return _with(base, "test") if has_test(name) else name


def translation_domains(name: str, direction: str = "AtoB") -> tuple[str | None, str | None]:
    """The data names of the A and B domains a translator trained on ``name`` sees (``direction``
    applied), where a domain has a digit classifier of its own: ``mnist-edges`` -> ``("mnist",
    "mnist-edges")``, the digits and their edge maps; BtoA swaps them. Real photographs (facades,
    folders) have none: ``(None, None)``, measured with Inception features."""
    base = parse_name(name)[0]
    got = _translation().derived_of(base) if base in DATASETS else None
    if got is None:
        return None, None
    # The colour and negative domains are read by the source's classifier through their inverse
    # (translation.domain_view); the edge maps have a classifier of their own.
    source, kind, _ = got
    a, b = source, f"{source}{kind.suffix}"
    return (b, a) if direction == "BtoA" else (a, b)


def kind_of(name) -> str:
    """The kind of data a name stands for, without loading it: "points" for the 2-D mixtures, else
    "image" (folders, translation pairs and unknown names too; a bad name fails later, when loaded)."""
    if not isinstance(name, str):
        return "image"
    try:
        base = parse_name(name)[0]
    except DataError:  # a malformed name is reported where the data is loaded
        return "image"
    return DATASETS[base].kind if base in DATASETS else "image"


def pairs_data_name(name: str) -> str:
    """The held-out data a translator trained on ``name`` is measured on, pairs included: its test
    split, except that CycleGAN's layout of facades (two folders) is measured on the side-by-side
    layout's test pairs, the same images (n_A.jpg and n_B.jpg are the halves of n.jpg)."""
    held = eval_data_name(name)
    return "facades:test" if parse_name(held)[0] == "facades-unpaired" else held


def _check_name(name: str) -> None:
    name, split, _ = parse_name(name)
    for kind in _PATH_KINDS:
        if name.startswith(kind):
            if len(name) == len(kind):
                raise DataError(f"{kind} needs a path, e.g. --data {kind}./my_images")
            if kind == "folder:" and split == "test":
                raise DataError(f"{name} has no test split (use [a:b] to hold a part out, or :val)")
            return
    if name not in DATASETS:
        raise DataError(f"unknown data set {name!r}{closest(name, DATASETS)}; `ganforge datasets` lists them, "
                        "or use folder:PATH, aligned:PATH, unaligned:PATH or captions:PATH")
    if split is not None and DATASETS[name].kind == "points":
        raise DataError(f"{name} is sampled, it has no {split} split")


def load_raw(name: str, root=None, download: bool = False, split: str = "auto", image_size=None,
             direction: str = "AtoB", stream=None, skip_bad: bool = False) -> RawData:
    """Load a data set at its native size (only the split and part the name names, if any).

    ``split`` is used when the name has none. Translation sets (facades, aligned:, unaligned:, the
    edge domains) are built at ``image_size`` (default: the set's own); ``direction="BtoA"``
    exchanges their A and B; ``stream`` (None: only sets over ``translation.STREAM_OVER`` bytes)
    keeps folder images on disk, read by worker processes. ``skip_bad`` leaves out a folder's
    unreadable images (with a warning) instead of refusing the set.
    """
    _check_name(name)
    base, nsplit, part = parse_name(name)
    if direction not in ("AtoB", "BtoA"):
        raise DataError(f"direction must be AtoB or BtoA, not {direction!r}")
    if _is_translation(base):
        return _load_translation(base, nsplit or "train", part, root, download, image_size, direction, stream)
    if base in CAPTIONED or base.startswith("captions:"):
        return _load_captions(base, nsplit or "train", part, root, download, image_size)
    if part is not None:
        raw = load_raw(_with(base, nsplit), root=root, download=download, split=split, image_size=image_size,
                       skip_bad=skip_bad)
        n = len(raw)
        raw.take(part)
        if not len(raw.x):
            raise DataError(f"[{part.start or ''}:{part.stop or ''}] selects nothing of {name}'s {n:,} items")
        raw.note = f"{raw.note}; items [{part.start or ''}:{part.stop or ''}] of {n:,} ({len(raw.x):,} used)"
        return raw
    if nsplit in ("val", "train-val"):
        raw = load_raw(_with(base, "train"), root=root, download=download, image_size=image_size, skip_bad=skip_bad)
        cut = _translation().val_cut(len(raw))
        raw.take(slice(cut, None) if nsplit == "val" else slice(None, cut))
        raw.note = f"{raw.note}; {nsplit}: {'the last' if nsplit == 'val' else 'all but the last'} tenth of train " \
                   f"({len(raw.x):,} items)"
        return raw
    name, split = base, nsplit or split
    if name == "digits":
        if split in ("train", "test"):
            raw = load_raw("digits")
            cut = len(raw) - round(len(raw) / DIGITS_TEST)
            raw.take(slice(None, cut) if split == "train" else slice(cut, None))
            raw.note = f"{raw.note}; {split} split: {'first' if split == 'train' else 'last'} {len(raw.x):,}"
            return raw
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
    return load_folder(Path(name[len("folder:"):]).expanduser(), image_size=image_size, skip_bad=skip_bad)


def _translation():
    from . import translation
    return translation


def _is_translation(base: str) -> bool:
    return base.startswith(("aligned:", "unaligned:")) or base in DATASETS and (
        base.startswith("facades") or _translation().derived_of(base) is not None)


def _load_translation(base, split, part, root, download, image_size, direction, stream) -> RawData:
    t, swap = _translation(), direction == "BtoA"
    size = int(image_size or (DATASETS[base].image_size if base in DATASETS else 256))
    derived = t.derived_of(base) if base in DATASETS else None
    if derived is not None:
        source, kind, unpaired = derived
        # The whole split, then the part: per-image draws (colours) are keyed by the position in the split.
        src = load_raw(_with(source, split), root=root, download=download)
        index = torch.arange(len(src))
        if part is not None:
            n = len(src)
            src.take(part)
            index = index[part]
            if not len(src.x):
                raise DataError(f"[{part.start or ''}:{part.stop or ''}] selects nothing of {_with(source, split)}'s "
                                f"{n:,} items")
        src.x = resize_images(src.x, size)
        return t.derived_domains(src, kind, unpaired and split != "test", base, swap, split, index)
    if base in ("facades", "facades-unpaired"):
        path = data_root(root) / "facades"
        if not path.is_dir():
            raise DataError(f"facades not found in {path}: set GANFORGE_DATA to the folder that holds facades/")
        loader = t.load_unaligned if base == "facades-unpaired" else t.load_aligned
    else:
        kind, path = base.split(":", 1)
        loader = t.load_unaligned if kind == "unaligned" else t.load_aligned
    raw = loader(path, split, size, swap=swap, part=part, stream=stream)
    raw.name = base
    return raw


def _load_captions(base, split, part, root, download, image_size) -> RawData:
    from . import captions

    if base.startswith("captions:"):
        return captions.load_caption_folder(base[len("captions:"):], split, int(image_size or 64), part)
    source = base[: -len("-captions")]
    src = load_raw(_with(source, split), root=root, download=download)
    index = torch.arange(len(src))
    if part is not None:
        n = len(src)
        src.take(part)
        index = index[part]
        if not len(src.x):
            raise DataError(f"[{part.start or ''}:{part.stop or ''}] selects nothing of {_with(source, split)}'s "
                            f"{n:,} items")
    return captions.digit_captions(src, index, split, base, image_size)


def load_data(name: str, image_size=None, root=None, download: bool = False, split: str = "auto",
              direction: str = "AtoB", stream=None, skip_bad: bool = False) -> RawData:
    """Load a data set and bring its images to ``image_size`` (default: the set's own size)."""
    raw = load_raw(name, root=root, download=download, split=split, image_size=image_size, direction=direction,
                   stream=stream, skip_bad=skip_bad)
    base = parse_name(name)[0]
    size = image_size or (DATASETS[base].image_size if base in DATASETS else None)
    if raw.kind == "image" and size and raw.groups is None:  # grouped sets are built at their size
        raw.x = resize_images(raw.x, int(size))
    return raw


def spec_of(name: str, image_size=None, raw: RawData | None = None) -> DataSpec:
    """The shape models are built for; needs the loaded data only for folders."""
    _check_name(name)
    if raw is not None:
        if raw.kind == "points":
            return DataSpec("points", dim=raw.x.shape[1])
        if getattr(raw, "vocab", None) is not None:  # captioned images (data/captions.py): plain image data
            return DataSpec("image", raw.x.shape[1], raw.x.shape[-1], n_classes=raw.n_classes)
        if raw.groups is not None:
            return DataSpec("image", raw.x.shape[1], raw.x.shape[-1], n_classes=raw.n_classes,
                            in_channels=_in_channels(raw), paired=any("A" in _fields(g) and "B" in _fields(g)
                                                                      for g in raw.groups.values()))
        return DataSpec("image", raw.x.shape[1], raw.x.shape[-1], n_classes=raw.n_classes)
    base, split, _ = parse_name(name)
    if base in DATASETS:
        spec = DATASETS[base].spec(image_size)
        if _is_translation(base):  # the named sets have the same channels in A and B, but for -color
            derived = _translation().derived_of(base)
            paired = not base.endswith("-unpaired") or (split == "test" and derived is not None)
            spec = replace(spec, in_channels=1 if derived is not None else spec.channels, paired=paired)
        return spec
    return spec_of(name, raw=load_data(name, image_size))


def _fields(group) -> tuple:
    return tuple(group.fields if isinstance(group, FileSource) else group)


def _in_channels(raw: RawData) -> int:
    for g in raw.groups.values():
        if "A" in _fields(g):
            return g["A"].shape[1] if isinstance(g, dict) else 3  # files decode to RGB
    return raw.x.shape[1]


def availability(name: str, root=None) -> str:
    """A short phrase: is this data set usable here, and from where."""
    info = DATASETS[name]
    if not info.files:
        return "embedded"
    base = data_root(root)
    if name.startswith("facades"):
        need = "trainA" if name == "facades-unpaired" else "train"
        folder = base / "facades"
        return f"available ({folder})" if (folder / need).is_dir() else f"not found under {base} (no download)"
    if name == "cifar10":
        found = [p for p in (base / "cifar10" / "cifar-10-batches-py", base / "cifar-10-batches-py")
                 if (p / "test_batch").exists() or (p / "data_batch_1").exists()]
        return f"available ({found[0]})" if found else f"not found under {base} (use --download)"
    folder = base / info.files.rstrip("/")
    files = sorted(p.name for p in folder.glob("*-ubyte*")) if folder.is_dir() else []
    if any(f.startswith("train-images") for f in files):
        return f"available ({folder})"
    if any(f.startswith("t10k-images") for f in files):
        return f"partial: test images only ({folder})"
    return f"not found under {base} (use --download)"


__all__ = ["pairs_data_name", "translation_domains", "kind_of", "DATASETS", "SPLITS", "DataSpec", "FileSource", "GroupLoader", "JointCrop", "RawData", "TensorLoader",
           "availability", "data_root", "eval_data_name", "has_test", "images_to_float", "load_data", "load_raw",
           "parse_name", "spec_of", "resize_images", "split_name"]
