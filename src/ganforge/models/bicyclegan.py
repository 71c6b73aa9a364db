"""BicycleGAN: Zhu, Zhang, Pathak, Darrell, Efros, Wang & Shechtman, "Toward Multimodal
Image-to-Image Translation", NeurIPS 2017.

What is different: pix2pix on pairs, but G(A, z) also takes a code z (8 numbers, tiled over the
input as extra channels: ``nn.style.ZInput``), and two cycles between B and z keep G from
ignoring it:

- cVAE-GAN (B -> z -> B): an encoder E maps the target B to N(mu, sigma^2); z = mu + sigma * eps
  gives G(A, z) ~ B (L1, ``lambda_l1`` = 10), adversarial against D, and KL(E(B) || N(0, I))
  (``lambda_kl`` = 0.01) keeps the codes where test-time z are drawn (both weights the paper's,
  from 64x64 up; below it see the end);
- cLR-GAN (z -> B -> z): a random z ~ N(0, I) gives G(A, z), adversarial against a second
  discriminator D2, and E must recover it: |mu(G(A, z)) - z|_1 (``lambda_z`` = 0.5). That loss
  updates G only (E's parameters are held, ``multimodal.frozen``), as in the authors' code.

Least-squares GAN, PatchGANs that see B alone (the authors' default, not conditional on A), a
U-Net G (no dropout: z is its noise), a convolutional E (``nn.style.StyleEncoder`` with ``vae``); Adam 2e-4 (0.5,
0.999). The paper's baseline is ``variant=noise``: pix2pix with z injected but no E and no
latent loss (L1 + GAN only); G learns to ignore z and its outputs collapse to one per input
(``ganforge eval`` reports the diversity; docs/multimodal.md). ``variant=cvae`` and ``clr`` keep
one of the two cycles.

Settings: ``style_dim`` (nz, 8), ``lambda_l1``, ``lambda_kl``, ``lambda_z``, ``variant`` (bicycle |
cvae | clr | noise), ``g_width``/``d_width``/``e_width``, ``d_layers`` (None: 3 from 64x64 up, 2
below), ``norm``, ``direction``, ``jitter``, ``z_inject`` (``input``: z tiled over G's input, the
authors' default; ``all``: also over every encoder layer's input, their ``G_Unet_add_all``). On the 28x28 digit domains the U-Net pads to 32 and
crops back.

Unset (None), the widths and the two cVAE weights follow the image size: from 64x64 up the paper's
(widths 64, ``lambda_l1`` 10, ``lambda_kl`` 0.01); below it widths 16, ``lambda_l1`` 50 and
``lambda_kl`` 0.5 (the same ratio of KL to L1, 0.01, as 0.01/10 is not). On ``mnist-color`` at the
paper's 0.01/10 the KL of E's codes grew to 14-17 nats: E passed the digit's *shape* through z
besides its two colours (ln 56 = 4 nats), and G drew the shape from z rather than from A (measured
in docs/multimodal.md). At 0.5/50 the codes hold about 6 nats on 4 active numbers, the colours, and
G takes the shape from A. Why L1 is so weak there: fg and bg are both drawn from a palette that is
balanced per channel, so each channel of an ink pixel is 0 or 255 as often as one of a paper pixel;
without the colours (pix2pix, ``variant=noise``, the random-z outputs) the L1 to B carries no shape.
"""
from __future__ import annotations

import torch

from ..errors import ConfigError
from ..nn import PatchDiscriminator, UNetGenerator
from ..nn.style import StyleEncoder, ZInput, kl_normal
from ..losses import l1, ls_to
from ..registry import register
from .base import GANModel, Phase
from .multimodal import Multimodal, frozen

VARIANTS = ("bicycle", "cvae", "clr", "noise")
Z_INJECT = ("input", "all")



@register
class BicycleGAN(Multimodal, GANModel):
    name = "bicyclegan"
    family = "translation"
    paper = "Zhu et al., Toward Multimodal Image-to-Image Translation"
    year = 2017
    data_kinds = ("paired",)
    defaults = {"style_dim": 8, "g_width": None, "d_width": None, "e_width": None, "d_layers": None,
                "norm": "instance", "lambda_l1": None, "lambda_kl": None, "lambda_z": 0.5, "variant": "bicycle",
                "batch_size": 2, "direction": "auto", "jitter": None, "z_inject": "input"}
    ema_nets = ("G",)
    generator = "G"
    directions = {"AtoB": "G"}

    @property
    def cvae(self) -> bool:
        return self.cfg["variant"] in ("bicycle", "cvae")

    @property
    def clr(self) -> bool:
        return self.cfg["variant"] in ("bicycle", "clr", "noise")

    # Unset settings by image size: (below 64x64, from 64x64 up); see the docstring.
    SIZED = {"g_width": (16, 64), "d_width": (16, 64), "e_width": (16, 64), "lambda_l1": (50.0, 10.0),
             "lambda_kl": (0.5, 0.01)}

    def build(self):
        c, s = self.cfg, self.spec
        if c["variant"] not in VARIANTS:
            raise ConfigError(f"variant must be one of {', '.join(VARIANTS)}, got {c['variant']!r}")
        for k in ("lambda_l1", "lambda_kl", "lambda_z"):
            if (c[k] if k == "lambda_z" else self.sized(k)) < 0:
                raise ConfigError(f"{k} must be >= 0, got {c[k]}")
        if c["style_dim"] < 1:
            raise ConfigError(f"style_dim must be >= 1, got {c['style_dim']}")
        if c["z_inject"] not in Z_INJECT:
            raise ConfigError(f"z_inject must be one of {', '.join(Z_INJECT)}, got {c['z_inject']!r}")
        in_ch, out_ch = self.in_out()
        nz, gw = c["style_dim"], self.sized("g_width")
        if c["z_inject"] == "all":  # the authors' G_Unet_add_all: z at every encoder layer's input
            self.G = UNetGenerator(in_ch, out_ch, s.image_size, gw, c["norm"], dropout=0.0, z_dim=nz)
        else:  # G_Unet_add_input, the authors' default
            self.G = ZInput(UNetGenerator(in_ch + nz, out_ch, s.image_size, gw, c["norm"], dropout=0.0), nz)
        n_down = 4 if s.image_size >= 64 else 2
        if c["variant"] != "noise":
            self.E = StyleEncoder(out_ch, nz, self.sized("e_width"), n_down, vae=True)
        # D judges the outputs of the encoded z, D2 those of the random z (the authors' two D's):
        # the two kinds of output differ early on, and one D would judge them as one.
        if self.cvae:
            self.D = PatchDiscriminator(out_ch, self.sized("d_width"), self.patch_layers(), "none")
        if self.clr:
            self.D2 = PatchDiscriminator(out_ch, self.sized("d_width"), self.patch_layers(), "none")
        d = self.D if self.cvae else self.D2
        if s.image_size < d.min_size:
            raise ConfigError(f"a PatchGAN with d_layers={self.patch_layers()} needs images of at least "
                              f"{d.min_size}x{d.min_size}, got {s.image_size}")

    def optimizers(self):
        c = self.cfg
        lr_g, lr_d = c["lr_g"] or c["lr"], c["lr_d"] or c["lr"]
        out = {"G": self.adam(self.G.parameters(), lr_g)}
        if hasattr(self, "E"):
            out["E"] = self.adam(self.E.parameters(), lr_g)
        out["D"] = self.adam([p for n in ("D", "D2") if hasattr(self, n) for p in getattr(self, n).parameters()], lr_d)
        return out

    def phases(self):
        ge = ("G", "E") if hasattr(self, "E") else ("G",)
        return [Phase("D", self.d_step, ("D",)), Phase("G", self.g_step, ge)]

    # -- the Multimodal interface -----------------------------------------------------------
    def content(self, x, direction, use_ema=False):
        return x  # the input image itself is what G keeps

    def style_of(self, y, direction, use_ema=False):
        if not hasattr(self, "E"):
            raise ConfigError(f"{self.name} with variant={self.cfg['variant']} has no encoder E, so no style "
                              "can be taken from an example; use --styles K")
        return self.E(y)[0]

    def decode(self, content, style, direction, use_ema=False):
        return self.net("G", use_ema)(content, style)

    # -- training ---------------------------------------------------------------------------
    def encode(self, b):
        """E(B) -> (z, mu, logvar), z drawn by reparameterisation."""
        mu, logvar = self.E(b)
        return mu + (0.5 * logvar).exp() * self.randn(len(b), self.style_dim), mu, logvar

    def g_terms(self, batch) -> dict:
        """Every term of G's and E's loss, unweighted, and the fakes."""
        a, b = batch["A"], batch["B"]
        t = {}
        if self.cvae:  # B -> z -> B
            z_enc, mu, logvar = self.encode(b)
            fake_enc = self.G(a, z_enc)
            t.update(fake_enc=fake_enc, G_gan=ls_to(self.D(fake_enc), 1.0), L1=l1(fake_enc, b),
                     KL=kl_normal(mu, logvar))
        if self.clr:  # z -> B -> z
            z = self.draw_style(len(a))
            fake_rand = self.G(a, z)
            t.update(fake_rand=fake_rand, G2_gan=ls_to(self.D2(fake_rand), 1.0))
            if self.cfg["variant"] == "noise":
                # pix2pix with noise: the L1 to the target on the random-z output, nothing ties z to it
                t["L1"] = l1(fake_rand, b)
            else:
                t["z_L1"] = l1(frozen(self.E, fake_rand)[0], z)
        return t

    def g_step(self, batch):
        c, t = self.cfg, self.g_terms(batch)
        t.pop("fake_enc", None), t.pop("fake_rand", None)
        weights = {"G_gan": 1.0, "G2_gan": 1.0, "L1": self.sized("lambda_l1"), "KL": self.sized("lambda_kl"),
                   "z_L1": c["lambda_z"]}
        loss = sum(weights[k] * v for k, v in t.items())
        return {"loss": loss, **{k: v.detach() for k, v in t.items()}}

    def d_step(self, batch):
        a, b = batch["A"], batch["B"]
        out, loss = {}, 0.0
        with torch.no_grad():
            if self.cvae:
                fake_enc = self.G(a, self.encode(b)[0])
            if self.clr:
                fake_rand = self.G(a, self.draw_style(len(a)))
        if self.cvae:
            d = ls_to(self.D(b), 1.0) + ls_to(self.D(fake_enc), 0.0)
            loss, out["D"] = loss + d, d.detach()
        if self.clr:
            d2 = ls_to(self.D2(b), 1.0) + ls_to(self.D2(fake_rand), 0.0)
            loss, out["D2"] = loss + d2, d2.detach()
        return {"loss": loss, **out}
