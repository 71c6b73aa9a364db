"""EBGAN: Zhao, Mathieu & LeCun, "Energy-based Generative Adversarial Network", ICLR 2017.

What is different from GAN: D is an auto-encoder whose reconstruction error is an energy, low on
real data and high elsewhere. D minimises D(x) + max(0, m - D(G(z))) (real energy down, fake
energy up to the margin m and no further), G minimises D(G(z)). The pulling-away term (PT) on
the encoder's codes of a generated batch, weighted 0.1 in the paper, penalises pairs of samples
with parallel codes and so pushes G away from producing one thing.
"""
from __future__ import annotations

import torch
from torch import nn

from .. import losses
from ..nn import MLP, DCGANDiscriminator, DCGANGenerator, MLPCritic
from ..registry import register
from .base import GANModel, batch_len


class AutoEncoderD(nn.Module):
    """x -> (energy (B,), code (B, code_dim)): the energy is the per-sample mean squared error."""

    def __init__(self, encoder: nn.Module, decoder: nn.Module):
        super().__init__()
        self.encoder, self.decoder = encoder, decoder

    def forward(self, x):
        code = self.encoder(x)
        energy = (self.decoder(code).float() - x.float()).pow(2).flatten(1).mean(1)
        return energy, code


@register
class EBGAN(GANModel):
    name = "ebgan"
    family = "objectives"
    paper = "Zhao et al., Energy-based Generative Adversarial Network"
    year = 2017
    data_kinds = ("image", "points")
    defaults = {"z_dim": 100, "g_width": 64, "d_width": 64, "toy_hidden": 128, "toy_layers": 3,
                "code_dim": 32, "margin": 1.0, "pt_weight": 0.1, "lr": 1e-4}
    # No toy code from the authors: ganforge's own choices for the 2-D mixtures (docs/defaults.md),
    # those of benchmarks/modes.py: 2-D noise, an EMA of G (decay 0.99, what is sampled), batch 128,
    # Adam at 1e-3.
    defaults_by_kind = {"points": {"z_dim": 2, "ema": 0.99, "batch_size": 128, "lr": 1e-3}}

    def build(self):
        c, s = self.cfg, self.spec
        if s.kind == "points":
            h, n = c["toy_hidden"], c["toy_layers"]
            self.G = MLP([c["z_dim"], *[h] * n, s.dim])
            self.D = AutoEncoderD(MLPCritic(s.dim, h, n - 1, out_dim=c["code_dim"]),
                                  MLP([c["code_dim"], h, s.dim], act=lambda: nn.LeakyReLU(0.2)))
        else:
            self.G = DCGANGenerator(c["z_dim"], s.channels, s.image_size, c["g_width"])
            self.D = AutoEncoderD(DCGANDiscriminator(s.channels, s.image_size, c["d_width"], out_dim=c["code_dim"]),
                                  DCGANGenerator(c["code_dim"], s.channels, s.image_size, c["d_width"]))

    def d_step(self, batch):
        fake = self.generate(self.sample_inputs(batch_len(batch)))
        e_real, _ = self.D(batch["x"])
        e_fake, _ = self.D(fake)
        loss = ebgan_d_loss(e_real, e_fake, self.cfg["margin"])
        return {"loss": loss, "D(x)": e_real.mean(), "D(G(z))": e_fake.mean()}

    def g_step(self, batch):
        fake = self.generate(self.sample_inputs(batch_len(batch)))
        energy, code = self.D(fake)
        pt = losses.pulling_away(code)
        return {"loss": energy.mean() + self.cfg["pt_weight"] * pt, "PT": pt.detach()}


def ebgan_d_loss(e_real: torch.Tensor, e_fake: torch.Tensor, margin: float) -> torch.Tensor:
    """D(x) + [m - D(G(z))]^+ averaged over the batch (Zhao et al. 2017, eq. 1)."""
    return e_real.mean() + torch.relu(margin - e_fake).mean()
