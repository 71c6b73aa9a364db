"""DCGAN: Radford, Metz & Chintala, "Unsupervised Representation Learning with Deep Convolutional
Generative Adversarial Networks", ICLR 2016.

What is different from GAN: the architecture. Strided convolutions replace pooling, batch norm
sits in both networks (except G's output and D's input), G uses ReLU with a tanh output and D
LeakyReLU(0.2); Adam with lr 2e-4 and beta1 0.5. The networks live in ``ganforge.nn.dcgan`` because
many later models reuse them.
"""
from __future__ import annotations

from ..nn import DCGANDiscriminator, DCGANGenerator
from ..registry import register
from .base import GANModel


@register
class DCGAN(GANModel):
    name = "dcgan"
    family = "foundations"
    paper = "Radford et al., Unsupervised Representation Learning with DCGANs"
    year = 2015
    defaults = {"z_dim": 100, "g_width": 64, "d_width": 64, "loss": "nonsaturating"}

    def build(self):
        c, s = self.cfg, self.spec
        self.G = DCGANGenerator(c["z_dim"], s.channels, s.image_size, c["g_width"])
        self.D = DCGANDiscriminator(s.channels, s.image_size, c["d_width"])
