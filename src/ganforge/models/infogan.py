"""InfoGAN: Chen et al., "InfoGAN: Interpretable Representation Learning by Information Maximizing
Generative Adversarial Nets", NeurIPS 2016.

What is different from GAN: G's input is split into incompressible noise z and latent codes c
(by default, as on MNIST in the paper: one 10-way categorical c1 and two continuous c2, c3 ~
U(-1, 1)), and G is asked to keep c recoverable from its output. An auxiliary network Q, a small
head on D's body (so it costs almost nothing), predicts c from G(z, c); the variational lower bound
of the mutual information I(c; G(z, c)), i.e. minus Q's log-likelihood of the true codes, is
added with weight lambda to both G's loss and D/Q's loss. Nothing says what the codes should mean:
with no labels at all, c1 tends to take the digit class and c2, c3 style such as slant and width.

``c1_invariance`` (a warp strength, 1 by default; 0 is the paper's method) has Q read c1 from a
randomly rotated, sheared, scaled and shifted copy of G(z, c) (``ganforge.nn.augment.random_affine``),
so G can only make c1 recoverable through what survives such a warp: the digit's identity rather
than its slant or width. Without it, some seeds settle where two values of c1 differ only in slant
and each draws 4s and 9s alike (z then picks the digit). The idea of identity-preserving transforms for the
categorical code is Elastic-InfoGAN's (Ojha et al., NeurIPS 2020), which uses a contrastive loss;
here Q's usual cross-entropy simply sees the warped copy.

Networks (``arch``): by default the paper's MNIST networks (Table 1), whose G and D each have a
fully connected layer of 1024 units (``fc_width``) next to the convolutions, and Q (FC 128-BN-lReLU,
then the codes) reads D's FC layer. All leaky ReLUs of the D/Q network have slope 0.1, the leaky
rate the paper's appendix gives for the discriminator network, Q's included (``q_leak``; runs made
before the setting existed used 0.2 there and keep it). ``arch=dcgan`` uses the shared
all-convolutional DCGAN networks instead (D with DCGAN's slope 0.2; Q then reads D's last conv
features); on ``mnist[:8000]`` that variant tied c1 to the digit class much less well (see
docs/conditional.md).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from ..nn import DCGANDiscriminator, DCGANGenerator, View, dcgan_init, dcgan_stages, evaluating, random_affine
from ..registry import register
from .base import GANModel, batch_len
from .noise import check_z_dist, draw_noise


class InfoGANGenerator(nn.Module):
    """The paper's MNIST generator (Chen et al. 2016, Table 1), sized from the image size:
    FC fc_width-BN-ReLU, FC (2 * width) x 7 x 7-BN-ReLU, 4x4 upconv width stride 2-BN-ReLU, 4x4 upconv
    to the image (tanh, as the data are in [-1, 1]). At 28 x 28 and width 64: 1024, 7x7x128, 64, 1."""

    def __init__(self, in_dim: int, channels: int, image_size: int, width: int = 64, fc_width: int = 1024):
        super().__init__()
        base, k = dcgan_stages(image_size)
        ch = width * 2 ** (k - 1)
        layers = [nn.Linear(in_dim, fc_width, bias=False), nn.BatchNorm1d(fc_width), nn.ReLU(True),
                  nn.Linear(fc_width, ch * base * base, bias=False), nn.BatchNorm1d(ch * base * base),
                  nn.ReLU(True), View(ch, base, base)]
        for _ in range(k - 1):
            layers += [nn.ConvTranspose2d(ch, ch // 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ch // 2), nn.ReLU(True)]
            ch //= 2
        layers += [nn.ConvTranspose2d(ch, channels, 4, 2, 1), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        dcgan_init(self)

    def forward(self, z):
        return self.net(z)


class InfoGANDiscriminator(nn.Module):
    """The paper's MNIST D body (Table 1): 4x4 conv width stride 2-lReLU, 4x4 conv 2 * width stride
    2-BN-lReLU, FC fc_width-BN-lReLU; ``head`` is D's FC output. ``features(x)`` is the FC layer's
    output, which Q reads too."""

    def __init__(self, in_channels: int, image_size: int, width: int = 64, fc_width: int = 1024):
        super().__init__()
        base, k = dcgan_stages(image_size)
        layers, ch = [], in_channels
        for i in range(k):
            out = width * 2 ** i
            layers += [nn.Conv2d(ch, out, 4, 2, 1, bias=i == 0)]
            if i > 0:
                layers.append(nn.BatchNorm2d(out))
            layers.append(nn.LeakyReLU(0.1, True))
            ch = out
        layers += [nn.Flatten(), nn.Linear(ch * base * base, fc_width, bias=False), nn.BatchNorm1d(fc_width),
                   nn.LeakyReLU(0.1, True)]
        self.body = nn.Sequential(*layers)
        self.feature_dim = fc_width
        self.head = nn.Linear(fc_width, 1)
        dcgan_init(self)

    def features(self, x):
        return self.body(x)

    def forward(self, x):
        return self.head(self.body(x)).squeeze(1)


@register
class InfoGAN(GANModel):
    name = "infogan"
    family = "conditional"
    paper = "Chen et al., InfoGAN: Interpretable Representation Learning by Information Maximizing GANs"
    year = 2016
    # The paper's MNIST settings: 62 noise variables, lr 2e-4 for D and 1e-3 for G, lambda 1 for the
    # categorical code and a smaller weight for the continuous ones (their scale differs).
    # z_dist: the authors' code draws z ~ U(-1, 1) ("uniform"); "normal" is N(0, I).
    # c1_invariance is on by default because without it c1 follows the digit class in only some seeds
    # (docs/conditional.md); 0 is the paper's method.
    defaults = {"z_dim": 62, "n_cat": 10, "n_cont": 2, "lambda_cat": 1.0, "lambda_cont": 0.1, "q_hidden": 128,
                "g_width": 64, "d_width": 64, "lr_g": 1e-3, "loss": "nonsaturating",
                "arch": "paper", "fc_width": 1024, "z_dist": "normal", "c1_invariance": 1.0, "q_leak": 0.1}
    # Runs made before these settings existed trained without c1_invariance and with Q's slope at 0.2.
    legacy_defaults = {"c1_invariance": 0.0, "q_leak": 0.2}
    # Options of the default steps that these steps implement too (with GANModel's helpers).
    step_options = ("label_smoothing", "r1_gamma", "historical_averaging")

    def build(self):
        c, s = self.cfg, self.spec
        if c["n_cat"] < 2 or c["n_cont"] < 0:
            raise ConfigError(f"infogan needs n_cat >= 2 and n_cont >= 0, got {c['n_cat']} and {c['n_cont']}")
        check_z_dist(c["z_dist"])
        if not 0 <= c["c1_invariance"] <= 2:
            raise ConfigError(f"c1_invariance must be a warp strength in [0, 2] (0: off), got {c['c1_invariance']}")
        if not 0 <= c["q_leak"] < 1:
            raise ConfigError(f"q_leak must be a leaky ReLU slope in [0, 1), got {c['q_leak']}")
        in_dim = c["z_dim"] + c["n_cat"] + c["n_cont"]
        if c["arch"] == "paper":  # Table 1 of the paper: an FC layer of fc_width in both G and D
            self.G = InfoGANGenerator(in_dim, s.channels, s.image_size, c["g_width"], c["fc_width"])
            self.D = InfoGANDiscriminator(s.channels, s.image_size, c["d_width"], c["fc_width"])
        elif c["arch"] == "dcgan":  # the shared all-convolutional DCGAN networks; Q reads the conv features
            self.G = DCGANGenerator(in_dim, s.channels, s.image_size, c["g_width"])
            self.D = DCGANDiscriminator(s.channels, s.image_size, c["d_width"])
        else:
            raise ConfigError(f"infogan's arch must be paper or dcgan, got {c['arch']!r}")
        # Q has no convolutions of its own: it reads D's body features (the paper's Q is one FC layer
        # on D's last hidden layer). Outputs: categorical logits, then continuous means.
        self.Q = nn.Sequential(nn.Linear(self.D.feature_dim, c["q_hidden"]), nn.BatchNorm1d(c["q_hidden"]),
                               nn.LeakyReLU(c["q_leak"], True), nn.Linear(c["q_hidden"], c["n_cat"] + c["n_cont"]))

    def optimizers(self):
        # Q is trained with D (its head shares D's body); G gets the paper's larger learning rate.
        return {"G": self.adam(self.G.parameters(), self.cfg["lr_g"] or self.cfg["lr"]),
                "D": self.adam([*self.D.parameters(), *self.Q.parameters()], self.cfg["lr_d"] or self.cfg["lr"])}

    # -- codes ---------------------------------------------------------------------------
    @property
    def codes(self) -> list[str]:
        """The codes' names as in the paper: c1 the categorical one, c2, c3, ... the continuous ones."""
        return [f"c{i + 1}" for i in range(1 + self.cfg["n_cont"])]

    def noise(self, n, generator=None):
        return draw_noise(self, n, self.cfg["z_dim"], self.cfg["z_dist"], generator=generator)

    def sample_inputs(self, n, generator=None, c1=None):
        inputs = {"z": self.noise(n, generator),
                  "cat": self.randint(self.cfg["n_cat"], n, generator=generator),
                  "cont": self.rand(n, self.cfg["n_cont"], generator=generator) * 2 - 1}
        if c1 is not None:
            if isinstance(c1, bool) or not isinstance(c1, int) or not 0 <= c1 < self.cfg["n_cat"]:
                raise ConfigError(f"c1 must be in 0..{self.cfg['n_cat'] - 1}, got {c1!r}")
            inputs["cat"].fill_(c1)
        return inputs

    def generate(self, inputs, net=None):
        cat = F.one_hot(inputs["cat"], self.cfg["n_cat"]).to(inputs["z"].dtype)
        return (net or self.G)(torch.cat([inputs["z"], cat, inputs["cont"]], 1))

    # -- the mutual-information term -----------------------------------------------------
    def q_out(self, features):
        q = self.Q(features)
        return q[:, :self.cfg["n_cat"]], q[:, self.cfg["n_cat"]:]

    def info_loss(self, fake, f_fake, inputs) -> tuple[torch.Tensor, dict]:
        """-(lower bound on I(c; G(z, c))) up to the constant H(c): Q's negative log-likelihood of c.

        Categorical: cross-entropy. Continuous: a Gaussian with unit variance, i.e. 0.5 * squared
        error (the paper fixes Q's variance too, on MNIST). ``f_fake`` is D's features of ``fake``.
        With ``c1_invariance`` > 0, Q reads c1 from a randomly rotated, sheared and scaled copy of
        ``fake`` instead (the continuous codes still from ``fake`` itself).
        """
        if self.cfg["c1_invariance"]:
            u = self.rand(len(fake), 6)
            logits = self.q_out(self.D.features(random_affine(fake, u, self.cfg["c1_invariance"])))[0]
            mean = self.q_out(f_fake)[1]
        else:
            logits, mean = self.q_out(f_fake)
        l_cat = F.cross_entropy(logits, inputs["cat"])
        l_cont = 0.5 * (mean - inputs["cont"]).pow(2).sum(1).mean() if self.cfg["n_cont"] else logits.new_zeros(())
        loss = self.cfg["lambda_cat"] * l_cat + self.cfg["lambda_cont"] * l_cont
        # log K - CE is the lower bound on I(c1; G(z, c)) in nats (<= log K).
        return loss, {"MI_c1": math.log(self.cfg["n_cat"]) - l_cat.detach(), "L_cont": l_cont.detach()}

    def d_step(self, batch):
        real = self.r1_input(batch["x"])
        inputs = self.sample_inputs(len(real))
        fake = self.generate(inputs)
        f_fake = self.D.features(fake)
        d_real, d_fake = self.D(real), self.D.head(f_fake).squeeze(1)
        info, logs = self.info_loss(fake, f_fake, inputs)
        loss = self.d_adversarial(d_real, d_fake) + info
        for name, term in self.r1(d_real, real).items():
            loss, logs[name] = loss + term, term.detach()
        return {"loss": loss + self.history_penalty("D"), "info": info, **logs}

    def g_step(self, batch):
        inputs = self.sample_inputs(batch_len(batch))
        fake = self.generate(inputs)
        f_fake = self.D.features(fake)
        info, logs = self.info_loss(fake, f_fake, inputs)
        loss = self.g_adversarial(self.D.head(f_fake).squeeze(1)) + info + self.history_penalty("G")
        return {"loss": loss, "G_info": info}

    # -- what the codes do ---------------------------------------------------------------
    @torch.no_grad()
    def predict_codes(self, x):
        """Q's estimate of (c1 index, continuous codes) for images ``x``."""
        with evaluating(self):
            logits, mean = self.q_out(self.D.features(x.to(self.device)))
        return logits.argmax(1), mean

    @torch.no_grad()
    def sample_with_codes(self, n: int, seed: int = 0, use_ema: bool = True):
        """``n`` samples and the categorical code c1 each was drawn with (for code/class agreement)."""
        g = torch.Generator().manual_seed(seed)
        inputs = self.sample_inputs(n, g)
        return self.generate_eval(inputs, use_ema), inputs["cat"].cpu()

    @torch.no_grad()
    def traversal(self, code: str, n_rows: int = 10, n_cols: int = 10, seed: int = 0, use_ema: bool = True,
                  span: float = 2.0):
        """The latent-traversal grid of the paper's Figure 2: ``(images, n_cols)``, row-major.

        ``c1``: each row one fixed z, the columns the values of c1 (so n_cols = n_cat). ``c2``...:
        row i fixes z and c1 = i mod n_cat, the columns sweep that code over [-span, span] (the
        paper sweeps -2..2, past the [-1, 1] it was trained on), other continuous codes at 0.
        """
        if code not in self.codes:
            raise ConfigError(f"{self.name} has no code {code!r}; its codes are {', '.join(self.codes)} "
                              f"(c1: {self.cfg['n_cat']}-way categorical, the rest continuous)")
        g = torch.Generator().manual_seed(seed)
        k, n_cont = self.cfg["n_cat"], self.cfg["n_cont"]
        if code == "c1":
            n_cols = k
        z = self.noise(n_rows, g).repeat_interleave(n_cols, 0)
        cont = torch.zeros(n_rows * n_cols, n_cont, device=z.device)
        if code == "c1":
            cat = torch.arange(k, device=z.device).repeat(n_rows)
        else:
            cat = (torch.arange(n_rows, device=z.device) % k).repeat_interleave(n_cols)
            cont[:, int(code[1:]) - 2] = torch.linspace(-span, span, n_cols, device=z.device).repeat(n_rows)
        return self.generate_eval({"z": z, "cat": cat, "cont": cont}, use_ema), n_cols
