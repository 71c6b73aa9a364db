"""Data for image-to-image translation: paired (A, B) and unpaired domains.

Layouts on disk:

- ``aligned:PATH`` (pix2pix): ``PATH/train/*.jpg`` (and ``test/``, ``val/`` where present), each
  image A and B side by side; split at half width.
- ``unaligned:PATH`` (CycleGAN): ``PATH/trainA``, ``trainB`` (and ``testA``, ``testB``), two
  independent folders, counts may differ; loaded as two groups that shuffle independently.

Derived digit domains, whose truth is known exactly (for fast tests): B is a fixed transform of
the digit A (:data:`DERIVED`): ``-edges`` (``B = edges(A)``, :func:`edges`), ``-color`` (the digit
in a foreground and a background colour of :data:`PALETTE`, drawn per image, :func:`color`) and
``-negative`` (``B = 255 - A``). The unpaired variants draw A from the even and B from the odd
items of the training split, so no pair is ever seen; their test split stays paired for measuring.
"""
from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Callable
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


# ---- derived digit domains ------------------------------------------------------------------------

# Named colours (RGB), so that a coloured digit can be put into words ("a seven in red on blue").
PALETTE = {"black": (0, 0, 0), "white": (255, 255, 255), "red": (255, 0, 0), "green": (0, 255, 0),
           "blue": (0, 0, 255), "yellow": (255, 255, 0), "cyan": (0, 255, 255), "magenta": (255, 0, 255)}
COLOR_NAMES = tuple(PALETTE)
COLORS = torch.tensor(list(PALETTE.values()), dtype=torch.uint8)  # (8, 3), row i = COLOR_NAMES[i]
# One stream of colours per split, so that an image keeps its colours whatever part is loaded.
_SPLIT_SEED = {"train": 0x5EED_0001, "test": 0x5EED_0002, "val": 0x5EED_0003, "train-val": 0x5EED_0004}


def _mix(v: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: a well-spread 64-bit hash of each value (uint64 arithmetic wraps)."""
    v = v.astype(np.uint64)
    with np.errstate(over="ignore"):
        v = (v ^ (v >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        v = (v ^ (v >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return v ^ (v >> np.uint64(31))


def color_indices(index, split: str = "train") -> tuple[torch.Tensor, torch.Tensor]:
    """Foreground and background colours (indices into :data:`COLOR_NAMES`, fg != bg) of the
    items ``index`` of ``split``: a hash of (split, index) rather than a draw from a generator, so
    item i gets the same colours whether loaded alone, in a part, or with the whole split."""
    if split not in _SPLIT_SEED:
        raise DataError(f"no colour stream for split {split!r}; splits: {', '.join(_SPLIT_SEED)}")
    idx = np.asarray(torch.as_tensor(index), dtype=np.int64)
    if (idx < 0).any():
        raise DataError("colour indices are positions in a split, so they cannot be negative")
    h = _mix(idx.astype(np.uint64) * np.uint64(2) + np.uint64(_SPLIT_SEED[split]) * np.uint64(1 << 32))
    k = len(COLOR_NAMES)
    fg = (h % np.uint64(k)).astype(np.int64)
    bg = (fg + 1 + ((h >> np.uint64(16)) % np.uint64(k - 1)).astype(np.int64)) % k  # any colour but fg
    return torch.from_numpy(fg), torch.from_numpy(bg)


def color(a: torch.Tensor, fg, bg) -> torch.Tensor:
    """Grey digits ``a`` (N, 1, H, W) uint8 as RGB: ``bg + (fg - bg) * a / 255`` per pixel, with
    ``fg``, ``bg`` (N,) colour indices into :data:`PALETTE` (ink fg, paper bg)."""
    if a.ndim != 4 or a.shape[1] != 1 or a.dtype != torch.uint8:
        raise DataError(f"color() takes grey uint8 images (N, 1, H, W), got {a.dtype} {tuple(a.shape)}")
    fg, bg = torch.as_tensor(fg).long(), torch.as_tensor(bg).long()
    if fg.shape != (len(a),) or bg.shape != (len(a),):
        raise DataError(f"color() needs one fg and one bg index per image ({len(a)}), got {tuple(fg.shape)} "
                        f"and {tuple(bg.shape)}")
    if len(a) and (min(int(fg.min()), int(bg.min())) < 0 or max(int(fg.max()), int(bg.max())) >= len(COLORS)):
        raise DataError(f"colour indices must lie in 0..{len(COLORS) - 1} ({', '.join(COLOR_NAMES)})")
    f, b = COLORS[fg].float()[:, :, None, None], COLORS[bg].float()[:, :, None, None]
    return (b + (f - b) * a.float() / 255).round_().clamp_(0, 255).to(torch.uint8)


def uncolor(x: torch.Tensor) -> torch.Tensor:
    """The grey digit in a coloured image, whatever its two colours: the background ``bg`` is the
    median colour of the 1-pixel border; the ink ``fg`` is the palette colour whose line from bg
    explains the pixels best (least squared distance of the pixels from the segment bg -> fg); each
    pixel's value is its position along that segment, ``255 * <x - bg, fg - bg> / |fg - bg|^2``,
    clamped. So ``uncolor(color(a, fg, bg)) == a`` up to rounding for every pair fg != bg, and a
    generator's output with off-palette colours reads as the nearest palette line allows.
    uint8 in, uint8 (N, 1, H, W) out; floats in [-1, 1] (a generator's) in, floats in [-1, 1] out."""
    if x.ndim != 4 or x.shape[1] not in (1, 3):
        raise DataError(f"uncolor() takes (N, 1 or 3, H, W) images, got shape {tuple(x.shape)}")
    floats = x.dtype != torch.uint8
    u = (x.float().clamp(-1, 1) + 1) * 127.5 if floats else x.float()
    if u.shape[1] == 1:
        u = u.expand(-1, 3, -1, -1)
    border = torch.cat([u[:, :, 0], u[:, :, -1], u[:, :, 1:-1, 0], u[:, :, 1:-1, -1]], 2)  # (N, 3, ring)
    bg = border.median(2).values[:, :, None, None]
    d = u - bg
    best_err = best_t = None
    for c in COLORS.float():
        v = c.view(1, 3, 1, 1) - bg
        vv = v.pow(2).sum(1, keepdim=True)
        t = ((d * v).sum(1, keepdim=True) / vv.clamp_min(1.0)).clamp_(0, 1)
        err = (d - t * v).pow(2).flatten(1).sum(1)
        err = torch.where(vv.flatten() < 100.0, torch.full_like(err, float("inf")), err)  # fg too close to bg
        if best_err is None:
            best_err, best_t = err, t
        else:
            better = err < best_err
            best_err = torch.where(better, err, best_err)
            best_t = torch.where(better[:, None, None, None], t, best_t)
    g = best_t * 255
    return g / 127.5 - 1 if floats else g.round_().to(torch.uint8)


def negative(x: torch.Tensor) -> torch.Tensor:
    """``255 - x`` for uint8 images, ``-x`` for floats in [-1, 1]: its own inverse."""
    return 255 - x if x.dtype == torch.uint8 else -x


@dataclass(frozen=True)
class Derived:
    """A digit domain B made from the digit A by a fixed rule (``DERIVED``)."""

    suffix: str  # "-edges": ``mnist-edges``, ``digits-edges-unpaired``, ...
    rule: str  # for notes: "edges(A)"
    channels: int  # of B
    # (A uint8 (N, 1, H, W), positions of the items in their split, split) -> {"B": ..., other fields}
    make: Callable
    # How the source's digit classifier reads B: None where B has a classifier of its own (edges).
    to_digit: Callable | None = None


def _make_color(a, index, split):
    fg, bg = color_indices(index, split)
    return {"B": color(a, fg, bg), "fg": fg, "bg": bg}


DERIVED = {
    "edges": Derived("-edges", "edges(A)", 1, lambda a, index, split: {"B": edges(a)}),
    "color": Derived("-color", "A in a foreground and background colour drawn per image", 3, _make_color,
                     uncolor),
    "negative": Derived("-negative", "255 - A", 1, lambda a, index, split: {"B": negative(a)}, negative),
}


def derived_of(base: str) -> tuple[str, Derived, bool] | None:
    """``"mnist-color-unpaired"`` -> ``("mnist", DERIVED["color"], True)``; None for other names."""
    unpaired = base.endswith("-unpaired")
    stem = base[: -len("-unpaired")] if unpaired else base
    for d in DERIVED.values():
        if stem.endswith(d.suffix) and len(stem) > len(d.suffix):
            return stem[: -len(d.suffix)], d, unpaired
    return None


def derived_domains(src: RawData, kind: Derived, unpaired: bool, name: str, swap: bool = False,
                    split: str = "train", index=None) -> RawData:
    """A = ``src.x``, B = ``kind.make(A)``: paired as one group with ``y``; unpaired as two groups
    from the even (A) and odd (B) items, with ``yA`` / ``yB``. The rule's other fields (the
    colours ``fg``, ``bg``) go with the image they describe. ``index`` (default 0..N-1): the
    items' positions in ``split``, which seed per-image draws (colours). ``swap`` (``direction=BtoA``)
    makes the derived images A and the digits B (e.g. drawing a digit into its outline)."""
    a, y = src.x, src.y
    idx = torch.arange(len(a))
    pos = idx if index is None else torch.as_tensor(index)
    if not unpaired:
        made = kind.make(a, pos, split)
        b = made.pop("B")
        groups = {"AB": {"A": b, "B": a, "y": y, **made} if swap else {"A": a, "B": b, "y": y, **made}}
        source = {"AB": idx}
    else:
        if len(a) < 2:
            raise DataError(f"{name} needs at least 2 images to draw two disjoint halves, has {len(a)}")
        ia, ib = idx[0::2], idx[1::2]
        if swap:
            made = kind.make(a[ia], pos[ia], split)
            groups = {"A": {"A": made.pop("B"), "yA": y[ia], **made}, "B": {"B": a[ib], "yB": y[ib]}}
        else:
            made = kind.make(a[ib], pos[ib], split)
            groups = {"A": {"A": a[ia], "yA": y[ia]}, "B": {"B": made.pop("B"), "yB": y[ib], **made}}
        source = {"A": ia, "B": ib}
    x, yy = target_of(groups)
    how = "A and B from disjoint halves (even/odd items)" if unpaired else "paired"
    what = f"B = {kind.rule}, then A and B exchanged (BtoA)" if swap else f"B = {kind.rule}"
    return RawData(name, "image", x, yy, src.n_classes, f"{src.note}; {what}, {how}", src.class_names,
                   groups=groups, source=source)


def edge_domains(src: RawData, unpaired: bool, name: str, swap: bool = False) -> RawData:
    """The edge-map domains (:func:`derived_domains` with ``DERIVED["edges"]``)."""
    return derived_domains(src, DERIVED["edges"], unpaired, name, swap)


def domain_view(name: str) -> tuple[str, Callable | None]:
    """How the built-in digit classifiers read a digit domain: ``"mnist-color"`` -> ``("mnist",
    uncolor)`` (the MNIST classifier on the uncoloured image), ``"mnist-negative"`` -> ``("mnist",
    negative)``, ``"mnist-edges"`` -> ``("mnist-edges", None)`` (a classifier of its own); any
    other name -> ``(name, None)``."""
    from .names import parse_name

    base = parse_name(name)[0] if name else name
    got = derived_of(base) if base else None
    if got is None or got[1].to_digit is None:
        return name, None
    return got[0], got[1].to_digit
