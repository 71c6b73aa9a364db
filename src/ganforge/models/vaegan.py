"""VAE-GAN: Larsen, Sønderby, Larochelle & Winther, "Autoencoding beyond pixels using a learned
similarity metric", ICML 2016; and its baseline, the VAE: Kingma & Welling, "Auto-Encoding
Variational Bayes", ICLR 2014.

VAE (``vae``): an encoder E gives q(z|x) = N(mu(x), diag exp(logvar(x))); a code drawn from it by
the reparameterisation z = mu + exp(logvar / 2) * eps, eps ~ N(0, I), is decoded by G (the
decoder, what samples from the prior N(0, I)). E and G minimise the negative ELBO: the pixel
reconstruction error -log p(x|z) plus KL(q(z|x) || N(0, I)), in one phase with one optimizer.
``likelihood=bernoulli`` (default; Kingma & Welling's choice for MNIST) reads G's pre-tanh output
as the logits of p(x|z) over grey levels in [0, 1]; ``likelihood=gaussian`` is a Gaussian of fixed
``recon_sigma`` around G(z) on the [-1, 1] scale (a squared error, which the VAE-GAN paper's own
VAE baseline used).

VAE-GAN (``vaegan``): the same E and G (the paper's Enc and Dec) and a GAN discriminator D (Dis).
Element-wise pixel errors reward blur; here the reconstruction error is measured in D's hidden
features instead, the "learned similarity": L_llike = -log N(Dis_l(x) | Dis_l(G(z)), I) =
0.5 * ||Dis_l(x) - Dis_l(G(z))||^2 (plus a constant), z ~ q(z|x), on D's ``llike_layer``-th conv
block (default: its last, the features D's linear head reads). The three losses and who each
trains (the paper's Algorithm 1):

- E:  L_prior + L_llike                       (L_prior: the KL term)
- G:  gamma * L_llike + L_GAN(G)              (G's side of the GAN game, of both kinds of fake)
- D:  L_GAN(D) on x, G(z_p) with z_p ~ N(0, I), and G(E(x)): the reconstructions are fakes too.

E and G are updated together, from one forward pass: the gradient of L_llike reaches E unweighted
and G's weights scaled by gamma (a gradient-scaling node between E's code and G, as the authors'
code scales the decoder's gradients), and G's GAN term is taken on G(z) with z cut off from E, so E
never sees L_GAN. D's phase then judges the fakes that pass made (G and E as they were before
their update, like the paper's simultaneous updates) against the same real batch: L_GAN(D) is the
configured ``loss``'s D loss once per kind of fake, so real and generated images weigh the same,
as in the authors' later code (``real_vs_gen_weight=0.5``). D is never trained by L_llike.

Not reproduced: the authors' equilibrium margin (pausing D or Dec when D's cost leaves a band),
RMSProp (Adam here), and their 64x64 networks; these are small DCGAN-style networks for 28 x 28
digits (E: D's conv body with a 2 * z_dim head). ``gamma``: the paper's 1e-6 balances sums over
64x64 face features; with D's 2 * d_width x 7 x 7 features summed per image and GAN losses
averaged per image, the default 1e-2 (docs/encoders.md) puts the two on a similar scale.
``loss=minimax`` gives the paper's decoder objective (maximising L_GAN); the non-saturating one is
the default, as for every model here.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .. import losses
from ..errors import ConfigError, closest
from ..nn import DCGANDiscriminator, DCGANGenerator
from ..registry import register
from .base import GANModel, Phase
from .encoding import Encoding

LIKELIHOODS = ("bernoulli", "gaussian")


class GaussianEncoder(nn.Module):
    """x -> (mu, logvar) of q(z|x): the DCGAN D's conv body with a linear head of 2 * z_dim."""

    def __init__(self, channels: int, image_size: int, z_dim: int, width: int):
        super().__init__()
        self.net = DCGANDiscriminator(channels, image_size, width, out_dim=2 * z_dim)

    def forward(self, x):
        mu, logvar = self.net(x).chunk(2, 1)
        return mu, logvar


class _ScaleGrad(torch.autograd.Function):
    """Identity forward; the backward multiplies the gradient by ``scale``."""

    @staticmethod
    def forward(ctx, x, scale: float):
        ctx.scale = scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return grad * ctx.scale, None


class _GaussianAutoencoder(Encoding, GANModel):
    """What the VAE and the VAE-GAN share: E (reparameterised Gaussian), G (decoder), the KL term."""

    family = "encoders"
    ema_nets = ("G", "E")  # an EMA run encodes and decodes with the averaged pair

    def build_autoencoder(self) -> None:
        c, s = self.cfg, self.spec
        for key in ("z_dim", "g_width", "e_width"):
            if isinstance(c[key], bool) or not isinstance(c[key], int) or c[key] < 1:
                raise ConfigError(f"{key} must be a positive integer, got {c[key]!r}")
        self.E = GaussianEncoder(s.channels, s.image_size, c["z_dim"], c["e_width"])
        self.G = DCGANGenerator(c["z_dim"], s.channels, s.image_size, c["g_width"])

    def encode_batch(self, x, E):
        return E(x)[0]  # the posterior's mean: the deterministic code

    def posterior_sample(self, x):
        """(z, mu, logvar): a code drawn from q(z|x) by the reparameterisation trick, so that the
        gradient of whatever z feeds reaches mu and logvar."""
        mu, logvar = self.E(x)
        return self.reparameterise(mu, logvar), mu, logvar


@register
class VAE(_GaussianAutoencoder):
    name = "vae"
    paper = "Kingma & Welling, Auto-Encoding Variational Bayes"
    year = 2014
    # Adam at 1e-3 with the usual betas: the VAE's own common setting, not DCGAN's (ganforge's choice).
    defaults = {"z_dim": 32, "g_width": 32, "e_width": 32, "likelihood": "bernoulli", "recon_sigma": 0.1,
                "lr": 1e-3, "betas": [0.9, 0.999]}

    def build(self):
        c = self.cfg
        if c["likelihood"] not in LIKELIHOODS:
            raise ConfigError(f"unknown likelihood {c['likelihood']!r}{closest(str(c['likelihood']), LIKELIHOODS)}; "
                              f"choose from {', '.join(LIKELIHOODS)}")
        if not c["recon_sigma"] > 0:
            raise ConfigError(f"recon_sigma must be > 0, got {c['recon_sigma']!r}")
        self.build_autoencoder()

    def optimizers(self):
        return {"VAE": self.adam([*self.E.parameters(), *self.G.parameters()], self.cfg["lr"])}

    def phases(self):
        return [Phase("VAE", self.vae_step, ("VAE",))]

    def pixel_nll(self, x, z):
        """-log p(x|z) per image (up to a constant for the Gaussian), averaged over the batch."""
        if self.cfg["likelihood"] == "bernoulli":
            # G's tanh output is 2 * sigmoid(2a) - 1 of its pre-activation a: so 2a are the logits
            # of the grey level (x + 1) / 2, and samples stay G(z) as for every other model.
            logits = 2 * self.G.net[:-1](z)
            nll = F.binary_cross_entropy_with_logits(logits.float(), (x.float() + 1) / 2, reduction="none")
        else:
            nll = 0.5 * ((self.G(z).float() - x.float()) / self.cfg["recon_sigma"]).pow(2)
        return nll.flatten(1).sum(1).mean()

    def vae_step(self, batch):
        x = batch["x"]
        z, mu, logvar = self.posterior_sample(x)
        recon, kl = self.pixel_nll(x, z), losses.gaussian_kl(mu, logvar)
        return {"loss": recon + kl, "recon": recon.detach(), "KL": kl.detach()}


@register
class VAEGAN(_GaussianAutoencoder):
    name = "vaegan"
    paper = "Larsen et al., Autoencoding beyond pixels using a learned similarity metric"
    year = 2016
    defaults = {"z_dim": 32, "g_width": 32, "e_width": 32, "d_width": 32, "gamma": 1e-2, "llike_layer": 0,
                "loss": "nonsaturating", "lr": 3e-4}
    step_options = ("label_smoothing", "r1_gamma")

    def build(self):
        c, s = self.cfg, self.spec
        if isinstance(c["gamma"], bool) or not isinstance(c["gamma"], (int, float)) or not c["gamma"] > 0:
            raise ConfigError(f"gamma must be a weight > 0 (the decoder's reconstruction vs GAN balance), "
                              f"got {c['gamma']!r}")
        self.build_autoencoder()
        if isinstance(c["d_width"], bool) or not isinstance(c["d_width"], int) or c["d_width"] < 1:
            raise ConfigError(f"d_width must be a positive integer, got {c['d_width']!r}")
        self.D = DCGANDiscriminator(s.channels, s.image_size, c["d_width"])
        # D's conv blocks end where each activation is; Dis_l is the output of block l.
        self._block_ends = [i + 1 for i, m in enumerate(self.D.body) if isinstance(m, nn.LeakyReLU)]
        n = len(self._block_ends)
        l = c["llike_layer"]
        if isinstance(l, bool) or not isinstance(l, int) or not 0 <= l <= n:
            raise ConfigError(f"llike_layer must be one of D's conv blocks, 1..{n} (0: the last), got {l!r}")

    def optimizers(self):
        c = self.cfg
        lr_g, lr_d = c["lr_g"] or c["lr"], c["lr_d"] or c["lr"]
        return {"E": self.adam(self.E.parameters(), c["lr"]), "G": self.adam(self.G.parameters(), lr_g),
                "D": self.adam(self.D.parameters(), lr_d)}

    def phases(self):
        return [Phase("EG", self.eg_step, ("E", "G")), Phase("D", self.d_step, ("D",))]

    @property
    def layer(self) -> int:
        return self.cfg["llike_layer"] or len(self._block_ends)

    def dis_l(self, x):
        """Dis_l(x): D's hidden features at its ``llike_layer``-th conv block, flattened."""
        return self.D.body[:self._block_ends[self.layer - 1]](x).flatten(1)

    def llike(self, x, x_tilde):
        """L_llike^Dis_l: 0.5 * ||Dis_l(x) - Dis_l(x_tilde)||^2 per image, averaged over the batch."""
        # One pass over both, as in the authors' code: batch norm then normalises x and its
        # reconstruction alike, so their features differ only where the images do.
        f_tilde, f_x = self.dis_l(torch.cat([x_tilde, x])).float().chunk(2)
        return 0.5 * (f_tilde - f_x).pow(2).sum(1).mean()

    def eg_step(self, batch):
        x, gamma = batch["x"], self.cfg["gamma"]
        n = len(x)
        z, mu, logvar = self.posterior_sample(x)
        # The loss holds gamma * L_llike for G; 1/gamma on the way back to z gives E the whole of it.
        l_llike = self.llike(x, self.G(_ScaleGrad.apply(z, 1.0 / gamma)))
        l_prior = losses.gaussian_kl(mu, logvar)
        # Both kinds of fake: reconstructions (z cut off from E, which must not play the GAN game)
        # and prior samples.
        fakes = self.G(torch.cat([z.detach(), self.randn(n, z.shape[1]).to(z.dtype)]))
        d_fake = self.D(fakes)
        l_gan = self.g_adversarial(d_fake[:n]) + self.g_adversarial(d_fake[n:])
        self.share("fakes", fakes.detach())  # D's phase judges these (no network named: see d_step)
        return {"loss": l_prior + gamma * l_llike + l_gan, "L_prior": l_prior.detach(), "L_llike": l_llike.detach(),
                "L_GAN_G": l_gan.detach()}

    def d_step(self, batch):
        x = batch["x"]
        n = len(x)
        # Made by E and G before this iteration's update of them: all three losses then read the
        # same networks, as in the paper's simultaneous updates.
        fakes = self.reuse("fakes")
        if fakes is None or len(fakes) != 2 * n:
            with torch.no_grad():
                z, _, _ = self.posterior_sample(x)
                fakes = self.G(torch.cat([z, self.randn(n, z.shape[1]).to(z.dtype)]))
        real = self.r1_input(x)
        d_real, d_fake = self.D(real), self.D(fakes)
        loss = self.d_adversarial(d_real, d_fake[:n]) + self.d_adversarial(d_real, d_fake[n:])
        out = {"D(x)": d_real.mean(), "D(G(E(x)))": d_fake[:n].mean(), "D(G(z))": d_fake[n:].mean()}
        for name, term in self.r1(d_real, real).items():
            loss, out[name] = loss + term, term.detach()
        return {"loss": loss, **out}
