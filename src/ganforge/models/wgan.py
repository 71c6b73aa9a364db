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

    def build(self):
        self.G, self.D = gan_nets(self.spec, self.cfg, d_norm="layer")

    def d_regularizer(self, real, fake):
        return {"GP": self.cfg["lambda_gp"] * self.gradient_penalty(real, fake)}
