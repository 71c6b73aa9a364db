"""The in-memory form every data set is loaded into."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class RawData:
    """A whole data set held in memory.

    ``x`` is ``uint8 (N, C, H, W)`` for images and ``float32 (N, D)`` for points (the 2-D
    mixtures). ``y`` is ``int64 (N,)`` class labels, or None. ``note`` says which files or split
    the data came from (e.g. that only MNIST's test images were found), shown to the user.
    """

    name: str
    kind: str  # "image" | "points"
    x: torch.Tensor
    y: torch.Tensor | None = None
    n_classes: int | None = None
    note: str = ""
    class_names: list[str] = field(default_factory=list)

    def __post_init__(self):
        if self.kind == "image":
            assert self.x.dtype == torch.uint8 and self.x.ndim == 4, (self.x.dtype, self.x.shape)
        elif self.kind == "points":
            assert self.x.dtype == torch.float32 and self.x.ndim == 2, (self.x.dtype, self.x.shape)
        else:
            raise ValueError(f"unknown data kind {self.kind!r}")
        if self.y is not None:
            assert self.y.dtype == torch.int64 and len(self.y) == len(self.x)

    def __len__(self) -> int:
        return len(self.x)
