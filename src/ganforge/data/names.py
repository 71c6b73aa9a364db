"""Data set names: a base, an optional split and an optional contiguous part ("mnist:test[:8000]").

Pure string functions, apart from the loaders, so that any data module may read a name without
importing the package that loads data sets.
"""
from __future__ import annotations

import re

SPLITS = ("train", "test", "val", "train-val")

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


_SPLIT = re.compile(r"^(?P<base>.+):(?P<split>" + "|".join(SPLITS) + r")$")


def parse_name(name: str) -> tuple[str, str | None, slice | None]:
    """``"mnist:test[:8000]"`` -> ``("mnist", "test", slice(None, 8000))``; no split -> None."""
    rest, part = split_name(name)
    m = _SPLIT.match(rest)
    return (m["base"], m["split"], part) if m else (rest, None, part)


def _with(base: str, split: str | None, part: slice | None = None) -> str:
    name = f"{base}:{split}" if split else base
    return name if part is None else f"{name}[{'' if part.start is None else part.start}:" \
                                     f"{'' if part.stop is None else part.stop}]"
