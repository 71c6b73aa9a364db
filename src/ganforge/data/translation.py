"""Data for image-to-image translation: paired (A, B) and unpaired domains.

Layouts on disk:

- ``aligned:PATH`` (pix2pix): ``PATH/train/*.jpg`` (and ``test/``, ``val/`` where present), each
  image A and B side by side; split at half width.
- ``unaligned:PATH`` (CycleGAN): ``PATH/trainA``, ``trainB`` (and ``testA``, ``testB``), two
  independent folders, counts may differ; loaded as two groups that shuffle independently.

Derived digit domains, whose truth is known exactly (for fast tests): ``B = edges(A)``, see
:func:`edges`. The unpaired variants draw A from the even and B from the odd items of the
training split, so no pair is ever seen; their test split stays paired for measuring.
"""
from __future__ import annotations

import functools
import re
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import DataError
from .base import RawData, target_of
from .folder import EXTENSIONS, _read
from .loader import FileSource

STREAM_OVER = 8 << 30  # bytes of decoded uint8 images; larger sets stream from disk
EDGE_THRESHOLD = 128  # of the 0-255 morphological gradient
VAL_FRACTION = 10  # val is the last 1/VAL_FRACTION of train where a set has no val of its own
PREVIEW = 16  # items of a streamed target domain decoded up front (as ``x``)


def edges(x: torch.Tensor) -> torch.Tensor:
    """The edge map of uint8 images: 255 where the 3x3 morphological gradient (dilation minus
    erosion) is at least ``EDGE_THRESHOLD``, else 0. Integer-exact, so deterministic anywhere."""
    f = x.float()
    grad = F.max_pool2d(f, 3, 1, 1) + F.max_pool2d(-f, 3, 1, 1)
    return (grad >= EDGE_THRESHOLD).to(torch.uint8) * 255


def val_cut(n: int) -> int:
    """Where val starts in a training split of ``n`` items (val is the rest, at least one item)."""
    return n - max(1, n // VAL_FRACTION)


def _natural(p: Path):
    """``2.jpg`` before ``10.jpg``, so that N of one folder meets N of another."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", p.name)]


def list_images(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise DataError(f"image folder {folder} does not exist" if not folder.exists() else f"{folder} is not a folder")
    files = sorted((p for p in folder.iterdir() if p.suffix.lower() in EXTENSIONS and p.is_file()
                    and not p.name.startswith(".")), key=_natural)
    if not files:
        raise DataError(f"no images ({', '.join(sorted(e[1:] for e in EXTENSIONS))}) found in {folder}")
    return files


def _to_uint8(im, size: int) -> torch.Tensor:
    from PIL import Image

    if im.size != (size, size):
        im = im.resize((size, size), Image.Resampling.BICUBIC)
    return torch.from_numpy(np.asarray(im).transpose(2, 0, 1).copy())


def decode_side_by_side(path: Path, size: int, swap: bool = False) -> dict:
    """One pix2pix image: left half A, right half B, each resized to size x size RGB."""
    im = _read(path, "RGB")
    w, h = im.size
    if w < 2:
        raise DataError(f"{path} is {w} pixels wide, too narrow to hold A and B side by side")
    a = _to_uint8(im.crop((0, 0, w // 2, h)), size)
    b = _to_uint8(im.crop((w // 2, 0, w, h)), size)
    return {"A": b, "B": a} if swap else {"A": a, "B": b}


def decode_single(path: Path, size: int, field: str) -> dict:
    return {field: _to_uint8(_read(path, "RGB"), size)}


def _stack(source: FileSource) -> dict:
    items = [source[i] for i in range(len(source))]
    return {k: torch.stack([it[k] for it in items]) for k in items[0]}


def _streams(n_bytes: int, stream) -> bool:
    return bool(stream) if stream is not None else n_bytes > STREAM_OVER


def _cut(files: list, split: str, has_val: bool) -> list:
    if split == "val" and not has_val:
        return files[val_cut(len(files)):]
    if split == "train-val" and not has_val:
        return files[:val_cut(len(files))]
    return files


def _layout_root(path, layout: str) -> Path:
    root = Path(path).expanduser()
    if not root.is_dir():
        raise DataError(f"{layout} data folder {root} does not exist" if not root.exists()
                        else f"{root} is not a folder")
    return root


def _split_folder(split: str, has_val: bool) -> str:
    """The folder a split reads: its own, or train's for val/train-val cut from train (``_cut``)."""
    return "val" if split == "val" and has_val else "train" if split in ("train", "train-val", "val") else split


def load_aligned(path, split: str = "train", image_size: int = 256, swap: bool = False, part=None,
                 stream=None) -> RawData:
    """pix2pix layout as one group ``{"A", "B"}``; ``swap`` exchanges A and B (``direction=BtoA``)."""
    root = _layout_root(path, "aligned")
    has_val = (root / "val").is_dir()
    folder = root / _split_folder(split, has_val)
    if not folder.is_dir():
        there = sorted(p.name for p in root.iterdir() if p.is_dir())
        raise DataError(f"{root} has no {folder.name}/ folder for the {split} split "
                        f"(found: {', '.join(there) or 'none'})")
    files = _cut(list_images(folder), split, has_val)
    files = files[part] if part is not None else files
    if not files:
        raise DataError(f"the part selects none of the images in {folder}")
    s = int(image_size)
    source = FileSource(files, functools.partial(decode_side_by_side, size=s, swap=swap), ("A", "B"))
    note = f"{len(files):,} side-by-side images from {folder} ({split}), A|B{' swapped' if swap else ''}, RGB {s}x{s}"
    if _streams(len(files) * 2 * 3 * s * s, stream):
        preview = _stack(source.take(slice(0, PREVIEW)))["B"]
        return RawData(root.name, "image", preview, note=note + ", streamed from disk", groups={"AB": source})
    groups = {"AB": _stack(source)}
    x, y = target_of(groups)
    return RawData(root.name, "image", x, y, note=note, groups=groups,
                   source={"AB": torch.arange(len(files))})


def load_unaligned(path, split: str = "train", image_size: int = 256, swap: bool = False, part=None,
                   stream=None) -> RawData:
    """CycleGAN layout as two groups ``{"A": {"A"}, "B": {"B"}}`` that shuffle independently."""
    root = _layout_root(path, "unaligned")
    has_val = (root / "valA").is_dir() and (root / "valB").is_dir()
    base = _split_folder(split, has_val)
    s, groups, notes, lists = int(image_size), {}, [], {}
    for side in "AB":
        folder = root / f"{base}{side}"
        if not folder.is_dir():
            raise DataError(f"{root} has no {folder.name}/ folder for the {split} split of domain {side}")
        files = _cut(list_images(folder), split, has_val)
        files = files[part] if part is not None else files
        if not files:
            raise DataError(f"the part selects none of the images in {folder}")
        lists[side] = files
    stream_it = _streams(sum(len(f) for f in lists.values()) * 3 * s * s, stream)
    for side, files in lists.items():
        field = {"A": "B", "B": "A"}[side] if swap else side
        src = FileSource(files, functools.partial(decode_single, size=s, field=field), (field,))
        groups[field] = src if stream_it else _stack(src)
        notes.append(f"{len(files):,} {field} from {root / f'{base}{side}'}")
    groups = dict(sorted(groups.items()))  # A's group first whatever the direction
    note = f"{', '.join(notes)} ({split}, unpaired), RGB {s}x{s}"
    if stream_it:
        preview = _stack(groups["B"].take(slice(0, PREVIEW)))["B"]
        return RawData(root.name, "image", preview, note=note + ", streamed from disk", groups=groups)
    x, y = target_of(groups)
    return RawData(root.name, "image", x, y, note=note, groups=groups,
                   source={k: torch.arange(len(next(iter(g.values())))) for k, g in groups.items()})


def edge_domains(src: RawData, unpaired: bool, name: str, swap: bool = False) -> RawData:
    """A = ``src.x``, B = ``edges(A)``: paired as one group with ``y``; unpaired as two groups from
    the even (A) and odd (B) items, with ``yA`` / ``yB``. ``swap`` (``direction=BtoA``) makes the
    edge maps A and the digits B: the task of drawing a digit into its outline."""
    a, y = src.x, src.y
    idx = torch.arange(len(a))
    if not unpaired:
        e = edges(a)
        groups = {"AB": {"A": e, "B": a, "y": y} if swap else {"A": a, "B": e, "y": y}}
        source = {"AB": idx}
    else:
        if len(a) < 2:
            raise DataError(f"{name} needs at least 2 images to draw two disjoint halves, has {len(a)}")
        ia, ib = idx[0::2], idx[1::2]
        if swap:
            groups = {"A": {"A": edges(a[ia]), "yA": y[ia]}, "B": {"B": a[ib], "yB": y[ib]}}
        else:
            groups = {"A": {"A": a[ia], "yA": y[ia]}, "B": {"B": edges(a[ib]), "yB": y[ib]}}
        source = {"A": ia, "B": ib}
    x, yy = target_of(groups)
    how = "A and B from disjoint halves (even/odd items)" if unpaired else "paired"
    what = "A = edges(B)" if swap else "B = edges(A)"
    return RawData(name, "image", x, yy, src.n_classes, f"{src.note}; {what}, {how}", src.class_names,
                   groups=groups, source=source)
