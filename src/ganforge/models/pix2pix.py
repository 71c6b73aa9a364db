"""pix2pix: Isola, Zhu, Zhou & Efros, "Image-to-Image Translation with Conditional Adversarial
Networks", CVPR 2017.

What is different: G translates an image instead of drawing one from noise, and it is trained on
*pairs* (A, B). G is a U-Net (an encoder-decoder whose decoder layer n-i also sees encoder layer i,
so low-level structure such as edges crosses straight over); its only noise is dropout, active in
training. D is conditional: a 70x70 PatchGAN that judges patches of the input A concatenated with
either the real B or G(A), so it asks "is this a real B *for this A*". G's loss is the cGAN loss
plus lambda_l1 (100) * L1(G(A), B): L1 gets the low frequencies right, the PatchGAN the sharp
local texture. D's loss is halved (the paper: D learns slower than G). Adam 2e-4, beta1 0.5,
batch size 1 with instance-style normalisation (the paper's batch norm at batch size 1, test
statistics included, is instance norm), random jitter (286 -> 256 crop, flip).

Settings: ``lambda_l1``; ``gan_weight`` (0: L1 alone, the paper's ablation; D then does not train
and G's loss never reads it); ``lambda_l1=0``: cGAN alone; ``norm`` (instance | batch | none);
``g_width``/``d_width`` (ngf/ndf, 64); ``d_layers`` (None: 3, 70x70 patches, from 64x64 up, 2 below); ``dropout``; ``direction``
(AtoB | BtoA | auto: BtoA on facades, label map -> photo); ``jitter``. The U-Net needs a power-of-two
image size (``--set image_size=32`` for the 28x28 digit domains).

Unlike the paper, dropout is off when translating (``translate`` runs in eval mode).
"""
from __future__ import annotations

import torch

from ..errors import ConfigError
from ..nn import PatchDiscriminator, UNetGenerator
from ..registry import register
from .base import GANModel, Phase
from .translation import Translator


@register
class Pix2Pix(Translator, GANModel):
    name = "pix2pix"
    family = "translation"
    paper = "Isola et al., Image-to-Image Translation with Conditional Adversarial Networks"
    year = 2017
    data_kinds = ("paired",)
    defaults = {"g_width": 64, "d_width": 64, "d_layers": None, "norm": "instance", "dropout": 0.5,
                "lambda_l1": 100.0, "gan_weight": 1.0, "loss": "nonsaturating", "batch_size": 1,
                "direction": "auto", "jitter": None}
    ema_nets = ("G",)
    directions = {"AtoB": "G"}

    def build(self):
        c, s = self.cfg, self.spec
        if c["lambda_l1"] < 0 or c["gan_weight"] < 0:
            raise ConfigError("lambda_l1 and gan_weight must be >= 0")
        if not c["lambda_l1"] and not c["gan_weight"]:
            raise ConfigError("lambda_l1 = gan_weight = 0 leaves pix2pix's G nothing to learn")
        in_ch, out_ch = self.in_out()
        self.G = UNetGenerator(in_ch, out_ch, s.image_size, c["g_width"], c["norm"], c["dropout"])
        # D sees the condition too: A's channels beside B's (real) or G(A)'s (fake).
        self.D = PatchDiscriminator(in_ch + out_ch, c["d_width"], self.patch_layers(), c["norm"])
        if s.image_size < self.D.min_size:
            raise ConfigError(f"a PatchGAN with d_layers={self.patch_layers()} needs images of at least "
                              f"{self.D.min_size}x{self.D.min_size}, got {s.image_size}")

    def phases(self):
        if not self.cfg["gan_weight"]:
            # L1 alone: G's loss does not involve D, so D is not trained at all.
            return [Phase("G", self.g_step, ("G",))]
        # G keeps its graph through D's phase: the G step backpropagates through the same G(A).
        return [Phase("D", self.d_step, ("D",), keep_graph=("G",)), Phase("G", self.g_step, ("G",))]

    def judge(self, a, b):
        """D(A, B): one logit per patch of the pair."""
        return self.D(torch.cat([a, b], 1))

    def d_step(self, batch):
        a, b = batch["A"], batch["B"]
        fake = self.G(a)
        self.share("fake", fake, self.G)
        d_real, d_fake = self.judge(a, b), self.judge(a, fake.detach())
        # Halved, as in the paper, to slow D down relative to G.
        loss = 0.5 * self.d_adversarial(d_real, d_fake)
        return {"loss": loss, "D(A,B)": d_real.mean().detach(), "D(A,G(A))": d_fake.mean().detach()}

    def g_step(self, batch):
        a, b = batch["A"], batch["B"]
        fake = self.reuse("fake", self.G)
        if fake is None or len(fake) != len(a):
            fake = self.G(a)
        l1 = (fake - b).abs().mean()
        loss, out = self.cfg["lambda_l1"] * l1, {"L1": l1.detach()}
        if self.cfg["gan_weight"]:
            adv = self.g_adversarial(self.judge(a, fake))
            loss, out["G_gan"] = loss + self.cfg["gan_weight"] * adv, adv.detach()
        return {"loss": loss, **out}
