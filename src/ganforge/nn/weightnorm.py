"""Weight normalization (Salimans & Kingma, "Weight Normalization", NeurIPS 2016), as used by the
semi-supervised GAN of Salimans et al. 2016 (``sgan``).

A linear layer's weight is reparameterised as W_i = g_i * v_i / ||v_i||: the direction v and the
length g of each unit's weight vector are separate parameters. With *data-dependent
initialisation* the first batch fixes g and the bias so that every unit's pre-activation has mean
0 and standard deviation ``init_scale`` on that batch (Salimans & Kingma Sec. 3).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class WNLinear(nn.Module):
    """``y = g * (x . v / ||v||) + b``, one g per output unit.

    ``train_scale=False`` keeps g fixed at its (data-dependent) initial value, which is how the
    hidden layers of Salimans et al.'s MNIST discriminator are set up; only the output layer
    learns its scale there.
    """

    def __init__(self, in_features: int, out_features: int, train_scale: bool = True, init_std: float = 0.1):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.v = nn.Parameter(torch.randn(out_features, in_features) * init_std)
        self.bias = nn.Parameter(torch.zeros(out_features))
        g = torch.ones(out_features)
        if train_scale:
            self.g = nn.Parameter(g)
        else:
            self.register_buffer("g", g)

    def weight(self) -> torch.Tensor:
        return self.v * (self.g / self.v.norm(dim=1).clamp_min(1e-12)).unsqueeze(1)

    def forward(self, x):
        return F.linear(x, self.weight(), self.bias)

    @torch.no_grad()
    def init_from(self, x, init_scale: float = 1.0) -> torch.Tensor:
        """Data-dependent init on the batch ``x``: returns the layer's (re-scaled) output on it."""
        t = F.linear(x, self.v / self.v.norm(dim=1, keepdim=True).clamp_min(1e-12))
        mean, std = t.mean(0), t.std(0).clamp_min(1e-6)
        self.g.copy_(init_scale / std)
        self.bias.copy_(-mean * init_scale / std)
        return self(x)

    def extra_repr(self) -> str:
        return f"{self.in_features}, {self.out_features}, train_scale={isinstance(self.g, nn.Parameter)}"
