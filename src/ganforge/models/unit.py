"""UNIT: Liu, Breuel & Kautz, "Unsupervised Image-to-Image Translation Networks", NeurIPS 2017.

What is different: a *shared latent space*. A pair of corresponding images (a, b) is assumed to
come from one code z; encoders E_A, E_B map each domain into it and generators G_A, G_B map it
back out. The assumption is built into the weights: E_A and E_B share their last (high-level)
layers, G_A and G_B their first, so a code means the same thing to both domains. Translation A -> B
is G_B(E_A(a)). Each domain is a VAE (E, G with a Gaussian code of unit variance, z = E(x) + eps,
and the KL of q(z|x) from the prior N(0, I)), each output domain has a GAN (D_A, D_B), and
the cycle a -> G_B(z_a) -> E_B -> G_A -> a' reconstructs the input (with the KL of the
intermediate code too). Losses and weights of the authors' code: the GAN terms (least squares) x1,
the within-domain reconstructions x ``lambda_recon`` (10), the cycle reconstructions x
``lambda_cyc`` (10), the KL terms x ``lambda_kl`` (0.01 on the authors' mean(mu^2), which is
0.02 on the KL per latent dimension computed here with ``losses.gaussian_kl``). Adam 1e-4
(0.5, 0.999), weight decay 1e-4.

Networks (``E_A = E_A.front then E_A.shared``, and ``E_B.shared`` is the same module): each
encoder is a 7x7 conv, two stride-2 4x4 convs and ``n_res`` residual blocks of its own, then a
shared residual block giving the code's mean (a 4 * g_width x S/4 x S/4 map); each generator is a
shared residual block, ``n_res`` residual blocks of its own, two transposed convs and a 7x7 conv
to tanh. Instance norm. D_A, D_B are PatchGANs (``d_layers``; 2 below 64x64, as for CycleGAN).

Settings: ``lambda_recon``, ``lambda_cyc``, ``lambda_kl``, ``n_res``, ``share`` (false: no shared
layers, the control), ``g_width``, ``d_width``, ``d_layers``, ``norm``, ``direction``, ``jitter``,
``cycle_noise`` (0: none; ``cycle_noise_A``/``_B`` per cycle): Gaussian noise on each translation
before it is encoded again for the cycle, as for CycleGAN (:meth:`Translator.jam`).
The shared layers make the four networks overlap, so there are no EMA copies (``ema`` is refused).
"""
from __future__ import annotations

import torch
from torch import nn

from .. import losses
from ..errors import ConfigError
from ..nn import PatchDiscriminator, ResidualBlock, init_weights, norm_layer
from ..losses import l1, ls_to
from ..registry import register
from .base import GANModel, Phase
from .translation import TwoWay


def _conv(cin, cout, k, s, p, norm, transposed=False):
    layer = nn.ConvTranspose2d if transposed else nn.Conv2d
    return [layer(cin, cout, k, s, p, bias=norm == "none"), norm_layer(norm, cout), nn.ReLU(True)]


class Encoder(nn.Module):
    """x -> the code's mean: ``front`` (the domain's own layers), then ``shared``."""

    def __init__(self, ch: int, width: int, n_res: int, norm: str, shared: nn.Module):
        super().__init__()
        w = width
        self.front = nn.Sequential(nn.ReflectionPad2d(3), *_conv(ch, w, 7, 1, 0, norm), *_conv(w, 2 * w, 4, 2, 1, norm),
                                   *_conv(2 * w, 4 * w, 4, 2, 1, norm),
                                   *[ResidualBlock(4 * w, norm) for _ in range(n_res)])
        self.shared = shared
        init_weights(self.front)

    def forward(self, x):
        return self.shared(self.front(x))


class Decoder(nn.Module):
    """code -> image: ``shared`` first, then the domain's own layers ``back``."""

    def __init__(self, ch: int, width: int, n_res: int, norm: str, shared: nn.Module):
        super().__init__()
        w = width
        self.shared = shared
        self.back = nn.Sequential(*[ResidualBlock(4 * w, norm) for _ in range(n_res)],
                                  *_conv(4 * w, 2 * w, 4, 2, 1, norm, transposed=True),
                                  *_conv(2 * w, w, 4, 2, 1, norm, transposed=True),
                                  nn.ReflectionPad2d(3), nn.Conv2d(w, ch, 7), nn.Tanh())
        init_weights(self.back)

    def forward(self, z):
        return self.back(self.shared(z))


class Chain:
    """E then G, as one translator for ``Translator.translate``: not a module of its own, so the
    networks are not registered twice; train()/eval() reach both."""

    def __init__(self, *nets: nn.Module):
        self.nets = nets

    @property
    def training(self) -> bool:
        return self.nets[0].training

    def train(self, mode: bool = True):
        for n in self.nets:
            n.train(mode)
        return self

    def eval(self):
        return self.train(False)

    def __call__(self, x):
        for n in self.nets:
            x = n(x)
        return x


def unique_params(*nets: nn.Module) -> list:
    """The parameters of ``nets``, each once (shared layers belong to two of them)."""
    return list({id(p): p for net in nets for p in net.parameters()}.values())



@register
class UNIT(TwoWay, GANModel):
    name = "unit"
    family = "translation"
    paper = "Liu et al., Unsupervised Image-to-Image Translation Networks"
    year = 2017
    defaults = {"g_width": 32, "d_width": 32, "d_layers": None, "n_res": 1, "norm": "instance", "share": True,
                "lambda_recon": 10.0, "lambda_cyc": 10.0, "lambda_kl": 0.02, "batch_size": 8, "lr": 1e-4,
                "betas": [0.5, 0.999], "weight_decay": 1e-4, "direction": "auto", "jitter": None,
                "cycle_noise": 0.0, "cycle_noise_A": None, "cycle_noise_B": None}
    ema_nets = ()
    generator = "G_B"
    directions = {"AtoB": "E_A>G_B", "BtoA": "E_B>G_A"}

    def build(self):
        c, s = self.cfg, self.spec
        if c.get("ema"):
            raise ConfigError("unit's encoders and generators share layers, so it keeps no EMA copies: --set ema=0")
        if not isinstance(c["share"], bool):
            raise ConfigError(f"share must be true or false, got {c['share']!r}")
        for k in ("lambda_recon", "lambda_cyc", "lambda_kl"):
            if c[k] < 0:
                raise ConfigError(f"{k} must be >= 0, got {c[k]}")
        self.check_cycle_noise()
        if s.image_size % 4:
            raise ConfigError(f"unit's networks need an image size that is a multiple of 4, got {s.image_size}")
        in_ch, out_ch = self.in_out()
        w, n, norm = c["g_width"], c["n_res"], c["norm"]

        def block():
            return ResidualBlock(4 * w, norm)

        enc_shared, dec_shared = block(), block()
        self.E_A = Encoder(in_ch, w, n, norm, enc_shared)
        self.E_B = Encoder(out_ch, w, n, norm, enc_shared if c["share"] else block())
        self.G_A = Decoder(in_ch, w, n, norm, dec_shared)
        self.G_B = Decoder(out_ch, w, n, norm, dec_shared if c["share"] else block())
        self.D_A = PatchDiscriminator(in_ch, c["d_width"], self.patch_layers(), norm)
        self.D_B = PatchDiscriminator(out_ch, c["d_width"], self.patch_layers(), norm)
        if s.image_size < self.D_A.min_size:
            raise ConfigError(f"a PatchGAN with d_layers={self.patch_layers()} needs images of at least "
                              f"{self.D_A.min_size}x{self.D_A.min_size}, got {s.image_size}")

    def optimizers(self):
        c = self.cfg

        def adam(params, lr):
            return torch.optim.Adam(params, lr=lr, betas=tuple(c["betas"]), weight_decay=c["weight_decay"])

        return {"G": adam(unique_params(self.E_A, self.E_B, self.G_A, self.G_B), c["lr_g"] or c["lr"]),
                "D": adam(unique_params(self.D_A, self.D_B), c["lr_d"] or c["lr"])}

    def phases(self):
        # As the authors' trainer alternates: D on the current translations, then E and G.
        return [Phase("D", self.d_step, ("D",)), Phase("G", self.g_step, ("G",))]

    def translator(self, direction: str = "AtoB", use_ema: bool = True):
        e, g = self.translator_name(direction, use_ema).split(">")
        return Chain(getattr(self, e), getattr(self, g))  # the code's mean: no noise at test time

    def kl(self, mu):
        """KL(N(mu, I) || N(0, I)) per latent dimension (losses.gaussian_kl with unit variance)."""
        return losses.gaussian_kl(mu, torch.zeros_like(mu)) / mu[0].numel()

    def noisy(self, mu):
        return mu + self.randn(len(mu), *mu.shape[1:]).to(mu.dtype)

    def g_terms(self, batch) -> dict:
        """Every term of E and G's loss, unweighted (so that tests can check them by hand)."""
        a, b = batch["A"], batch["B"]
        mu_a, mu_b = self.E_A(a), self.E_B(b)
        z_a, z_b = self.noisy(mu_a), self.noisy(mu_b)
        fake_b, fake_a = self.G_B(z_a), self.G_A(z_b)  # translations out of the shared code
        # encoded again, for the cycle (through the cycle noise, when set: jam)
        mu_ab, mu_ba = self.E_B(self.jam(fake_b, "A")), self.E_A(self.jam(fake_a, "B"))
        return {
            "fake_A": fake_a, "fake_B": fake_b,
            "recon_A": l1(self.G_A(z_a), a), "recon_B": l1(self.G_B(z_b), b),
            "KL_A": self.kl(mu_a), "KL_B": self.kl(mu_b),
            "cycle_A": l1(self.G_A(self.noisy(mu_ab)), a),
            "cycle_B": l1(self.G_B(self.noisy(mu_ba)), b),
            "KL_cyc_A": self.kl(mu_ab), "KL_cyc_B": self.kl(mu_ba),
            "G_B_gan": ls_to(self.D_B(fake_b), 1.0), "G_A_gan": ls_to(self.D_A(fake_a), 1.0)}

    def g_loss(self, t: dict):
        c = self.cfg
        return (t["G_A_gan"] + t["G_B_gan"] + c["lambda_recon"] * (t["recon_A"] + t["recon_B"])
                + c["lambda_cyc"] * (t["cycle_A"] + t["cycle_B"])
                + c["lambda_kl"] * (t["KL_A"] + t["KL_B"] + t["KL_cyc_A"] + t["KL_cyc_B"]))

    def g_step(self, batch):
        t = self.g_terms(batch)
        t.pop("fake_A"), t.pop("fake_B")
        return {"loss": self.g_loss(t), **{k: v.detach() for k, v in t.items()}}

    def d_step(self, batch):
        a, b = batch["A"], batch["B"]
        with torch.no_grad():
            fake_b, fake_a = self.G_B(self.noisy(self.E_A(a))), self.G_A(self.noisy(self.E_B(b)))
        d_a = 0.5 * (ls_to(self.D_A(a), 1.0) + ls_to(self.D_A(fake_a), 0.0))
        d_b = 0.5 * (ls_to(self.D_B(b), 1.0) + ls_to(self.D_B(fake_b), 0.0))
        return {"loss": d_a + d_b, "D_A": d_a.detach(), "D_B": d_b.detach()}

