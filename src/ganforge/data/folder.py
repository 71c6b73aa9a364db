"""Any folder of image files (png, jpg/jpeg, bmp, webp, gif), searched recursively.

The layout follows torchvision's ``ImageFolder`` convention: when every image sits inside a
first-level sub-folder, the sub-folder names (sorted) are the classes; otherwise the images
are unlabelled. Images are decoded with Pillow, centre-cropped to a square and resized.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..errors import ConfigError, DataError
from .base import RawData

EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".gif"}
# Modes that hold no colour. Palette ("P") images count as colour even when their palette
# is grey: telling would mean decoding every file twice.
_GREY_MODES = {"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F"}
_PROGRESS_OVER = 2000  # files; below this a bar is only noise
_NAMED = 5  # bad files named in a message; the rest are counted


def _read(path: Path, mode: str) -> Image.Image:
    """Fully decode one image (``Image.open`` alone only reads the header) into ``mode``."""
    try:
        with Image.open(path) as im:
            im.load()
            return im.convert(mode)
    except Exception as e:  # Pillow raises many types for bad data (OSError, SyntaxError, ...)
        raise DataError(f"cannot read image {path}: {e}") from None


def _header(path: Path) -> tuple[str, tuple[int, int]]:
    """Mode and size from the header alone, cheap enough to pass over every file first."""
    try:
        with Image.open(path) as im:
            return im.mode, im.size
    except Exception as e:
        raise DataError(f"cannot read image {path}: {e}") from None


def _why(err: DataError, path: Path) -> str:
    """Pillow's reason alone: the message minus our prefix, with the file's path shortened to its name."""
    return str(err).split(": ", 1)[-1].replace(str(path), path.name)


def _bad_files(root: Path, bad: dict) -> str:
    """'a.png (why), b.png, ... and N more': the first few unreadable files, the first with its reason."""
    names = [str(p.relative_to(root)) for p in bad]
    shown = ", ".join(names[:_NAMED]) + (f" and {len(names) - _NAMED} more" if len(names) > _NAMED else "")
    first = next(iter(bad.values()))
    return f"{shown} (first: {first})"


def load_folder(path, image_size: int | None = None, channels: int | None = None, skip_bad: bool = False) -> RawData:
    """Load every image under ``path`` as uint8 ``(N, channels, image_size, image_size)``.

    ``channels`` is 1 (greyscale) or 3 (RGB); by default 1 when every image is greyscale.
    ``image_size`` defaults to the images' own size when they are all the same square size,
    else 64. Unreadable files are all named in one error, or with ``skip_bad`` left out with a
    warning.
    """
    from tqdm import tqdm

    root = Path(path).expanduser()
    if not root.is_dir():
        raise DataError(f"image folder {root} does not exist" if not root.exists()
                        else f"{root} is not a folder")
    if channels not in (None, 1, 3):
        raise ConfigError(f"channels must be 1 or 3, not {channels!r}")
    if image_size is not None and int(image_size) < 1:
        raise ConfigError(f"image_size must be a positive number of pixels, not {image_size!r}")
    # Hidden files and folders are skipped: they are editor/OS litter such as macOS's
    # "._name.png" resource forks, which look like images but are not.
    files = sorted(p for p in root.rglob("*")
                   if p.suffix.lower() in EXTENSIONS and p.is_file()
                   and not any(part.startswith(".") for part in p.relative_to(root).parts))
    if not files:
        raise DataError(f"no images ({', '.join(sorted(e[1:] for e in EXTENSIONS))}) "
                        f"found in {root}")

    rel = [p.relative_to(root).parts for p in files]
    class_names = sorted({r[0] for r in rel}) if all(len(r) > 1 for r in rel) else []
    y = None
    if class_names:
        index = {c: i for i, c in enumerate(class_names)}
        y = torch.tensor([index[r[0]] for r in rel], dtype=torch.int64)

    bar = len(files) > _PROGRESS_OVER
    bad = {}  # path -> why, for every file that cannot be read: reported together, not one per run
    if channels is None or image_size is None:
        headers = []
        for p in tqdm(files, desc=f"scanning {root.name}", unit="img", disable=not bar, leave=False):
            try:
                headers.append(_header(p))
            except DataError as e:
                bad[p] = _why(e, p)
        if not headers:
            raise DataError(f"none of the {len(files):,} images in {root} can be read: {_bad_files(root, bad)}")
        if channels is None:
            channels = 1 if all(mode in _GREY_MODES for mode, _ in headers) else 3
        if image_size is None:
            sizes = {size for _, size in headers}
            w, h = next(iter(sizes))
            image_size = w if len(sizes) == 1 and w == h else 64
    s, mode = int(image_size), "L" if channels == 1 else "RGB"

    x = np.empty((len(files), channels, s, s), dtype=np.uint8)
    for i, p in enumerate(tqdm(files, desc=f"loading {root.name}", unit="img", disable=not bar)):
        if p in bad:
            continue
        try:
            im = _read(p, mode)
        except DataError as e:  # a header can be whole where the pixels are not
            bad[p] = _why(e, p)
            continue
        w, h = im.size
        if (w, h) != (s, s):
            # Centre square crop, then bicubic resize; Pillow's resize filters over the whole
            # footprint when shrinking, so this is antialiased.
            c = min(w, h)
            im = im.crop(((w - c) // 2, (h - c) // 2, (w - c) // 2 + c, (h - c) // 2 + c))
            im = im.resize((s, s), Image.Resampling.BICUBIC)
        a = np.asarray(im)
        x[i] = a[None] if channels == 1 else a.transpose(2, 0, 1)

    skipped = ""
    if bad:
        what, which = f"{len(bad)} of the {len(files):,} images in {root}", _bad_files(root, bad)
        if not skip_bad or len(bad) == len(files):
            hint = "; pass --skip-bad-images to train on the rest" if len(bad) < len(files) else ""
            raise DataError(f"{what} cannot be read: {which}{hint}")
        print(f"ganforge: warning: skipped {what}, which cannot be read: {which}", file=sys.stderr, flush=True)
        good = [i for i, p in enumerate(files) if p not in bad]
        x, files = x[good], [files[i] for i in good]
        y = y[good] if y is not None else None
        skipped = f"; {len(bad)} unreadable skipped"
    how = f"{len(class_names)} classes from sub-folders" if class_names else "no labels"
    return RawData(name=root.name or "folder", kind="image", x=torch.from_numpy(x), y=y,
                   n_classes=len(class_names) or None, class_names=class_names,
                   note=f"{len(files):,} images from {root} ({how}), {mode} {s}x{s}{skipped}")
