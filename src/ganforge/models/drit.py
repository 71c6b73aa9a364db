"""DRIT: Lee, Tseng, Huang, Singh & Yang, "Diverse Image-to-Image Translation via Disentangled
Representations", ECCV 2018.

What is different: like MUNIT, an image is split into a content (spatial) and an attribute (a
vector, per domain) code, but the content space is made *shared* explicitly rather than through
reconstruction alone:

- the content encoders of A and B share their last layer (``nn.style.SharedContentEncoder``) and
  a *content discriminator* D_c tries to tell which domain a content map came from, while the
  encoders are trained to leave it at 1/2 (``lambda_content`` = 1): content carries no domain;
- the *cross-cycle consistency* loss: swap the attributes of a and b, u = G_A(c_b, z_a) and
  v = G_B(c_a, z_b), then encode u and v and swap back: G_A(E_c(v), E_a_A(u)) ~ a and
  G_B(E_c(u), E_a_B(v)) ~ b (L1, ``lambda_cc`` = 10): two translations, back where one began;
- self-reconstruction G_A(c_a, z_a) ~ a (L1, ``lambda_rec`` = 10);
- *latent regression*: a random attribute z ~ N(0, I) through G and back through E_a must return
  z (L1, ``lambda_lr`` = 10), updating G only (E_a held, ``multimodal.frozen``);
- KL(E_a(x) || N(0, I)) (``lambda_kl`` = 0.01): attribute encoders are stochastic, and test-time
  attributes are drawn from the prior;
- domain discriminators D_A, D_B judge both the attribute-swapped and the random-attribute
  outputs (the paper's BCE GAN loss).

The attribute enters G by concatenation at every block (``nn.style.ConcatDecoder``), DRIT's
"concat" generator. Adam 1e-4 (0.5, 0.999), batch size 1 (the paper's 2). Settings:
``style_dim`` (attribute size, 8), ``lambda_content``, ``lambda_cc``, ``lambda_rec``, ``lambda_lr``,
``lambda_kl``, ``g_width``, ``d_width``, ``n_down``, ``n_res``, ``d_layers``, ``direction``, ``jitter``.
"""
from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F

from ..errors import ConfigError
from ..losses import bce_to, l1
from ..nn import PatchDiscriminator
from ..nn.style import ConcatDecoder, ContentDiscriminator, SharedContentEncoder, StyleEncoder, kl_normal
from ..registry import register
from .base import GANModel, Phase
from .multimodal import Multimodal, frozen
from .translation import TwoWay




@register
class DRIT(Multimodal, TwoWay, GANModel):
    name = "drit"
    family = "translation"
    paper = "Lee et al., Diverse Image-to-Image Translation via Disentangled Representations"
    year = 2018
    defaults = {"style_dim": 8, "g_width": None, "d_width": None, "n_down": 2, "n_res": None, "d_layers": None,
                "lambda_content": 1.0, "lambda_cc": 10.0, "lambda_rec": 10.0, "lambda_lr": 10.0, "lambda_kl": 0.01,
                "loss": "nonsaturating", "lr": 1e-4, "batch_size": 1, "direction": "auto", "jitter": None}
    ema_nets = ("E_c", "E_a_A", "E_a_B", "G_A", "G_B")
    generator = "G_B"
    directions = {"AtoB": "G_B", "BtoA": "G_A"}

    def build(self):
        c, s = self.cfg, self.spec
        for k in ("lambda_content", "lambda_cc", "lambda_rec", "lambda_lr", "lambda_kl"):
            if c[k] < 0:
                raise ConfigError(f"{k} must be >= 0, got {c[k]}")
        if c["style_dim"] < 1:
            raise ConfigError(f"style_dim must be >= 1, got {c['style_dim']}")
        if s.image_size % (2 ** c["n_down"]):
            raise ConfigError(f"{c['n_down']} downsamplings need an image size that is a multiple of "
                              f"{2 ** c['n_down']}, got {s.image_size}")
        big = s.image_size >= 64
        gw = c["g_width"] or (64 if big else 16)
        dw = c["d_width"] or (64 if big else 16)
        n_res = self.by_size("n_res", 2, 4)
        in_a, in_b = self.in_out()
        self.E_c = SharedContentEncoder(in_a, in_b, gw, c["n_down"], n_res)
        cc, nz = self.E_c.out_channels, c["style_dim"]
        e_down = 4 if big else 2
        self.E_a_A = StyleEncoder(in_a, nz, gw, e_down, vae=True)
        self.E_a_B = StyleEncoder(in_b, nz, gw, e_down, vae=True)
        self.G_A = ConcatDecoder(cc, in_a, nz, c["n_down"], n_res)
        self.G_B = ConcatDecoder(cc, in_b, nz, c["n_down"], n_res)
        layers = self.patch_layers()
        self.D_A = PatchDiscriminator(in_a, dw, layers, "instance")
        self.D_B = PatchDiscriminator(in_b, dw, layers, "instance")
        self.D_c = ContentDiscriminator(cc, dw, 2)
        if s.image_size < self.D_A.min_size:
            raise ConfigError(f"a PatchGAN with d_layers={layers} needs images of at least "
                              f"{self.D_A.min_size}x{self.D_A.min_size}, got {s.image_size}")

    def optimizers(self):
        c = self.cfg
        lr_g, lr_d = c["lr_g"] or c["lr"], c["lr_d"] or c["lr"]
        gen = itertools.chain(*(getattr(self, n).parameters() for n in self.ema_nets))
        return {"G": self.adam(gen, lr_g),
                "D": self.adam(itertools.chain(self.D_A.parameters(), self.D_B.parameters()), lr_d),
                "D_c": self.adam(self.D_c.parameters(), lr_d)}

    def phases(self):
        return [Phase("D", self.d_step, ("D", "D_c")), Phase("G", self.g_step, ("G",))]

    # -- the Multimodal interface -----------------------------------------------------------
    def content(self, x, direction, use_ema=False):
        return self.net("E_c", use_ema)(x, direction[0])

    def style_of(self, y, direction, use_ema=False):
        return self.net(f"E_a_{direction[-1]}", use_ema)(y)[0]

    def decode(self, content, style, direction, use_ema=False):
        return self.net(f"G_{direction[-1]}", use_ema)(content, style)

    # -- training ---------------------------------------------------------------------------
    def attribute(self, x, domain: str):
        """E_a(x) -> (z, mu, logvar), z drawn by reparameterisation."""
        mu, logvar = getattr(self, f"E_a_{domain}")(x)
        return mu + (0.5 * logvar).exp() * self.randn(len(x), self.style_dim), mu, logvar

    def g_terms(self, batch) -> dict:
        """Every term of the encoders' and generators' loss, unweighted, and the fakes."""
        a, b = batch["A"], batch["B"]
        n = len(a)
        c_a, c_b = self.E_c(a, "A"), self.E_c(b, "B")
        z_a, mu_a, lv_a = self.attribute(a, "A")
        z_b, mu_b, lv_b = self.attribute(b, "B")
        # first translation: swap attributes
        u, v = self.G_A(c_b, z_a), self.G_B(c_a, z_b)  # u looks like A (b's content), v like B (a's)
        # second translation: encode u and v and swap back
        z_a2, _, _ = self.attribute(u, "A")
        z_b2, _, _ = self.attribute(v, "B")
        a_cc, b_cc = self.G_A(self.E_c(v, "B"), z_a2), self.G_B(self.E_c(u, "A"), z_b2)
        # random attributes, for the GAN and the latent regression
        z_ra, z_rb = self.draw_style(n), self.draw_style(n)
        r_a, r_b = self.G_A(c_b, z_ra), self.G_B(c_a, z_rb)
        t = {"u": u, "v": v, "rand_A": r_a, "rand_B": r_b,
             "content_adv": bce_to(self.D_c(c_a), 0.5) + bce_to(self.D_c(c_b), 0.5),
             "G_gan": (self.g_adversarial(self.D_A(u)) + self.g_adversarial(self.D_B(v))
                       + self.g_adversarial(self.D_A(r_a)) + self.g_adversarial(self.D_B(r_b))),
             "cross_cycle": l1(a_cc, a) + l1(b_cc, b),
             "recon": l1(self.G_A(c_a, z_a), a) + l1(self.G_B(c_b, z_b), b),
             "KL": kl_normal(mu_a, lv_a) + kl_normal(mu_b, lv_b),
             "latent": l1(frozen(self.E_a_A, r_a)[0], z_ra) + l1(frozen(self.E_a_B, r_b)[0], z_rb)}
        return t

    def g_step(self, batch):
        c, t = self.cfg, self.g_terms(batch)
        for k in ("u", "v", "rand_A", "rand_B"):
            del t[k]
        w = {"content_adv": c["lambda_content"], "G_gan": 1.0, "cross_cycle": c["lambda_cc"],
             "recon": c["lambda_rec"], "KL": c["lambda_kl"], "latent": c["lambda_lr"]}
        return {"loss": sum(w[k] * v for k, v in t.items()), **{k: v.detach() for k, v in t.items()}}

    def d_step(self, batch):
        a, b = batch["A"], batch["B"]
        n = len(a)
        with torch.no_grad():
            c_a, c_b = self.E_c(a, "A"), self.E_c(b, "B")
            u, v = self.G_A(c_b, self.attribute(a, "A")[0]), self.G_B(c_a, self.attribute(b, "B")[0])
            r_a, r_b = self.G_A(c_b, self.draw_style(n)), self.G_B(c_a, self.draw_style(n))
        d_a = self.d_adversarial(self.D_A(a), self.D_A(u)) + self.d_adversarial(self.D_A(a), self.D_A(r_a))
        d_b = self.d_adversarial(self.D_B(b), self.D_B(v)) + self.d_adversarial(self.D_B(b), self.D_B(r_b))
        # the content discriminator: which domain did this content come from (A: 1, B: 0)
        d_c = bce_to(self.D_c(c_a), 1.0) + bce_to(self.D_c(c_b), 0.0)
        return {"loss": d_a + d_b + d_c, "D_A": d_a.detach(), "D_B": d_b.detach(), "D_c": d_c.detach()}
