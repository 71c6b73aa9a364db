"""GAN: Goodfellow et al., "Generative Adversarial Nets", NeurIPS 2014.

The original: fully connected G and D playing the minimax game. As in the paper's MNIST model,
D is made of maxout units with dropout, and G of ReLU layers. G's output uses tanh rather than
the paper's sigmoid because ganforge scales images to [-1, 1]; on the 2-D mixtures the output is
linear. G minimises the non-saturating loss by default (the paper's own advice);
``--set loss=minimax`` gives the literal value function.

Where the defaults depart from the paper and its MNIST configuration (``mnist.yaml`` in the
authors' code, goodfeli/adversarial), and the settings that give the original:

- Optimizer: Adam (lr 2e-4, beta1 0.5, from DCGAN) by default. The paper's Algorithm 1 used
  momentum; the configuration trains with SGD, batch 100, lr 0.1 (divided by 1.000004 after each
  update, down to 1e-6) and momentum 0.5, raised linearly to 0.7 by epoch 250. ``optimizer=sgd``
  uses SGD with a fixed ``momentum`` (0.5 by default); pass ``lr=0.1`` and ``--batch-size 100``
  too, since ``lr`` defaults to Adam's rate. The decay and the momentum ramp are not reproduced.
- Noise: N(0, I) by default. The paper does not name its prior; one revision of the configuration
  sets uniform noise, which that code draws from U(-sqrt(3), sqrt(3)) (unit variance), another
  keeps the code's default, N(0, I). ``z_dist=uniform`` gives U(-sqrt(3), sqrt(3)).
- Dropout: the configuration drops D's hidden units with probability 0.5 (``dropout``) and D's
  input pixels with probability 0.2; by default D's input is not dropped, and
  ``d_input_dropout=0.2`` does that. Dropout acts in training only, in both players' updates.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from ..errors import ConfigError
from ..nn import MLP, Maxout, View
from ..registry import register
from .base import GANModel
from .noise import check_z_dist, draw_noise


class MaxoutD(nn.Module):
    def __init__(self, d_in: int, hidden: int, pieces: int, dropout: float, layers: int = 2,
                 in_dropout: float = 0.0):
        super().__init__()
        # Outside ``body`` so that switching it on leaves the parameter names, and so checkpoints, as they were.
        self.in_drop = nn.Dropout(in_dropout) if in_dropout else nn.Identity()
        blocks, d = [nn.Flatten()], d_in
        for _ in range(layers):
            blocks += [Maxout(d, hidden, pieces), nn.Dropout(dropout)]
            d = hidden
        self.body = nn.Sequential(*blocks)
        self.head = nn.Linear(d, 1)

    def features(self, x):
        return self.body(self.in_drop(x))

    def forward(self, x):
        return self.head(self.features(x)).squeeze(1)


@register
class GAN(GANModel):
    name = "gan"
    family = "foundations"
    paper = "Goodfellow et al., Generative Adversarial Nets"
    year = 2014
    data_kinds = ("image", "points")
    # optimizer, momentum, z_dist, d_input_dropout: see the module docstring for the paper's values.
    defaults = {"z_dim": 100, "g_hidden": 1200, "d_hidden": 240, "pieces": 5, "dropout": 0.5,
                "loss": "nonsaturating", "optimizer": "adam", "momentum": 0.5, "z_dist": "normal",
                "d_input_dropout": 0.0}
    # No toy code from the authors: ganforge's own choices for the 2-D mixtures (docs/defaults.md),
    # those of benchmarks/modes.py: 2-D noise, an EMA of G (decay 0.99, what is sampled), batch 128,
    # toy-sized nets (the MNIST ones are 1200/240x5), no dropout, Adam at 1e-3 with D at twice G's rate.
    defaults_by_kind = {"points": {"z_dim": 2, "ema": 0.99, "batch_size": 128, "g_hidden": 128, "d_hidden": 128,
                                   "dropout": 0.0, "lr": 1e-3, "lr_d": 2e-3}}

    def build(self):
        c = self.cfg
        if c["optimizer"] not in ("adam", "sgd"):
            raise ConfigError(f"gan's optimizer must be adam or sgd, got {c['optimizer']!r}")
        if not 0 <= c["momentum"] < 1:
            raise ConfigError(f"momentum must be in [0, 1), got {c['momentum']}")
        check_z_dist(c["z_dist"])
        for key in ("dropout", "d_input_dropout"):
            if not 0 <= c[key] < 1:
                raise ConfigError(f"{key} must be a probability in [0, 1), got {c[key]}")
        out = 1
        for s in self.spec.shape:
            out *= s
        image = self.spec.kind == "image"
        self.G = nn.Sequential(
            MLP([c["z_dim"], c["g_hidden"], c["g_hidden"], out], act=nn.ReLU, out_act=nn.Tanh() if image else None),
            View(*self.spec.shape))
        self.D = MaxoutD(out, c["d_hidden"], c["pieces"], c["dropout"], in_dropout=c["d_input_dropout"])

    def optimizers(self):
        c = self.cfg
        if c["optimizer"] == "adam":
            return super().optimizers()
        return {"G": torch.optim.SGD(self.G.parameters(), lr=c["lr_g"] or c["lr"], momentum=c["momentum"]),
                "D": torch.optim.SGD(self.D.parameters(), lr=c["lr_d"] or c["lr"], momentum=c["momentum"])}

    def sample_inputs(self, n, generator=None, **cond):
        # sqrt(3): the authors' code scales its uniform noise to unit variance.
        return {"z": draw_noise(self, n, self.cfg["z_dim"], self.cfg["z_dist"], math.sqrt(3), generator)}
