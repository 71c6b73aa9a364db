"""DualGAN: Yi, Zhang, Tan & Gong, "DualGAN: Unsupervised Dual Learning for Image-to-Image
Translation", ICCV 2017.

What is different: the same closed loop as CycleGAN (two translators, each other's inverse, with
a reconstruction loss both ways), but trained as two *Wasserstein* GANs: the discriminators are
critics with a linear output, kept Lipschitz by clipping every weight to [-c, c] after each update,
trained ``n_critic`` times per generator update with RMSProp (the WGAN recipe of Arjovsky et al.,
which the paper adopts because momentum-based optimisers were unstable there). Generators are
pix2pix's U-Net (skips, dropout) and critics its PatchGAN. Names here: G_AB: A -> B (the paper's
G_A: U -> V), G_BA: B -> A (G_B), D_B judges domain B (D_A), D_A domain A (D_B). G's loss:
``lambda_A * |G_BA(G_AB(a)) - a|_1 + lambda_B * |G_AB(G_BA(b)) - b|_1 - D_B(G_AB(a)) - D_A(G_BA(b))``;
the paper sets lambda_U, lambda_V in [100, 1000], clip c = 0.01, n_critic 2..4, batch 1..4,
RMSProp lr 5e-5. Those are the defaults from 64x64 up. On 28x28 digits they give blurred grey copies
of the input (docs/translation2.md): the reconstruction term at 500 outweighs critics whose outputs
clipping at 0.01 keeps tiny, so G copies through the U-Net's skips. Below 64x64 the unset weights
are lambda 20, clip 0.1 and lr 1e-4, the best of the measured probes (``SIZED``).

Settings: ``lambda_A``, ``lambda_B``, ``clip``, ``n_critic``, ``g_width``, ``d_width``, ``d_layers``
(None: 3 from 64x64 up, 2 below), ``norm``, ``dropout``, ``cycle_noise`` (0: none; ``cycle_noise_A``/``_B``
per cycle: Gaussian noise on each translation before the other generator reconstructs from it, as for
CycleGAN, :meth:`Translator.jam`), ``direction``, ``jitter``; ``ema`` keeps EMA copies of both generators.
"""
from __future__ import annotations

import itertools

import torch

from .. import losses
from ..errors import ConfigError
from ..nn import PatchDiscriminator, UNetGenerator
from ..losses import l1
from ..registry import register
from .base import GANModel, Phase
from .translation import TwoWay


@register
class DualGAN(TwoWay, GANModel):
    name = "dualgan"
    family = "translation"
    paper = "Yi et al., DualGAN: Unsupervised Dual Learning for Image-to-Image Translation"
    year = 2017
    defaults = {"g_width": 64, "d_width": 64, "d_layers": None, "norm": "batch", "dropout": 0.5,
                "lambda_A": None, "lambda_B": None, "clip": None, "n_critic": 2, "lr": None,
                "batch_size": 1, "loss": "wasserstein", "direction": "auto", "jitter": None,
                "cycle_noise": 0.0, "cycle_noise_A": None, "cycle_noise_B": None}
    # Unset settings by image size: (below 64x64, from 64x64 up: the paper's).
    SIZED = {"lambda_A": (20.0, 500.0), "lambda_B": (20.0, 500.0), "clip": (0.1, 0.01), "lr": (1e-4, 5e-5)}

    def build(self):
        c, s = self.cfg, self.spec
        if c["loss"] != "wasserstein":
            raise ConfigError(f"dualgan's critics are Wasserstein critics with clipped weights; loss={c['loss']!r} "
                              "does not apply (use cyclegan for other objectives)")
        if self.sized("lambda_A") < 0 or self.sized("lambda_B") < 0 or not self.sized("clip") > 0 \
                or int(c["n_critic"]) < 1:
            raise ConfigError("dualgan needs lambda_A, lambda_B >= 0, clip > 0 and n_critic >= 1")
        self.check_cycle_noise()
        in_ch, out_ch = self.in_out()
        self.G_AB = UNetGenerator(in_ch, out_ch, s.image_size, c["g_width"], c["norm"], c["dropout"])
        self.G_BA = UNetGenerator(out_ch, in_ch, s.image_size, c["g_width"], c["norm"], c["dropout"])
        self.D_A = PatchDiscriminator(in_ch, c["d_width"], self.patch_layers(), c["norm"])
        self.D_B = PatchDiscriminator(out_ch, c["d_width"], self.patch_layers(), c["norm"])
        if s.image_size < self.D_A.min_size:
            raise ConfigError(f"a PatchGAN with d_layers={self.patch_layers()} needs images of at least "
                              f"{self.D_A.min_size}x{self.D_A.min_size}, got {s.image_size}")

    def optimizers(self):
        c = self.cfg
        return {"G": torch.optim.RMSprop(itertools.chain(self.G_AB.parameters(), self.G_BA.parameters()),
                                         lr=c["lr_g"] or self.sized("lr")),
                "D": torch.optim.RMSprop(itertools.chain(self.D_A.parameters(), self.D_B.parameters()),
                                         lr=c["lr_d"] or self.sized("lr"))}

    def phases(self):
        # n_critic critic updates, each on a fresh batch, then one generator update (the WGAN loop)
        return [Phase("D", self.d_step, ("D",), int(self.cfg["n_critic"]), fresh=True),
                Phase("G", self.g_step, ("G",))]

    @torch.no_grad()
    def after_phase(self, name):
        super().after_phase(name)
        if name == "D":  # the critics' Lipschitz constraint: every weight into [-c, c]
            clip = self.sized("clip")
            for p in itertools.chain(self.D_A.parameters(), self.D_B.parameters()):
                p.clamp_(-clip, clip)

    def d_step(self, batch):
        a, b = batch["A"], batch["B"]
        with torch.no_grad():
            fake_b, fake_a = self.G_AB(a), self.G_BA(b)
        d_a = losses.d_loss("wasserstein", self.D_A(a), self.D_A(fake_a))
        d_b = losses.d_loss("wasserstein", self.D_B(b), self.D_B(fake_b))
        return {"loss": d_a + d_b, "D_A": d_a.detach(), "D_B": d_b.detach()}

    def g_terms(self, batch) -> dict:
        """Every term of G's loss, unweighted."""
        a, b = batch["A"], batch["B"]
        fake_b, fake_a = self.G_AB(a), self.G_BA(b)
        return {"G_AB_gan": losses.g_loss("wasserstein", self.D_B(fake_b)),
                "G_BA_gan": losses.g_loss("wasserstein", self.D_A(fake_a)),
                "recon_A": l1(self.G_BA(self.jam(fake_b, "A")), a), "recon_B": l1(self.G_AB(self.jam(fake_a, "B")), b)}

    def g_step(self, batch):
        t = self.g_terms(batch)
        loss = (t["G_AB_gan"] + t["G_BA_gan"]
                + self.sized("lambda_A") * t["recon_A"] + self.sized("lambda_B") * t["recon_B"])
        return {"loss": loss, **{k: v.detach() for k, v in t.items()}}

