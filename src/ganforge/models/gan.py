"""GAN: Goodfellow et al., "Generative Adversarial Nets", NeurIPS 2014.

The original: fully connected G and D playing the minimax game. As in the paper's MNIST model,
D is made of maxout units with dropout, and G of ReLU layers. G's output uses tanh rather than
the paper's sigmoid because ganforge scales images to [-1, 1]; on the 2-D mixtures the output is
linear. G minimises the non-saturating loss by default (the paper's own advice);
``--set loss=minimax`` gives the literal value function.
"""
from __future__ import annotations

from torch import nn

from ..nn import MLP, Maxout, View
from ..registry import register
from .base import GANModel


class MaxoutD(nn.Module):
    def __init__(self, d_in: int, hidden: int, pieces: int, dropout: float, layers: int = 2):
        super().__init__()
        blocks, d = [nn.Flatten()], d_in
        for _ in range(layers):
            blocks += [Maxout(d, hidden, pieces), nn.Dropout(dropout)]
            d = hidden
        self.body = nn.Sequential(*blocks)
        self.head = nn.Linear(d, 1)

    def features(self, x):
        return self.body(x)

    def forward(self, x):
        return self.head(self.body(x)).squeeze(1)


@register
class GAN(GANModel):
    name = "gan"
    family = "foundations"
    paper = "Goodfellow et al., Generative Adversarial Nets"
    year = 2014
    data_kinds = ("image", "points")
    defaults = {"z_dim": 100, "g_hidden": 1200, "d_hidden": 240, "pieces": 5, "dropout": 0.5,
                "loss": "nonsaturating"}

    def build(self):
        c = self.cfg
        out = 1
        for s in self.spec.shape:
            out *= s
        image = self.spec.kind == "image"
        self.G = nn.Sequential(
            MLP([c["z_dim"], c["g_hidden"], c["g_hidden"], out], act=nn.ReLU, out_act=nn.Tanh() if image else None),
            View(*self.spec.shape))
        self.D = MaxoutD(out, c["d_hidden"], c["pieces"], c["dropout"])
