"""The in-memory form every data set is loaded into."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F


@dataclass
class RawData:
    """A whole data set held in memory.

    ``x`` is ``uint8 (N, C, H, W)`` for images and ``float32 (N, D)`` for points (the 2-D
    mixtures). ``y`` is ``int64 (N,)`` class labels, or None. ``note`` says which files or split
    the data came from (e.g. that only MNIST's test images were found), shown to the user.

    Translation data sets also have ``groups``: ``{group: {field: tensor}}`` (or
    ``{group: FileSource}`` when streamed from disk). The fields of a group are aligned item by
    item and shuffle together (paired ``A`` and ``B``); separate groups shuffle independently
    (unpaired domains). For them ``x`` is the target domain ``B`` (for streamed data, a preview
    of its first items), so code that measures ``x`` measures what a translator produces.
    ``source`` maps a group to the indices its items had in the split they were drawn from.
    """

    name: str
    kind: str  # "image" | "points"
    x: torch.Tensor
    y: torch.Tensor | None = None
    n_classes: int | None = None
    note: str = ""
    class_names: list[str] = field(default_factory=list)
    groups: dict | None = None
    source: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.kind == "image":
            assert self.x.dtype == torch.uint8 and self.x.ndim == 4, (self.x.dtype, self.x.shape)
        elif self.kind == "points":
            assert self.x.dtype == torch.float32 and self.x.ndim == 2, (self.x.dtype, self.x.shape)
        else:
            raise ValueError(f"unknown data kind {self.kind!r}")
        if self.y is not None and self.groups is None:
            assert self.y.dtype == torch.int64 and len(self.y) == len(self.x)
        for name, g in (self.groups or {}).items():
            if isinstance(g, dict):
                sizes = {k: len(v) for k, v in g.items()}
                assert len(set(sizes.values())) == 1, (name, sizes)

    def __len__(self) -> int:
        """Items per epoch of the smallest group: a batch must fit in every group."""
        if self.groups is None:
            return len(self.x)
        return min(len(g) if not isinstance(g, dict) else len(next(iter(g.values()))) for g in self.groups.values())

    def batch_groups(self, device=None) -> dict:
        """What a ``GroupLoader`` takes: the groups (in-memory ones on ``device``), or for plain
        data one group ``{"data": {"x", "y"}}``, which shuffles exactly as before groups existed."""
        if self.groups is None:
            g = {"x": self.x}
            if self.y is not None:
                g["y"] = self.y
            groups = {"data": g}
        else:
            groups = self.groups
        return {name: {k: v.to(device) for k, v in g.items()} if isinstance(g, dict) and device is not None else g
                for name, g in groups.items()}

    def take(self, part: slice) -> None:
        """Keep only items ``part`` (of every group, in its own item order)."""
        if self.groups is None:
            self.x = self.x[part]
            self.y = self.y[part] if self.y is not None else None
            return
        self.groups = {name: {k: v[part] for k, v in g.items()} if isinstance(g, dict) else g.take(part)
                       for name, g in self.groups.items()}
        self.source = {k: v[part] for k, v in self.source.items()}
        self.x, self.y = target_of(self.groups, self.x)


def target_of(groups: dict, preview=None) -> tuple:
    """(``x``, ``y``) of grouped data: field ``B`` and its labels (``yB``, else ``y``); for a streamed
    ``B`` the ``preview`` already decoded."""
    for g in groups.values():
        if isinstance(g, dict) and "B" in g:
            return g["B"], g.get("yB", g.get("y"))
    return preview, None


def resize_images(x: torch.Tensor, size: int) -> torch.Tensor:
    """Resize uint8 (N, C, H, W) images to size x size, antialiased, in chunks to bound memory."""
    if x.shape[-1] == size and x.shape[-2] == size:
        return x
    out = []
    for chunk in x.split(4096):
        y = F.interpolate(chunk.float(), size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        out.append(y.round_().clamp_(0, 255).to(torch.uint8))
    return torch.cat(out)
