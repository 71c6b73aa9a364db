"""CycleGAN: Zhu, Park, Isola & Efros, "Unpaired Image-to-Image Translation using
Cycle-Consistent Adversarial Networks", ICCV 2017.

What is different: no pairs are needed. Two generators, G_AB: A -> B and G_BA: B -> A (the
paper's G and F), each with its own PatchGAN (D_B judges domain B, D_A domain A). The adversarial
losses alone would let G_AB map A to *any* B-looking image; the cycle-consistency loss
lambda_cyc * (|G_BA(G_AB(a)) - a|_1 + |G_AB(G_BA(b)) - b|_1), lambda_cyc = 10, ties each output to
its input. An identity loss lambda_id * lambda_cyc * (|G_AB(b) - b|_1 + |G_BA(a) - a|_1)
(lambda_id = 0.5) keeps colours when nothing needs changing. The adversarial loss is least
squares (Mao et al.), D's loss halved; D is trained on a history of the 50 last fakes (an image
pool, Shrivastava et al. 2017) rather than only the newest, which damps oscillation. Generators
are ResNets (9 blocks at 256x256, 6 at 128 and below), instance norm, batch size 1, Adam 2e-4
with beta1 0.5, the learning rate constant for the first half and then linearly to 0
(``lr_decay=0.5``). One optimizer for both G's and one for both D's, as in the authors' code.

``lambda_A`` and ``lambda_B`` (the authors' names; unset: lambda_cyc) weight the two cycles
apart. A cycle through a map that loses information asks the other generator to hide it: digits
-> edge maps drops stroke thickness, so a strong A -> B -> A cycle teaches G_AB to write it into
its edge maps faintly and G_BA to read it there, and on real edge maps, which carry no such
trace, G_BA then draws hollow outlines. Weakening that one cycle (``lambda_A``) lets D_A decide.

Settings: ``lambda_cyc``, ``lambda_id`` (a fraction of lambda_cyc; 0 when A and B differ in
channels), ``pool_size`` (0: no pool), ``n_blocks`` (None: by size), ``norm``,
``g_arch`` (``resnet``, or ``unet``: pix2pix's U-Net without dropout, as the authors' code offers),
``g_width``/``d_width``, ``d_layers`` (None: 3 from 64x64 up, 2 below), ``d_norm`` (None: ``norm``; see
:meth:`CycleGAN.d_shape`), ``cycle_noise`` (0: none; ``cycle_noise_A``/``_B`` per cycle; see
:meth:`Translator.jam`), ``direction``, ``jitter``; ``ema`` keeps EMA copies of both generators.
"""
from __future__ import annotations

import itertools

import torch

from ..errors import ConfigError
from ..nn import ImagePool, PatchDiscriminator, ResnetGenerator, UNetGenerator
from ..losses import l1, ls_to
from ..registry import register
from .base import GANModel, Phase
from .translation import TwoWay


@register
class CycleGAN(TwoWay, GANModel):
    name = "cyclegan"
    family = "translation"
    paper = "Zhu et al., Unpaired Image-to-Image Translation using Cycle-Consistent Adversarial Networks"
    year = 2017
    defaults = {"g_width": 64, "d_width": 64, "d_layers": None, "d_norm": None, "n_blocks": None, "norm": "instance",
                "g_arch": "resnet", "lambda_cyc": 10.0, "lambda_A": None, "lambda_B": None, "lambda_id": 0.5,
                "cycle_noise": 0.0, "cycle_noise_A": None, "cycle_noise_B": None, "pool_size": 50, "batch_size": 1,
                "lr_decay": 0.5, "direction": "auto", "jitter": None}

    def build(self):
        c, s = self.cfg, self.spec
        in_ch, out_ch = self.in_out()
        if any((c[k] or 0) < 0 for k in ("lambda_cyc", "lambda_A", "lambda_B", "lambda_id")):
            raise ConfigError("lambda_cyc, lambda_A, lambda_B and lambda_id must be >= 0")
        self.check_cycle_noise()
        if c["lambda_id"] and in_ch != out_ch:
            raise ConfigError(f"the identity loss feeds B to G_AB, which needs A and B of the same channels "
                              f"({in_ch} and {out_ch} here): --set lambda_id=0")
        if c["g_arch"] == "unet":
            # The CycleGAN authors' U-Net option: no dropout, their G's take no noise.
            self.G_AB = UNetGenerator(in_ch, out_ch, s.image_size, c["g_width"], c["norm"], dropout=0.0)
            self.G_BA = UNetGenerator(out_ch, in_ch, s.image_size, c["g_width"], c["norm"], dropout=0.0)
        elif c["g_arch"] == "resnet":
            if s.image_size % 4:
                raise ConfigError(f"the ResNet generator needs an image size that is a multiple of 4, "
                                  f"got {s.image_size}")
            blocks = c["n_blocks"] if c["n_blocks"] is not None else (9 if s.image_size >= 256 else 6)
            self.G_AB = ResnetGenerator(in_ch, out_ch, c["g_width"], blocks, c["norm"])
            self.G_BA = ResnetGenerator(out_ch, in_ch, c["g_width"], blocks, c["norm"])
        else:
            raise ConfigError(f"g_arch must be resnet or unet, got {c['g_arch']!r}")
        layers, d_norm = self.d_shape()
        self.D_A = PatchDiscriminator(in_ch, c["d_width"], layers, d_norm)
        self.D_B = PatchDiscriminator(out_ch, c["d_width"], layers, d_norm)
        if s.image_size < self.D_A.min_size:
            raise ConfigError(f"a PatchGAN with d_layers={layers} needs images of at least "
                              f"{self.D_A.min_size}x{self.D_A.min_size}, got {s.image_size}")
        # One pool per D, of the fakes it judges; their contents and random state are checkpointed.
        self.pool_A = ImagePool(c["pool_size"])
        self.pool_B = ImagePool(c["pool_size"])

    def d_shape(self) -> tuple[int, str]:
        """D_A's and D_B's PatchGAN as (layers, norm): ``d_layers`` (unset: by size, :meth:`patch_layers`) and
        ``d_norm`` (unset: ``norm``). ``d_layers=3, d_norm=none`` at 28x28 makes a D that ends on one logit
        seeing the whole digit (instance norm would all but erase its 3x3 and 2x2 maps); measured on the
        digit domains it did not stop G_BA's hollow digits (docs/translation.md)."""
        c = self.cfg
        return self.patch_layers(), c["d_norm"] or c["norm"]

    def optimizers(self):
        c = self.cfg
        return {"G": self.adam(itertools.chain(self.G_AB.parameters(), self.G_BA.parameters()), c["lr_g"] or c["lr"]),
                "D": self.adam(itertools.chain(self.D_A.parameters(), self.D_B.parameters()), c["lr_d"] or c["lr"])}

    def phases(self):
        # G first, then D on the fakes G just made (through the pools), as in the authors' code.
        return [Phase("G", self.g_step, ("G",)), Phase("D", self.d_step, ("D",))]

    def g_terms(self, batch) -> dict:
        """Every term of G's loss, unweighted (so tests can check them by hand)."""
        a, b = batch["A"], batch["B"]
        fake_b, fake_a = self.G_AB(a), self.G_BA(b)
        t = {"fake_A": fake_a, "fake_B": fake_b,
             "G_AB_gan": ls_to(self.D_B(fake_b), 1.0), "G_BA_gan": ls_to(self.D_A(fake_a), 1.0),
             "cycle_A": l1(self.G_BA(self.jam(fake_b, "A")), a), "cycle_B": l1(self.G_AB(self.jam(fake_a, "B")), b)}
        if self.cfg["lambda_id"]:
            t["idt_A"], t["idt_B"] = l1(self.G_BA(a), a), l1(self.G_AB(b), b)
        return t

    def g_step(self, batch):
        c, t = self.cfg, self.g_terms(batch)
        # D's phase judges these fakes; no network is named, since D may use them whatever G did since.
        self.share("fakes", (t.pop("fake_A").detach(), t.pop("fake_B").detach()))
        lam_a, lam_b = (self.own_or_shared(k, "lambda_cyc") for k in ("lambda_A", "lambda_B"))
        loss = t["G_AB_gan"] + t["G_BA_gan"] + lam_a * t["cycle_A"] + lam_b * t["cycle_B"]
        if c["lambda_id"]:
            loss = loss + c["lambda_cyc"] * c["lambda_id"] * (t["idt_A"] + t["idt_B"])
        return {"loss": loss, **{k: v.detach() for k, v in t.items()}}

    def d_step(self, batch):
        a, b = batch["A"], batch["B"]
        fakes = self.reuse("fakes")
        if fakes is None or len(fakes[0]) != len(a):
            with torch.no_grad():
                fakes = self.G_BA(b), self.G_AB(a)
        fake_a, fake_b = self.pool_A.query(fakes[0]), self.pool_B.query(fakes[1])
        d_a = 0.5 * (ls_to(self.D_A(a), 1.0) + ls_to(self.D_A(fake_a), 0.0))
        d_b = 0.5 * (ls_to(self.D_B(b), 1.0) + ls_to(self.D_B(fake_b), 0.0))
        return {"loss": d_a + d_b, "D_A": d_a.detach(), "D_B": d_b.detach()}

