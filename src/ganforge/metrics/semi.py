"""Accuracy measures for the conditional family: a classifier's held-out accuracy (SGAN's D) and
the best one-to-one agreement of a latent code with classes (InfoGAN's c1). The baseline a
semi-supervised GAN must beat, the same classifier trained on the labelled images alone, is
trained by the engine like any model: ``ganforge train sgan --set labels_only=true``.
"""
from __future__ import annotations

import numpy as np
import torch

from ..errors import GanforgeError


def _images_labels(data):
    """(float images in [-1, 1], int64 labels) from a RawData, a data name or an (x, y) pair."""
    if isinstance(data, str):
        from ..data import load_data

        data = load_data(data)
    x, y = (data.x, data.y) if hasattr(data, "x") else data
    if y is None:
        raise GanforgeError("measuring accuracy needs labelled data")
    x = torch.as_tensor(x)
    if x.dtype == torch.uint8:
        x = x.float().div(127.5).sub(1.0)
    return x, torch.as_tensor(y).long()


@torch.no_grad()
def classifier_accuracy(model, data, batch_size: int = 500) -> float:
    """Fraction of ``data`` (RawData, data name such as ``"mnist[8000:]"``, or (x, y)) that
    ``model.classify(x)`` labels correctly."""
    if not hasattr(model, "classify"):
        raise GanforgeError(f"{getattr(model, 'name', type(model).__name__)} is not a classifier (no classify())")
    x, y = _images_labels(data)
    if len(x) == 0:
        raise GanforgeError("no images to classify")
    size = getattr(getattr(model, "spec", None), "image_size", None)
    if size and x.shape[-1] != size:
        raise GanforgeError(f"the model classifies {size}x{size} images, these are {x.shape[-1]}x{x.shape[-2]}")
    pred = torch.cat([model.classify(x[i:i + batch_size]).cpu() for i in range(0, len(x), batch_size)])
    return float((pred == y).float().mean())


def code_class_agreement(codes, classes, n_codes: int | None = None, n_classes: int | None = None) -> dict:
    """Best one-to-one matching of code values to classes (Hungarian algorithm).

    ``codes`` and ``classes`` are integer arrays of the same length (e.g. InfoGAN's c1 for each
    sample and a classifier's label for it). Returns ``{"accuracy", "mapping", "confusion"}``:
    the fraction of samples whose class is the one matched to their code, the code -> class
    mapping, and the (codes x classes) count matrix.
    """
    from scipy.optimize import linear_sum_assignment

    codes, classes = np.asarray(codes, dtype=np.int64), np.asarray(classes, dtype=np.int64)
    if codes.shape != classes.shape or codes.ndim != 1 or len(codes) == 0:
        raise GanforgeError(f"codes and classes must be equal-length 1-D arrays, got {codes.shape} and "
                            f"{classes.shape}")
    n_codes = n_codes or int(codes.max()) + 1
    n_classes = n_classes or int(classes.max()) + 1
    confusion = np.zeros((n_codes, n_classes), dtype=np.int64)
    np.add.at(confusion, (codes, classes), 1)
    rows, cols = linear_sum_assignment(confusion, maximize=True)
    return {"accuracy": float(confusion[rows, cols].sum() / len(codes)),
            "mapping": {int(r): int(c) for r, c in zip(rows, cols)}, "confusion": confusion}


def heldout_data(name: str) -> str | None:
    """The images a run did not train on, when its data name says: ``mnist[:8000]`` -> ``mnist[8000:]``,
    and the whole training split -> its test split (``mnist`` -> ``mnist:test``)."""
    from ..data import eval_data_name, parse_name, split_name

    base, part = split_name(name)
    if part is None:
        split, held = parse_name(name)[1], eval_data_name(name)
        return held if split in (None, "train", "train-val") and held != name else None
    if part.step is not None or (part.start is None) == (part.stop is None):
        return None  # a middle part: no single complement to name
    return f"{base}[{part.stop}:]" if part.start is None else f"{base}[:{part.start}]"


def heldout_accuracy(model, root=None) -> dict:
    """``{"test_accuracy", "test_data", "n_test"}`` of a classifier model (``classify()``, e.g.
    SGAN's D) on the part of its data set it did not train on; ``{}`` when there is none."""
    from ..data import load_data

    name = heldout_data(model.cfg["data"])
    if not hasattr(model, "classify") or name is None:
        return {}
    raw = load_data(name, model.cfg.get("image_size"), root=root or model.cfg.get("data_root"))
    return {"test_accuracy": classifier_accuracy(model, raw), "test_data": name, "n_test": len(raw)}
