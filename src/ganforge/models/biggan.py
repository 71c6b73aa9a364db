"""BigGAN: Brock, Donahue & Simonyan, "Large Scale GAN Training for High Fidelity Natural Image
Synthesis", ICLR 2019.

What is different from CGAN: how the class enters and how training is kept stable at scale.
G gets the class through conditional batch norm in every block, whose gains and biases come from a
*shared* class embedding joined to that block's chunk of z (the *hierarchical latent*: z is split
across the blocks); D gets it through a *projection*, D(x, y) = w . h(x) + embed(y) . h(x)
(Miyato & Koyama 2018). Both networks are spectrally normalised (Miyato et al. 2018) and hold a
self-attention block (SAGAN); hinge loss, two D steps per G step, Adam (0, 0.999), an EMA of G
that samples, and *orthogonal regularisation* beta ||W W^T * (1 - I)||_F^2 on G's weights
(beta 1e-4), which makes G amenable to the *truncation trick*: at sampling, z is drawn from a
normal truncated at a threshold (``ganforge sample RUN --truncation 0.5``), trading variety for
fidelity. Networks in ``ganforge.nn.biggan``; sized down for MNIST (width 32 at 28x28 or 32x32).
"""
from __future__ import annotations

import torch

from .. import losses
from ..errors import ConfigError
from ..nn.biggan import BigGANDiscriminator, BigGANGenerator, truncated_normal
from ..registry import register
from .base import GANModel, batch_len
from .cgan import ClassConditional


@register
class BigGAN(ClassConditional, GANModel):
    name = "biggan"
    family = "advanced"
    paper = "Brock et al., Large Scale GAN Training for High Fidelity Natural Image Synthesis"
    year = 2019
    needs_labels = True
    # The paper's settings (Table/App. C) with the small-data ones of its CIFAR runs: lr 2e-4 for
    # both networks, 2 D steps per G step (the ImageNet runs use 4e-4 / 1e-4 for D / G).
    defaults = {"z_dim": 120, "g_width": 32, "d_width": 32, "shared_dim": 128, "attn_res": None,
                "loss": "hinge", "n_critic": 2, "lr": 2e-4, "betas": [0.0, 0.999], "ema": 0.999,
                "ortho_beta": 1e-4, "spectral_norm": True}
    sample_options = ("truncation",)

    def build(self):
        c, s = self.cfg, self.spec
        if c["ortho_beta"] < 0:
            raise ConfigError(f"ortho_beta is a weight >= 0, got {c['ortho_beta']!r}")
        sn = c["spectral_norm"]
        self.G = BigGANGenerator(c["z_dim"], s.n_classes, s.channels, s.image_size, c["g_width"],
                                 c["shared_dim"], c["attn_res"], spectral=sn)
        self.D = BigGANDiscriminator(s.n_classes, s.channels, s.image_size, c["d_width"], c["attn_res"], spectral=sn)

    # -- sampling ------------------------------------------------------------------------
    def sample_inputs(self, n: int, generator=None, label=None, truncation=None) -> dict:
        inputs = super().sample_inputs(n, generator, label=label)
        if truncation is not None:
            inputs["z"] = truncated_normal(inputs["z"], truncation,
                                            lambda shape: self.randn(shape[0], *shape[1:], generator=generator))
        return inputs

    def generate(self, inputs: dict, net=None):
        return (net or self.G)(inputs["z"], inputs["y"])

    # -- training ------------------------------------------------------------------------
    def ortho_weights(self):
        """The weights orthogonal regularisation acts on: every matrix/kernel of G but the shared
        embedding (as in the authors' code); under spectral norm, the raw weights it normalises."""
        shared = self.G.shared.weight
        return [p for p in self.G.parameters() if p.ndim >= 2 and p is not shared]

    def d_step(self, batch):
        real, y = batch["x"], batch["y"]
        inputs = self.sample_inputs(len(real))
        d_real, d_fake = self.D(real, y), self.D(self.generate(inputs).detach(), inputs["y"])
        return {"loss": self.d_adversarial(d_real, d_fake), "D(x)": d_real.mean(), "D(G(z))": d_fake.mean()}

    def g_step(self, batch):
        inputs = self.sample_inputs(batch_len(batch))
        adv = self.g_adversarial(self.D(self.generate(inputs), inputs["y"]))
        beta = self.cfg["ortho_beta"]
        if not beta:
            return {"loss": adv}
        ortho = beta * losses.orthogonal_penalty(self.ortho_weights())
        return {"loss": adv + ortho, "ortho": ortho.detach()}
