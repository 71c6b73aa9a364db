"""LSGAN: Mao et al., "Least Squares Generative Adversarial Networks", ICCV 2017.

What is different from DCGAN: the loss. D regresses to label b on real data and a on fake
data, G pulls D's output on its samples towards c (the a-b-c coding of section 3.2):
min_D 1/2 E[(D(x) - b)^2] + 1/2 E[(D(G(z)) - a)^2], min_G 1/2 E[(D(G(z)) - c)^2]. Unlike the log
loss, the square keeps penalising fakes that are classified correctly but lie far from the data,
so G keeps getting gradients. Defaults are the paper's 0-1 coding (a=0, b=c=1); a=-1, b=1, c=0
minimises the Pearson chi^2 divergence. D's output is linear.
"""
from __future__ import annotations

from ..nn import gan_nets
from ..registry import register
from .base import GANModel


@register
class LSGAN(GANModel):
    name = "lsgan"
    family = "objectives"
    paper = "Mao et al., Least Squares Generative Adversarial Networks"
    year = 2017
    data_kinds = ("image", "points")
    defaults = {"z_dim": 100, "g_width": 64, "d_width": 64, "toy_hidden": 128, "toy_layers": 3,
                "toy_g_hidden": 0, "toy_g_layers": 0, "toy_g_norm": "none",
                "toy_pack": 1, "loss": "ls", "a": 0.0, "b": 1.0, "c": 1.0, "lr": 1e-4}
    # ganforge's own choices for the 2-D mixtures (docs/defaults.md), those of benchmarks/modes.py: 2-D noise,
    # an EMA of G (decay 0.99, what is sampled), batch 128, Adam at 1e-3 with D at twice G's rate. The
    # authors' mixture script (xudonmao/LSGAN, stability_comparison/mixture_gaussian/ls.py: 2 x 128 tanh
    # nets with orthogonal init, z of 256, batch 512, G at 1e-3, D at 1e-4, 35,000 steps) collapsed to one
    # mode of ring8 in 3,000 steps with ganforge's ReLU toy nets (docs/defaults.md), so it is not the default.
    defaults_by_kind = {"points": {"z_dim": 2, "ema": 0.99, "batch_size": 128, "lr": 1e-3, "lr_d": 2e-3}}

    def build(self):
        self.G, self.D = gan_nets(self.spec, self.cfg)
