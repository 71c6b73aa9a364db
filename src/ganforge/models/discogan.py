"""DiscoGAN: Kim, Cha, Kim, Lee & Kim, "Learning to Discover Cross-Domain Relations with
Generative Adversarial Networks", ICML 2017.

What is different: two coupled GANs whose generators are plain *encoder-decoders* (no skips, no
residual blocks: the image must pass through a small bottleneck, which forces a change of shape
rather than of texture, as between the paper's shoes and handbags), each output reconstructed
back through the other generator. G's loss is the unweighted sum the paper writes,
``L_GAN_B + L_CONST_A + L_GAN_A + L_CONST_B``: the two GAN terms (D_B on G_AB(a), D_A on
G_BA(b), the standard non-saturating GAN loss) and the two reconstruction terms,
``L_CONST_A = d(G_BA(G_AB(a)), a)``, ``L_CONST_B = d(G_AB(G_BA(b)), b)`` with d the mean squared
error (the authors' code; the paper allows MSE, cosine or hinge). D's are DCGAN-like convolution
stacks with batch norm and leaky ReLU; Adam 2e-4, betas (0.5, 0.999).

Settings: ``lambda_recon`` (10; 1 is the paper's unweighted sum, which on the MNIST digits and edge
maps collapsed within 150 steps: every digit went to one blot of edges, docs/translation2.md), ``n_down`` (the encoder's stride-2
convolutions: 3 at 28x28 leaves a 4x4 bottleneck of the 32x32 the image is padded to),
``g_width``, ``d_width``, ``norm``, ``cycle_noise`` (0: none; ``cycle_noise_A``/``_B`` per cycle: Gaussian
noise on each translation before the other generator reconstructs from it, as for CycleGAN,
:meth:`Translator.jam`), ``direction``, ``jitter``; ``ema`` keeps EMA copies of both generators.
"""
from __future__ import annotations

import itertools

import torch

from ..errors import ConfigError
from ..nn import DCGANDiscriminator, UNetGenerator
from ..registry import register
from .base import GANModel, Phase
from .translation import TwoWay


@register
class DiscoGAN(TwoWay, GANModel):
    name = "discogan"
    family = "translation"
    paper = "Kim et al., Learning to Discover Cross-Domain Relations with Generative Adversarial Networks"
    year = 2017
    defaults = {"g_width": 32, "d_width": 32, "n_down": None, "norm": "batch", "lambda_recon": 10.0,
                "loss": "nonsaturating", "batch_size": 64, "lr": 2e-4, "betas": [0.5, 0.999],
                "direction": "auto", "jitter": None, "cycle_noise": 0.0, "cycle_noise_A": None, "cycle_noise_B": None}

    def build(self):
        c, s = self.cfg, self.spec
        if c["lambda_recon"] < 0:
            raise ConfigError(f"lambda_recon must be >= 0, got {c['lambda_recon']}")
        self.check_cycle_noise()
        in_ch, out_ch = self.in_out()
        down = c["n_down"] if c["n_down"] is not None else (3 if s.image_size < 64 else 4)
        # The paper's encoder-decoder: the U-Net's layers without its skips (and without dropout).
        self.G_AB = UNetGenerator(in_ch, out_ch, s.image_size, c["g_width"], c["norm"], 0.0, down, skips=False)
        self.G_BA = UNetGenerator(out_ch, in_ch, s.image_size, c["g_width"], c["norm"], 0.0, down, skips=False)
        self.D_A = DCGANDiscriminator(in_ch, s.image_size, c["d_width"], c["norm"])
        self.D_B = DCGANDiscriminator(out_ch, s.image_size, c["d_width"], c["norm"])

    def optimizers(self):
        c = self.cfg
        return {"G": self.adam(itertools.chain(self.G_AB.parameters(), self.G_BA.parameters()), c["lr_g"] or c["lr"]),
                "D": self.adam(itertools.chain(self.D_A.parameters(), self.D_B.parameters()), c["lr_d"] or c["lr"])}

    def phases(self):
        return [Phase("D", self.d_step, ("D",)), Phase("G", self.g_step, ("G",))]

    def d_step(self, batch):
        a, b = batch["A"], batch["B"]
        with torch.no_grad():
            fake_b, fake_a = self.G_AB(a), self.G_BA(b)
        d_a = self.d_adversarial(self.D_A(a), self.D_A(fake_a))
        d_b = self.d_adversarial(self.D_B(b), self.D_B(fake_b))
        return {"loss": d_a + d_b, "D_A": d_a.detach(), "D_B": d_b.detach()}

    def g_terms(self, batch) -> dict:
        """The paper's four terms of G's loss, unweighted."""
        a, b = batch["A"], batch["B"]
        fake_b, fake_a = self.G_AB(a), self.G_BA(b)
        return {"GAN_B": self.g_adversarial(self.D_B(fake_b)), "GAN_A": self.g_adversarial(self.D_A(fake_a)),
                "CONST_A": (self.G_BA(self.jam(fake_b, "A")) - a).pow(2).mean(),
                "CONST_B": (self.G_AB(self.jam(fake_a, "B")) - b).pow(2).mean()}

    def g_step(self, batch):
        t = self.g_terms(batch)
        loss = t["GAN_A"] + t["GAN_B"] + self.cfg["lambda_recon"] * (t["CONST_A"] + t["CONST_B"])
        return {"loss": loss, **{k: v.detach() for k, v in t.items()}}

