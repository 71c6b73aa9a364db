"""Adversarial objectives, defined once and selectable for any model with ``--set loss=NAME``.

Every function takes D's raw outputs (logits or critic values, any shape) and returns a scalar.
``d_loss(kind, real, fake)`` is what D minimises, ``g_loss(kind, fake)`` what G minimises.

- ``minimax``: Goodfellow et al. 2014, G minimises log(1 - D(G(z))) as in the value function.
- ``nonsaturating``: the same D, but G maximises log D(G(z)), the paper's practical variant that
  gives G strong gradients early on.
- ``ls``: least squares with the a-b-c coding of Mao et al. 2017 (fake label a, real label b, and
  the value c that G wants D to believe for fake data).
- ``wasserstein``: Arjovsky et al. 2017, the critic estimates E[D(x)] - E[D(G(z))].
- ``hinge``: Lim & Ye 2017 / Miyato et al. 2018, as used by SAGAN and BigGAN.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

LOSSES = ("minimax", "nonsaturating", "ls", "wasserstein", "hinge")


def _bce(logits, target: float):
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target))


def d_loss(kind: str, real, fake, real_label: float = 1.0, a: float = 0.0, b: float = 1.0):
    """D's loss. ``real_label`` < 1 is one-sided label smoothing (Salimans et al. 2016)."""
    if kind in ("minimax", "nonsaturating"):
        return _bce(real, real_label) + _bce(fake, 0.0)
    if kind == "ls":
        return 0.5 * ((real - b).pow(2).mean() + (fake - a).pow(2).mean())
    if kind == "wasserstein":
        return fake.mean() - real.mean()
    if kind == "hinge":
        return F.relu(1.0 - real).mean() + F.relu(1.0 + fake).mean()
    raise ValueError(f"unknown loss {kind!r}; choose from {', '.join(LOSSES)}")


def g_loss(kind: str, fake, c: float = 1.0):
    """G's loss from D's outputs on generated data."""
    if kind == "minimax":
        # log(1 - sigmoid(l)) = -softplus(l); G minimises it, so the loss is -softplus(l).
        return -F.softplus(fake).mean()
    if kind == "nonsaturating":
        return _bce(fake, 1.0)
    if kind == "ls":
        return 0.5 * (fake - c).pow(2).mean()
    if kind in ("wasserstein", "hinge"):
        return -fake.mean()
    raise ValueError(f"unknown loss {kind!r}; choose from {', '.join(LOSSES)}")
