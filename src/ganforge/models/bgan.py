"""BGAN: Hjelm et al., "Boundary-Seeking Generative Adversarial Networks", ICLR 2018.

What is different from GAN: G's objective. An optimal D gives p_data(x) = p_G(x) D(x) / (1 - D(x)),
so G is right exactly where D(x) = 1/2. The boundary-seeking G therefore minimises
1/2 (log D(G(z)) - log(1 - D(G(z))))^2 (the squared logit), moving its samples onto D's decision
boundary instead of past it; D is trained as in GAN. This is the paper's variant for continuous
data; the importance-weighted policy gradient for discrete data (Sec. 2.3, Algorithm 1) is the
separate model ``bgan-discrete`` (models/bgan_discrete.py).
"""
from __future__ import annotations

from ..nn import gan_nets
from ..registry import register
from .base import GANModel


@register
class BGAN(GANModel):
    name = "bgan"
    family = "objectives"
    paper = "Hjelm et al., Boundary-Seeking Generative Adversarial Networks"
    year = 2018
    data_kinds = ("image", "points")
    defaults = {"z_dim": 100, "g_width": 64, "d_width": 64, "toy_hidden": 128, "toy_layers": 3,
                "loss": "boundary", "lr": 1e-4}
    # ganforge's own choices for the 2-D mixtures (docs/defaults.md), those of benchmarks/modes.py: 2-D noise,
    # an EMA of G (decay 0.99, what is sampled), batch 128, Adam at 1e-3 with D at twice G's rate. The
    # authors' synthetic-mixture settings (rdevon/BGAN, CONT-SYNTHETIC/control.py: batch 512, G and D at
    # 1e-4; their networks are not published with it) collapsed in 3,000 steps here (docs/defaults.md).
    defaults_by_kind = {"points": {"z_dim": 2, "ema": 0.99, "batch_size": 128, "lr": 1e-3, "lr_d": 2e-3}}

    def build(self):
        self.G, self.D = gan_nets(self.spec, self.cfg)
