"""StackGAN: Zhang, Xu, Li, Zhang, Wang, Huang & Metaxas, "StackGAN: Text to Photo-realistic Image
Synthesis with Stacked Generative Adversarial Networks", ICCV 2017.

What is different from GAN-INT-CLS (whose frozen text encoder and matching-aware D it shares):

- Conditioning augmentation (CA): the text embedding gives the mean and the diagonal variance of
  a Gaussian and G is conditioned on c drawn from it (c = mu + sigma * eps), with
  KL(N(mu, sigma^2) || N(0, I)) in G's loss (weight ``kl``), so that a few captions cover a smooth
  neighbourhood of conditions and one caption gives varied images. ``ca=false`` is the ablation:
  c = mu, no noise and no KL term.
- Two stages. Stage-I's G1 draws a low-resolution image (``low_size``, 16x16 here, 64x64 in the
  paper) from z and c; Stage-II's G2 takes that image and c again (from a CA of its own), encodes
  the image, joins c as channels, refines through residual blocks and upsamples to ``image_size``
  (64 here, 256 in the paper). Each stage has its own matching-aware D (D1 at the low resolution,
  on real images downsampled; D2 at full resolution).
- Stage-I trains first (``stage1_steps`` iterations), then Stage-II with Stage-I frozen: the
  phases D1/G1 stop and D2/G2 start at ``stage1_steps``; G2's optimizer holds only G2's
  parameters, and G1 runs without gradients on its running batch-norm statistics.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from ..nn import DCGANGenerator, dcgan_init, evaluating
from ..nn.translation import ResidualBlock
from ..registry import register
from ..text import ConditioningAugmentation, TextD
from .base import STEP_OPTIONS, GANModel, Phase
from .gan_int_cls import TEXT_DEFAULTS, TextConditional


class StageIG(nn.Module):
    """G1(z, e, eps) -> (low-resolution image, mu, logvar)."""

    def __init__(self, e_dim, c_dim, z_dim, channels, size, width, ca=True):
        super().__init__()
        self.ca = ConditioningAugmentation(e_dim, c_dim, ca)
        self.net = DCGANGenerator(z_dim + c_dim, channels, size, width)

    def forward(self, z, e, eps):
        c, mu, logvar = self.ca(e, eps)
        return self.net(torch.cat([z, c], 1)), mu, logvar


class StageIIG(nn.Module):
    """G2(low image, e, eps) -> (image at ``size``, mu, logvar): encode, join c, residual blocks, upsample."""

    def __init__(self, e_dim, c_dim, channels, low, size, width, n_res=2, ca=True):
        super().__init__()
        ups = (size // low).bit_length() - 1
        if low << ups != size:
            raise ConfigError(f"stackgan's image_size must be low_size * 2^k, got {size} and {low}")
        self.ca = ConditioningAugmentation(e_dim, c_dim, ca)
        ch = width * 2 ** ups
        self.encode = nn.Sequential(nn.Conv2d(channels, ch, 3, 1, 1), nn.ReLU(True))
        self.joint = nn.Sequential(nn.Conv2d(ch + c_dim, ch, 3, 1, 1, bias=False), nn.BatchNorm2d(ch), nn.ReLU(True))
        self.res = nn.Sequential(*[ResidualBlock(ch, norm="batch", padding="zeros") for _ in range(n_res)])
        up = []
        for _ in range(ups):
            up += [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(ch, ch // 2, 3, 1, 1, bias=False),
                   nn.BatchNorm2d(ch // 2), nn.ReLU(True)]
            ch //= 2
        self.up = nn.Sequential(*up, nn.Conv2d(ch, channels, 3, 1, 1), nn.Tanh())
        dcgan_init(self)

    def forward(self, low, e, eps):
        c, mu, logvar = self.ca(e, eps)
        h = self.encode(low)
        h = self.joint(torch.cat([h, c[:, :, None, None].expand(-1, -1, *h.shape[-2:])], 1))
        return self.up(self.res(h)), mu, logvar


@register
class StackGAN(TextConditional, GANModel):
    name = "stackgan"
    family = "conditional"
    paper = "Zhang et al., StackGAN: Text to Photo-realistic Image Synthesis with Stacked GANs"
    year = 2017
    # c_dim 128, kl 1 and the Adam settings are the paper's; the sizes are scaled down (16 -> 64).
    defaults = {**TEXT_DEFAULTS, "image_size": 64, "low_size": 16, "z_dim": 100, "c_dim": 128, "kl": 1.0,
                "ca": True, "g_width": 64, "d_width": 64, "g2_width": 16, "n_res": 2, "stage1_steps": 1000,
                "loss": "nonsaturating"}
    ema_nets = ("G1", "G2")
    generator = "G2"

    def build(self):
        c, s = self.cfg, self.spec
        if s.image_size <= c["low_size"]:
            raise ConfigError(f"stackgan's image_size ({s.image_size}) must be larger than low_size ({c['low_size']})")
        on = [k for k in STEP_OPTIONS if c.get(k)]
        if on:
            raise ConfigError(f"stackgan's own training steps do not implement {', '.join(on)}")
        if c["stage1_steps"] < 0:
            raise ConfigError(f"stage1_steps must be >= 0, got {c['stage1_steps']}")
        self.build_text()
        e, ca = self.e_dim, c["ca"]
        self.G1 = StageIG(e, c["c_dim"], c["z_dim"], s.channels, c["low_size"], c["g_width"], ca)
        self.D1 = TextD(e, c["t_dim"], s.channels, c["low_size"], c["d_width"], c["d_norm"])
        self.G2 = StageIIG(e, c["c_dim"], s.channels, c["low_size"], s.image_size, c["g2_width"], c["n_res"], ca)
        self.D2 = TextD(e, c["t_dim"], s.channels, s.image_size, c["d_width"], c["d_norm"])

    def optimizers(self):
        lr_g, lr_d = self.cfg["lr_g"] or self.cfg["lr"], self.cfg["lr_d"] or self.cfg["lr"]
        return {"G1": self.adam(self.G1.parameters(), lr_g), "D1": self.adam(self.D1.parameters(), lr_d),
                "G2": self.adam(self.G2.parameters(), lr_g), "D2": self.adam(self.D2.parameters(), lr_d)}

    def phases(self):
        s1 = self.cfg["stage1_steps"]
        return [Phase("D1", self.d1_step, ("D1",), stop=s1), Phase("G1", self.g1_step, ("G1",), stop=s1),
                Phase("D2", self.d2_step, ("D2",), start=s1), Phase("G2", self.g2_step, ("G2",), start=s1)]

    # -- inputs and sampling -----------------------------------------------------------------
    def sample_inputs(self, n: int, generator=None, text=None) -> dict:
        inputs = super().sample_inputs(n, generator, text)
        c = self.cfg["c_dim"]
        return {**inputs, "eps1": self.randn(n, c, generator=generator), "eps2": self.randn(n, c, generator=generator)}

    def _g1_for(self, net):
        ema = getattr(self, "G1_ema", None)
        return ema if ema is not None and net is getattr(self, "G2_ema", None) else self.G1

    def stage1(self, inputs, net=None):
        """Stage-I's low-resolution image for ``inputs``, by the G1 that goes with G2 ``net``."""
        return self._g1_for(net)(inputs["z"], self.text_embedding(inputs), inputs["eps1"])[0]

    def generate(self, inputs: dict, net=None):
        net = net or self.G2
        low = self.stage1(inputs, net)
        return net(low, self.text_embedding(inputs), inputs["eps2"])[0]

    @torch.no_grad()
    def stages(self, inputs: dict, use_ema: bool = True, batch_size: int = 250):
        """(Stage-I's images, Stage-II's images) for the same inputs, on the CPU, in eval mode."""
        net = self.generator_net(use_ema)
        g1 = self._g1_for(net)
        n = len(inputs["z"])
        lows, highs = [], []
        with evaluating(net), evaluating(g1):
            for i in range(0, n, batch_size):
                part = {k: v[i:i + batch_size] for k, v in inputs.items()}
                low = self.stage1(part, net)
                lows.append(low.float().cpu())
                highs.append(net(low, self.text_embedding(part), part["eps2"])[0].float().cpu())
        return torch.cat(lows), torch.cat(highs)

    # -- training ----------------------------------------------------------------------------
    def low_res(self, x):
        """Real images at Stage-I's resolution, for D1 (area averaging)."""
        return F.adaptive_avg_pool2d(x, self.cfg["low_size"])

    def _noise(self, n):
        return self.randn(n, self.cfg["z_dim"]), self.randn(n, self.cfg["c_dim"])

    def d1_step(self, batch):
        real, (e, tokens) = self.low_res(batch["x"]), self.batch_text(batch)
        z, eps = self._noise(len(real))
        out = {}
        loss = self.matching_aware_d_loss(self.D1, real, self.G1(z, e, eps)[0], e, out, tokens=tokens)
        return {"loss": loss, **out}

    def g1_step(self, batch):
        e = self.batch_embedding(batch)
        z, eps = self._noise(len(e))
        fake, mu, logvar = self.G1(z, e, eps)
        return self._g_loss(self.D1, fake, e, mu, logvar)

    def _g_loss(self, D, fake, e, mu, logvar):
        adv = self.g_adversarial(D(fake, e))
        if not self.cfg["ca"]:
            return {"loss": adv}
        kl = ConditioningAugmentation.kl(mu, logvar)
        return {"loss": adv + self.cfg["kl"] * kl, "KL": kl.detach()}

    def frozen_stage1(self, e):
        """Stage-I's output for Stage-II's steps: G1 frozen (no gradient, running BN statistics)."""
        z, eps = self._noise(len(e))
        with torch.no_grad(), evaluating(self.G1):
            return self.G1(z, e, eps)[0]

    def d2_step(self, batch):
        real, (e, tokens) = batch["x"], self.batch_text(batch)
        fake = self.G2(self.frozen_stage1(e), e, self.randn(len(e), self.cfg["c_dim"]))[0]
        out = {}
        loss = self.matching_aware_d_loss(self.D2, real, fake, e, out, tokens=tokens)
        return {"loss": loss, **out}

    def g2_step(self, batch):
        e = self.batch_embedding(batch)
        fake, mu, logvar = self.G2(self.frozen_stage1(e), e, self.randn(len(e), self.cfg["c_dim"]))
        return self._g_loss(self.D2, fake, e, mu, logvar)
