"""Spectral normalisation (Miyato et al., "Spectral Normalization for Generative Adversarial
Networks", ICLR 2018; SNGAN).

Every conv/linear weight W is used as W / sigma(W), sigma the largest singular value, estimated by
one power iteration per training forward pass (u, v kept as buffers, so they travel in checkpoints
and a resumed run continues the same estimate). Each layer is then 1-Lipschitz, and so is D up to
its activations: a cheap, per-layer alternative to WGAN-GP's gradient penalty that, unlike it,
needs no second backward pass. PyTorch's ``parametrizations.spectral_norm`` does the arithmetic;
here is which layers get it and which networks may (``--set spectral_norm=true``).
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import spectral_norm

# Layers whose weight is a linear map of the input: conv kernels are normalised as (out, in*k*k)
# matrices (transposed convs as (in, out*k*k), PyTorch's dim=1), as in Miyato et al.'s code.
SN_LAYERS = (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)

# Network classes built from the shared blocks that may be spectrally normalised as a whole
# (exact types: a subclass may add layers, e.g. weight-normalised ones, that must not be).
_READY: set[type] = set()


def spectral_norm_ready(cls: type) -> type:
    """Class decorator: ``--set spectral_norm=true`` may normalise networks of this exact class."""
    _READY.add(cls)
    return cls


def supports_spectral_norm(net: nn.Module) -> bool:
    return type(net) in _READY


def is_spectral(layer: nn.Module, name: str = "weight") -> bool:
    return parametrize.is_parametrized(layer, name)


def apply_spectral_norm(module: nn.Module, kinds: tuple[type, ...] = SN_LAYERS, n_power_iterations: int = 1,
                        eps: float = 1e-12) -> nn.Module:
    """Spectrally normalise the weight of every layer of ``kinds`` in ``module`` (itself included);
    layers already normalised are left as they are, so it is safe to call twice. Returns ``module``."""
    for layer in list(module.modules()):
        if isinstance(layer, kinds) and getattr(layer, "weight", None) is not None and not is_spectral(layer):
            dim = 1 if isinstance(layer, nn.ConvTranspose2d) else 0
            spectral_norm(layer, n_power_iterations=n_power_iterations, eps=eps, dim=dim)
    return module


def top_singular_value(layer: nn.Module) -> float:
    """The largest singular value of ``layer``'s weight as the forward pass uses it (a conv kernel as
    the matrix SN normalises), computed exactly: ~1 for a spectrally normalised layer."""
    w = layer.weight.detach()
    if isinstance(layer, nn.ConvTranspose2d):
        w = w.transpose(0, 1)
    return float(torch.linalg.matrix_norm(w.reshape(w.shape[0], -1).float(), ord=2))
