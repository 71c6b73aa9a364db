"""MUNIT: Huang, Liu, Belongie & Kautz, "Multimodal Unsupervised Image-to-Image Translation",
ECCV 2018.

What is different: an image is split into a *content* code (a spatial map, shared by both
domains) and a *style* code (an 8-number vector, specific to its domain). Each domain has a
content encoder E_c, a style encoder E_s and a decoder G; translating a -> B decodes a's content
with a style of B: G_B(E_c_A(a), s), s drawn from N(0, I) (so one input has many outputs) or
E_s_B(b) of an example b. The style reaches the decoder only through AdaIN: an MLP maps s to the
scale and shift of every normalisation layer of G's residual blocks (``nn.style.AdaINDecoder``).
No pairs are needed; the losses tie the codes together instead of a cycle through the images:

- image reconstruction: G_A(E_c_A(a), E_s_A(a)) ~ a (L1, weight ``lambda_x`` = 10);
- latent reconstruction of a translation v = G_B(E_c_A(a), s_B): E_c_B(v) ~ E_c_A(a) (content,
  ``lambda_c`` = 1) and E_s_B(v) ~ s_B (style, ``lambda_s`` = 1), L1;
- optional explicit cycle G_A(E_c_B(v), E_s_A(a)) ~ a (``lambda_cyc``, 0 as in the paper's
  default config);
- adversarial: least squares against multi-scale PatchGANs D_A, D_B (``d_scales``).

Adam 1e-4, betas (0.5, 0.999), batch size 1, the authors' weight decay 1e-4 left out. At 28x28
(the digit domains) the defaults are small: width 16, two downsamplings, two residual blocks,
two D scales of two layers.

Settings: ``style_dim`` (8), ``lambda_x``, ``lambda_c``, ``lambda_s``, ``lambda_cyc``,
``g_width``, ``d_width``, ``n_down``, ``n_res``, ``mlp_dim``, ``d_layers`` (None: 4 from 64x64 up,
2 below), ``d_scales``, ``direction``, ``jitter``.
"""
from __future__ import annotations

import itertools

from ..errors import ConfigError
from ..losses import l1, ls_to
from ..nn import init_weights
from ..nn.style import AdaINDecoder, ContentEncoder, MultiScaleDiscriminator, StyleEncoder
from ..registry import register
from .base import GANModel, Phase
from .multimodal import Multimodal
from .translation import TwoWay


def ls_real(outs):
    """Least-squares loss of a multi-scale D's maps against the real target 1, summed over scales."""
    return sum(ls_to(o, 1.0) for o in outs)


def ls_fake(outs):
    return sum(ls_to(o, 0.0) for o in outs)


@register
class MUNIT(Multimodal, TwoWay, GANModel):
    name = "munit"
    family = "translation"
    paper = "Huang et al., Multimodal Unsupervised Image-to-Image Translation"
    year = 2018
    defaults = {"style_dim": 8, "g_width": None, "d_width": None, "n_down": 2, "n_res": None, "mlp_dim": None,
                "d_layers": None, "d_scales": None, "lambda_x": 10.0, "lambda_c": 1.0, "lambda_s": 1.0,
                "lambda_cyc": 0.0, "lr": 1e-4, "batch_size": 1, "direction": "auto", "jitter": None}
    ema_nets = ("E_c_A", "E_c_B", "E_s_A", "E_s_B", "G_A", "G_B")
    generator = "G_B"
    directions = {"AtoB": "G_B", "BtoA": "G_A"}

    def _size_defaults(self) -> dict:
        return {"g_width": self.by_size("g_width", 16, 64), "d_width": self.by_size("d_width", 16, 64),
                "n_res": self.by_size("n_res", 2, 4), "mlp_dim": self.by_size("mlp_dim", 64, 256),
                "d_layers": self.by_size("d_layers", 2, 4), "d_scales": self.by_size("d_scales", 2, 3)}

    def build(self):
        c, s = self.cfg, self.spec
        for k in ("lambda_x", "lambda_c", "lambda_s", "lambda_cyc"):
            if c[k] < 0:
                raise ConfigError(f"{k} must be >= 0, got {c[k]}")
        if c["style_dim"] < 1:
            raise ConfigError(f"style_dim must be >= 1, got {c['style_dim']}")
        k = self._size_defaults()
        if s.image_size % (2 ** c["n_down"]):
            raise ConfigError(f"{c['n_down']} downsamplings need an image size that is a multiple of "
                              f"{2 ** c['n_down']}, got {s.image_size}")
        for dom, ch in zip("AB", self.in_out()):
            enc = ContentEncoder(ch, k["g_width"], c["n_down"], k["n_res"])
            setattr(self, f"E_c_{dom}", enc)
            setattr(self, f"E_s_{dom}", StyleEncoder(ch, c["style_dim"], k["g_width"], 4 if s.image_size >= 64 else 2))
            setattr(self, f"G_{dom}", AdaINDecoder(enc.out_channels, ch, c["style_dim"], c["n_down"], k["n_res"],
                                                   k["mlp_dim"]))
            for name in ("E_c", "E_s", "G"):  # the authors' He init of the generators (D keeps N(0, 0.02))
                init_weights(getattr(self, f"{name}_{dom}"), "kaiming")
            setattr(self, f"D_{dom}", MultiScaleDiscriminator(ch, k["d_width"], k["d_layers"], k["d_scales"]))
        if s.image_size < self.D_A.min_size:
            raise ConfigError(f"a {k['d_scales']}-scale PatchGAN of {k['d_layers']} layers needs images of at least "
                              f"{self.D_A.min_size}x{self.D_A.min_size}, got {s.image_size}: lower d_scales")

    def optimizers(self):
        c = self.cfg
        gen = itertools.chain(*(getattr(self, n).parameters() for n in self.ema_nets))
        return {"G": self.adam(gen, c["lr_g"] or c["lr"]),
                "D": self.adam(itertools.chain(self.D_A.parameters(), self.D_B.parameters()), c["lr_d"] or c["lr"])}

    def phases(self):
        # D first on translations with fresh styles, then the generators (the authors' order).
        return [Phase("D", self.d_step, ("D",)), Phase("G", self.g_step, ("G",))]

    # -- the Multimodal interface -----------------------------------------------------------
    def content(self, x, direction, use_ema=False):
        return self.net(f"E_c_{direction[0]}", use_ema)(x)

    def style_of(self, y, direction, use_ema=False):
        return self.net(f"E_s_{direction[-1]}", use_ema)(y)

    def decode(self, content, style, direction, use_ema=False):
        return self.net(f"G_{direction[-1]}", use_ema)(content, style)

    # -- training ---------------------------------------------------------------------------
    def g_terms(self, batch) -> dict:
        """Every term of the generators' loss, unweighted (so tests can check them one by one)."""
        a, b = batch["A"], batch["B"]
        n = len(a)
        c_a, s_a = self.E_c_A(a), self.E_s_A(a)
        c_b, s_b = self.E_c_B(b), self.E_s_B(b)
        s_a_rand, s_b_rand = self.draw_style(n), self.draw_style(n)
        fake_a, fake_b = self.G_A(c_b, s_a_rand), self.G_B(c_a, s_b_rand)  # b -> A, a -> B
        c_b_rec, s_a_rec = self.E_c_A(fake_a), self.E_s_A(fake_a)
        c_a_rec, s_b_rec = self.E_c_B(fake_b), self.E_s_B(fake_b)
        t = {"fake_A": fake_a, "fake_B": fake_b,
             "G_A_gan": ls_real(self.D_A(fake_a)), "G_B_gan": ls_real(self.D_B(fake_b)),
             "recon_x_A": l1(self.G_A(c_a, s_a), a), "recon_x_B": l1(self.G_B(c_b, s_b), b),
             "recon_c_A": l1(c_a_rec, c_a), "recon_c_B": l1(c_b_rec, c_b),
             "recon_s_A": l1(s_a_rec, s_a_rand), "recon_s_B": l1(s_b_rec, s_b_rand)}
        if self.cfg["lambda_cyc"]:
            t["cycle_A"] = l1(self.G_A(c_a_rec, s_a), a)
            t["cycle_B"] = l1(self.G_B(c_b_rec, s_b), b)
        return t

    def g_step(self, batch):
        c, t = self.cfg, self.g_terms(batch)
        del t["fake_A"], t["fake_B"]
        loss = (t["G_A_gan"] + t["G_B_gan"] + c["lambda_x"] * (t["recon_x_A"] + t["recon_x_B"])
                + c["lambda_c"] * (t["recon_c_A"] + t["recon_c_B"]) + c["lambda_s"] * (t["recon_s_A"] + t["recon_s_B"]))
        if c["lambda_cyc"]:
            loss = loss + c["lambda_cyc"] * (t["cycle_A"] + t["cycle_B"])
        return {"loss": loss, **{k: v.detach() for k, v in t.items()}}

    def d_step(self, batch):
        a, b = batch["A"], batch["B"]
        n = len(a)
        fake_a = self.G_A(self.E_c_B(b), self.draw_style(n)).detach()
        fake_b = self.G_B(self.E_c_A(a), self.draw_style(n)).detach()
        d_a = ls_real(self.D_A(a)) + ls_fake(self.D_A(fake_a))
        d_b = ls_real(self.D_B(b)) + ls_fake(self.D_B(fake_b))
        return {"loss": d_a + d_b, "D_A": d_a.detach(), "D_B": d_b.detach()}
