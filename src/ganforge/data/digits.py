"""The embedded data set: scikit-learn's bundled 8x8 handwritten digits.

1,797 real scans (UCI ML hand-written digits, Alpaydin & Kaynak 1998) with labels, shipped
inside scikit-learn, so ganforge can train and be tested with no download at all.
"""
from __future__ import annotations

import torch

from .base import RawData


def load_digits() -> RawData:
    from sklearn.datasets import load_digits as _load

    d = _load()
    # Pixel values are 0..16 ink counts; scale to the 0..255 of ordinary images.
    x = torch.from_numpy(d.images).float().mul(255.0 / 16.0).round().clamp(0, 255).to(torch.uint8)
    y = torch.from_numpy(d.target).long()
    return RawData("digits", "image", x[:, None], y, 10, note="scikit-learn digits, 1,797 images",
                   class_names=[str(i) for i in range(10)])
