"""WGAN and WGAN-GP: the critic estimates the Wasserstein-1 distance.

- ``wgan``: Arjovsky, Chintala & Bottou, "Wasserstein GAN", ICML 2017. The critic D has a linear
  output and maximises E[D(x)] - E[D(G(z))]; it must be K-Lipschitz, which the paper enforces by
  clipping every critic weight to [-c, c] after each update. The critic is trained n_critic = 5
  times per G update so that it stays near its optimum, with RMSProp at lr 5e-5 (momentum-based
  optimisers were unstable in the paper).
- ``wgan-gp``: Gulrajani et al., "Improved Training of Wasserstein GANs", NeurIPS 2017. Clipping
  is replaced by a penalty lambda * E[(||grad D(x_hat)||_2 - 1)^2] at random interpolates x_hat of
  real and fake samples. Batch norm would couple the samples of a batch and break the per-sample
  penalty, so the critic uses layer norm (images) or no normalisation (points); Adam (0, 0.9),
  lr 1e-4, n_critic 5, lambda 10.
"""
from __future__ import annotations

import torch

from ..nn import gan_nets
from ..registry import register
from .base import GANModel

_COMMON = {"z_dim": 100, "g_width": 64, "d_width": 64, "toy_hidden": 128, "toy_layers": 3,
           "toy_g_hidden": 0, "toy_g_layers": 0, "toy_g_norm": "none",
           "loss": "wasserstein", "n_critic": 5}


@register
class WGAN(GANModel):
    name = "wgan"
    family = "objectives"
    paper = "Arjovsky et al., Wasserstein GAN"
    year = 2017
    data_kinds = ("image", "points")
    defaults = {**_COMMON, "lr": 5e-5, "clip": 0.01}
    # WGAN's authors (martinarjovsky/WassersteinGAN) published no toy code; gan_toy.py of WGAN-GP's
    # authors runs WGAN on the mixtures with 3 x 512 nets, RMSProp 5e-5, clip 0.01 for 100,000 steps.
    # ganforge's own choices for a short run (docs/defaults.md): 2-D noise, an EMA of G (decay 0.99),
    # batch 128, RMSProp at 5e-4 (benchmarks/modes.py's rate), the paper's 5 critic updates and clip.
    defaults_by_kind = {"points": {"z_dim": 2, "ema": 0.99, "batch_size": 128, "lr": 5e-4, "n_critic": 5}}

    def build(self):
        self.G, self.D = gan_nets(self.spec, self.cfg)

    def optimizers(self):
        c = self.cfg
        return {"G": torch.optim.RMSprop(self.G.parameters(), lr=c["lr_g"] or c["lr"]),
                "D": torch.optim.RMSprop(self.D.parameters(), lr=c["lr_d"] or c["lr"])}

    @torch.no_grad()
    def after_phase(self, name):
        super().after_phase(name)
        if name == "D":
            for p in self.D.parameters():
                p.clamp_(-self.cfg["clip"], self.cfg["clip"])


@register
class WGANGP(GANModel):
    name = "wgan-gp"
    family = "objectives"
    paper = "Gulrajani et al., Improved Training of Wasserstein GANs"
    year = 2017
    data_kinds = ("image", "points")
    defaults = {**_COMMON, "lr": 1e-4, "betas": [0.0, 0.9], "lambda_gp": 10.0}
    # The authors' toy script (gan_toy.py in igul222/improved_wgan_training): 2-D noise, G and D of
    # 3 x 512 units, batch 256, Adam 1e-4 (0.5, 0.9), 5 critic updates, lambda 0.1 ("smaller lambda
    # seems to help for toy tasks"). Its critic uses ReLU where ganforge's toy critic uses LeakyReLU 0.2.
    defaults_by_kind = {"points": {"z_dim": 2, "toy_hidden": 512, "toy_layers": 3, "batch_size": 256,
                                   "lr": 1e-4, "betas": [0.5, 0.9], "n_critic": 5, "lambda_gp": 0.1}}

    def build(self):
        self.G, self.D = gan_nets(self.spec, self.cfg, d_norm="layer")

    def d_regularizer(self, real, fake):
        return {"GP": self.cfg["lambda_gp"] * self.gradient_penalty(real, fake)}
