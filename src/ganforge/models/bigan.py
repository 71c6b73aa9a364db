"""BiGAN and ALI: a GAN that also learns the inverse map, by judging joint pairs.

* BiGAN: Donahue, Krähenbühl & Darrell, "Adversarial Feature Learning", ICLR 2017.
* ALI: Dumoulin, Belghazi, Poole, Mastropietro, Lamb, Arjovsky & Courville, "Adversarially
  Learned Inference", ICLR 2017.

What is different from GAN: beside G (z -> x) an encoder E (x -> z) is trained, and D never sees
an image alone. It judges pairs: (x, E(x)) for a real image and its code against (G(z), z) for a
drawn code and its image. The two joint distributions can only match if E inverts G, so E becomes
a feature extractor learned without labels (BiGAN's claim: a nearest-neighbour classifier on E(x))
and G(E(x)) a reconstruction, though nothing asks for one explicitly. E and G are one player,
trained together by one optimizer against D (both papers); each minimises D's loss with the labels
exchanged, i.e. the non-saturating objective for both sides of the pair (ALI's Algorithm 1):
-log D(G(z), z) - log(1 - D(x, E(x))).

The two papers differ in the encoder. BiGAN's is deterministic: z = E(x). ALI's is stochastic:
E outputs the mean and log-variance of a Gaussian q(z | x), and the code D sees is a sample
drawn by reparameterisation, z = mu + sigma * eps, so the gradient reaches mu and log sigma^2
through the sample (Kingma & Welling 2014). ``encode()`` of an ALI model returns the mean.

Networks for 28x28 digits (DCGAN-like; MLPs for 2-D points are not provided): G is the shared
DCGAN generator; E is the DCGAN discriminator's convolutional body with a code-sized (ALI: twice
code-sized) linear head; D has an x-branch (strided convolutions, batch norm after all but the
first, as DCGAN's D), a z-branch (a two-layer MLP) and a joint head on their concatenation, with
dropout (0.2) after every hidden layer, as in ALI's discriminators, to keep D from memorising the
pairs. The batch norm is not ALI's: without it (``d_norm=false``), ALI on MNIST drew one blob for
every z by step 250 where the same run with it drew varied digits (docs/encoders.md).
"""
from __future__ import annotations

import torch
from torch import nn

from .. import losses
from ..errors import ConfigError
from ..nn import DCGANDiscriminator, DCGANGenerator, dcgan_init, dcgan_stages
from ..registry import register
from .base import GANModel, Phase
from .encoding import Encoding

# The objectives where "D's loss with the labels exchanged" is g_loss on the real pair's negated
# logit (1 - sigmoid(l) = sigmoid(-l)): both papers' (nonsaturating: ALI; minimax: BiGAN's analysis).
JOINT_LOSSES = ("nonsaturating", "minimax")


class JointDiscriminator(nn.Module):
    """D(x, z) -> a logit (B,). x-branch: strided 4x4 convolutions of width, 2 * width, ... (batch
    norm after all but the first when ``norm``); z-branch: two fully connected layers of ``z_width``;
    joint head: one layer of ``joint_width`` on their concatenation, then the logit. LeakyReLU(0.2)
    and dropout after every hidden layer."""

    def __init__(self, channels: int, image_size: int, z_dim: int, width: int = 64, z_width: int = 512,
                 joint_width: int = 1024, dropout: float = 0.2, norm: bool = True):
        super().__init__()
        base, k = dcgan_stages(image_size)
        layers, ch = [], channels
        for i in range(k):
            layers.append(nn.Conv2d(ch, width * 2 ** i, 4, 2, 1, bias=i == 0 or not norm))
            if norm and i > 0:  # DCGAN's rule: batch norm on every conv but the input layer
                layers.append(nn.BatchNorm2d(width * 2 ** i))
            layers += [nn.LeakyReLU(0.2, True), nn.Dropout(dropout)]
            ch = width * 2 ** i
        self.x_branch = nn.Sequential(*layers, nn.Flatten())
        self.z_branch = nn.Sequential(nn.Linear(z_dim, z_width), nn.LeakyReLU(0.2, True), nn.Dropout(dropout),
                                      nn.Linear(z_width, z_width), nn.LeakyReLU(0.2, True), nn.Dropout(dropout))
        self.joint = nn.Sequential(nn.Linear(ch * base * base + z_width, joint_width), nn.LeakyReLU(0.2, True),
                                   nn.Dropout(dropout))
        self.head = nn.Linear(joint_width, 1)
        dcgan_init(self)

    def forward(self, x, z):
        h = torch.cat([self.x_branch(x), self.z_branch(z)], 1)
        return self.head(self.joint(h)).squeeze(1)


@register
class BiGAN(Encoding, GANModel):
    name = "bigan"
    family = "encoders"
    paper = "Donahue et al., Adversarial Feature Learning"
    year = 2017
    # BiGAN's MNIST code has 50 dimensions; the prior here is N(0, I) (the paper's is U(-1, 1)),
    # which the deterministic E's unbounded linear output can match without a squashing layer.
    defaults = {"z_dim": 50, "g_width": 64, "e_width": 64, "d_width": 64, "d_z_width": 512,
                "d_joint_width": 1024, "d_dropout": 0.2, "d_norm": True, "loss": "nonsaturating"}
    # E's EMA copy goes with G's, so that encode() and reconstruct() of an EMA run use one pair.
    ema_nets = ("G", "E")
    stochastic = False  # ALI: E outputs a Gaussian's mean and log-variance, and D sees a sample

    def build(self):
        c, s = self.cfg, self.spec
        if c["loss"] not in JOINT_LOSSES:
            raise ConfigError(f"{self.name} trains E and G on D's loss with the labels exchanged, defined here for "
                              f"loss {' or '.join(JOINT_LOSSES)}, not {c['loss']!r}")
        if not 0 <= c["d_dropout"] < 1:
            raise ConfigError(f"d_dropout must be a probability in [0, 1), got {c['d_dropout']}")
        z = c["z_dim"]
        self.G = DCGANGenerator(z, s.channels, s.image_size, c["g_width"])
        self.E = DCGANDiscriminator(s.channels, s.image_size, c["e_width"], out_dim=2 * z if self.stochastic else z)
        self.D = JointDiscriminator(s.channels, s.image_size, z, c["d_width"], c["d_z_width"], c["d_joint_width"],
                                    c["d_dropout"], c["d_norm"])

    def optimizers(self):
        # E and G are one player: one optimizer over both (both papers).
        return {"D": self.adam(self.D.parameters(), self.cfg["lr_d"] or self.cfg["lr"]),
                "EG": self.adam([*self.E.parameters(), *self.G.parameters()], self.cfg["lr_g"] or self.cfg["lr"])}

    def phases(self):
        # The EG phase reads the batch D's last repeat used and backpropagates through the E(x) and
        # G(z) computed there (kept in the graph: Phase.keep_graph), saving a forward pass of each.
        return [Phase("D", self.d_step, ("D",), self.cfg["n_critic"], keep_graph=("EG",), fresh=True),
                Phase("EG", self.eg_step, ("EG",), self.cfg["g_steps"])]

    # -- the encoder ------------------------------------------------------------------------
    def infer(self, x, E=None) -> dict:
        """``{"z": the code D is shown for x}`` (ALI adds the posterior's ``mu`` and ``logvar``)."""
        return {"z": (E or self.E)(x)}

    def encode_batch(self, x, E):
        return self.infer(x, E)["z"]

    # -- training ---------------------------------------------------------------------------
    def pairs(self, x) -> dict:
        """The two joint samples: (x, E(x)) and (G(z), z), z drawn from the prior; ``q`` is what
        ``infer`` gave for x (its ``z`` is the code paired with x)."""
        z = self.sample_inputs(len(x))["z"]
        return {"x": x, "q": self.infer(x), "fake": self.generate({"z": z}), "z": z}

    def encoder_logs(self, q: dict) -> dict:
        return {}

    def d_step(self, batch):
        p = self.pairs(batch["x"])
        self.share("pairs", p, self.E, self.G)
        d_real = self.D(p["x"], p["q"]["z"].detach())
        d_fake = self.D(p["fake"].detach(), p["z"])
        return {"loss": self.d_adversarial(d_real, d_fake), "D(x,E(x))": d_real.mean(), "D(G(z),z)": d_fake.mean(),
                **self.encoder_logs(p["q"])}

    def eg_step(self, batch):
        p = self.reuse("pairs", self.E, self.G)
        if p is None or p["x"] is not batch["x"]:
            p = self.pairs(batch["x"])
        # D's loss with the labels exchanged: G's pair should look real, E's pair fake.
        loss_g = self.g_adversarial(self.D(p["fake"], p["z"]))
        loss_e = self.g_adversarial(-self.D(p["x"], p["q"]["z"]))
        return {"loss": loss_g + loss_e, "loss_G": loss_g.detach(), "loss_E": loss_e.detach()}


@register
class ALI(BiGAN):
    name = "ali"
    paper = "Dumoulin et al., Adversarially Learned Inference"
    defaults = {**BiGAN.defaults}
    stochastic = True

    def infer(self, x, E=None) -> dict:
        mu, logvar = (E or self.E)(x).chunk(2, 1)
        return {"z": self.reparameterise(mu, logvar), "mu": mu, "logvar": logvar}

    def encode_batch(self, x, E):
        # The posterior's mean: the deterministic code one wants as features.
        return self.infer(x, E)["mu"]

    def encoder_logs(self, q):
        # How wide q(z | x) is on average: near 1 (the prior's) the codes would carry little about x.
        return {"sigma_E": q["logvar"].detach().mul(0.5).exp().mean()}
