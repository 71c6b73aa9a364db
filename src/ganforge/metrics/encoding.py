"""How good an encoder's codes are, for the models with an encoder (BiGAN, ALI, AAE, VAE-GAN).

Pure functions of codes, labels and logits:

* ``nearest_neighbours(query, reference, metric="cosine")``: the index of each query's nearest
  reference code (ties: the lowest index), computed in float64 in chunks.
* ``knn_accuracy(query, query_labels, reference, reference_labels, metric="cosine")``: the
  accuracy of the 1-nearest-neighbour classifier that labels each query code with its nearest
  reference code's label: BiGAN's measure of unsupervised features (Donahue et al. 2017, Table 1:
  1NN on MNIST). Cosine distance by default (it ignores a code's length); ``metric="euclidean"``
  is the plain L2 distance.
* ``label_preservation`` (from ``paired.py``): a classifier's accuracy on reconstructions
  G(E(x)) against the labels of x: do the codes keep the class?

``encoder_metrics(model, ...)`` measures a model with ``encode``/``reconstruct`` on its data's
held-out split (it loads data and the built-in digit classifier; see its docstring);
``ganforge eval`` reports it for every model with an encoder.
"""
from __future__ import annotations

import numpy as np
import torch

from ..errors import GanforgeError
from .paired import l1, label_preservation

METRICS = ("cosine", "euclidean")
# Training images the held-out codes are matched against in ``ganforge eval`` (a random subset,
# seed 0): 10,000 keeps the distance matrix and the encoding to seconds on a CPU.
KNN_REFERENCE = 10_000


def _codes(a, name: str) -> torch.Tensor:
    t = torch.as_tensor(a.detach().cpu() if torch.is_tensor(a) else np.asarray(a)).double()
    if t.ndim != 2 or len(t) == 0:
        raise GanforgeError(f"{name} must be non-empty (N, D) codes, got shape {tuple(t.shape)}")
    if not torch.isfinite(t).all():
        raise GanforgeError(f"{name} contain NaN or Inf values")
    return t.flatten(1)


def _labels(y, n: int, name: str) -> torch.Tensor:
    t = torch.as_tensor(y.detach().cpu() if torch.is_tensor(y) else np.asarray(y))
    if t.shape != (n,) or t.is_floating_point() or t.dtype == torch.bool:
        raise GanforgeError(f"{name} must be ({n},) integer class labels, got {t.dtype} of shape {tuple(t.shape)}")
    return t.long()


def nearest_neighbours(query, reference, metric: str = "cosine", chunk: int = 1024) -> torch.Tensor:
    """Index (N_query,) of each query row's nearest reference row; ties go to the lowest index."""
    if metric not in METRICS:
        raise GanforgeError(f"unknown metric {metric!r}; choose {' or '.join(METRICS)}")
    q, r = _codes(query, "query codes"), _codes(reference, "reference codes")
    if q.shape[1] != r.shape[1]:
        raise GanforgeError(f"query and reference codes differ in dimension: {q.shape[1]} and {r.shape[1]}")
    if metric == "cosine":
        # A zero code has no direction: it is at distance 1 (cosine 0) from everything.
        q = q / q.norm(dim=1, keepdim=True).clamp_min(1e-300)
        r = r / r.norm(dim=1, keepdim=True).clamp_min(1e-300)
    r_sq = (r * r).sum(1)
    out = []
    for i in range(0, len(q), chunk):
        # ||q - r||^2 = ||q||^2 - 2 q.r + ||r||^2; ||q||^2 is the same along a row, so it is left out.
        # For unit vectors this orders by cosine distance 1 - q.r as well.
        d = r_sq[None] - 2 * q[i:i + chunk] @ r.T
        out.append(d.argmin(1))  # the first minimum: the lowest index among ties
    return torch.cat(out)


def knn_accuracy(query, query_labels, reference, reference_labels, metric: str = "cosine") -> float:
    """Accuracy of 1-nearest-neighbour classification of ``query`` codes by ``reference`` codes."""
    q, r = _codes(query, "query codes"), _codes(reference, "reference codes")
    yq, yr = _labels(query_labels, len(q), "query labels"), _labels(reference_labels, len(r), "reference labels")
    return float((yr[nearest_neighbours(q, r, metric)] == yq).double().mean())


def encoder_data(name: str) -> tuple[str, str] | None:
    """(reference, query) data names for a run trained on ``name``: the training data (for the
    embedded ``digits``, all 1,797, its ``digits:train`` part) and the held-out test split; None
    where the data has no test split or the run trained on it."""
    from ..data import has_test, parse_name

    base, split, part = parse_name(name)
    if split in ("test", "val") or not has_test(base):
        return None
    if base == "digits" and split is None and part is None:
        return "digits:train", "digits:test"
    return name, f"{base}:test"


@torch.no_grad()
def encoder_metrics(model, root=None, use_ema: bool = True, n_reference: int = KNN_REFERENCE,
                    n_query: int | None = None, metric: str = "cosine", seed: int = 0) -> dict:
    """Codes and reconstructions of a model with an encoder, on its data's held-out split.

    * ``knn_accuracy``: 1-NN accuracy (``metric``) of the test images' codes E(x) against the
      codes of ``n_reference`` training images (a random subset, ``seed``; all where fewer), with
      ``knn_n_reference``, ``knn_n_query``, ``knn_data`` saying on what.
    * ``recon_l1``: mean |G(E(x)) - x| in [0, 1] pixel units over the test images.
    * ``recon_label_preservation`` (digit data: mnist, digits): the built-in digit classifier's
      accuracy on G(E(x)) against the labels of x.

    ``{}`` when the data has no labelled test split (see ``encoder_data``).
    """
    from ..data import load_data, parse_name
    from .classifier import load_classifier, predict

    names = encoder_data(model.cfg["data"])
    if names is None:
        return {}
    size, root = model.cfg.get("image_size"), root or model.cfg.get("data_root")
    ref, query = (load_data(n, size, root=root) for n in names)
    if ref.y is None or query.y is None:
        return {}
    if n_query is not None and n_query < len(query.x):
        query.x, query.y = query.x[:n_query], query.y[:n_query]
    pick = torch.randperm(len(ref.x), generator=torch.Generator().manual_seed(seed))[:n_reference].sort().values
    xr, yr = ref.x[pick], ref.y[pick]
    zq = model.encode(query.x, use_ema)
    out = {"knn_accuracy": knn_accuracy(zq, query.y, model.encode(xr, use_ema), yr, metric),
           "knn_metric": metric, "knn_n_reference": len(xr), "knn_n_query": len(query.x),
           "knn_data": f"{names[1]} against {names[0]}"}
    # The query codes decoded, not encoded again; with x's labels, which only a G that reads
    # labels uses (AAE's supervised variant, whose reconstruction is G(E(x), y)).
    recon = model.decode(zq, use_ema, y=query.y)
    out["recon_l1"] = l1(recon, query.x)
    base = parse_name(model.cfg["data"])[0]
    if base in ("mnist", "digits"):
        net, _ = load_classifier(base)
        out["recon_label_preservation"] = label_preservation(predict(net, recon), query.y)
    return out


__all__ = ["KNN_REFERENCE", "encoder_data", "encoder_metrics", "knn_accuracy", "label_preservation",
           "nearest_neighbours"]
