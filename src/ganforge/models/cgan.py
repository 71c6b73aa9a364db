"""CGAN: Mirza & Osindero, "Conditional Generative Adversarial Nets", 2014.

What is different from GAN: the class label y is an input of both networks. G sees z joined to
the one-hot y, and D sees the image with y broadcast as extra input channels, so D judges whether
an image is a real example *of that class* and G must honour the label to fool it. The paper's
MLPs are replaced by the DCGAN networks (as most later CGANs do); the mechanism is unchanged.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..errors import ConfigError
from ..nn import DCGANDiscriminator, DCGANGenerator
from ..registry import register
from .base import GANModel, batch_len


class ClassConditional:
    """Sampling for a class-conditional G (CGAN, AC-GAN): G's inputs are ``{"z", "y"}``.

    ``model.sample(n, label=7)`` draws class 7; without a label the classes are drawn uniformly.
    Training grids hold one row per class.
    """

    takes_label = True

    @property
    def n_classes(self) -> int:
        return self.spec.n_classes

    def check_label(self, label) -> int:
        k = self.n_classes
        if isinstance(label, bool) or not isinstance(label, int) or not 0 <= label < k:
            raise ConfigError(f"label must be a class index in 0..{k - 1} ({self.name} was trained on {k} "
                              f"classes), got {label!r}")
        return label

    def sample_inputs(self, n: int, generator=None, label=None) -> dict:
        z = self.randn(n, self.cfg["z_dim"], generator=generator)
        if label is None:
            y = self.randint(self.n_classes, n, generator=generator)
        else:
            y = torch.full((n,), self.check_label(label), dtype=torch.long, device=z.device)
        return {"z": z, "y": y}

    def fixed_inputs(self, n: int, generator) -> dict:
        # One row per class, the same z down each column: the label alone changes along a column.
        cols = max(1, n // self.n_classes)
        z = self.randn(cols, self.cfg["z_dim"], generator=generator).repeat(self.n_classes, 1)
        y = torch.arange(self.n_classes, device=z.device).repeat_interleave(cols)
        return {"z": z, "y": y}

    @property
    def grid_nrow(self) -> int:
        return max(1, self.cfg["n_samples"] // self.n_classes)

    def one_hot(self, y):
        return F.one_hot(y, self.n_classes).float()

    def generate(self, inputs: dict, net=None):
        return (net or self.G)(torch.cat([inputs["z"], self.one_hot(inputs["y"])], 1))


@register
class CGAN(ClassConditional, GANModel):
    name = "cgan"
    family = "conditional"
    paper = "Mirza & Osindero, Conditional Generative Adversarial Nets"
    year = 2014
    needs_labels = True
    defaults = {"z_dim": 100, "g_width": 64, "d_width": 64, "loss": "nonsaturating"}
    # Options of the default steps that these steps implement too (with GANModel's helpers).
    step_options = ("label_smoothing", "r1_gamma", "historical_averaging")

    def build(self):
        c, s = self.cfg, self.spec
        self.G = DCGANGenerator(c["z_dim"] + s.n_classes, s.channels, s.image_size, c["g_width"])
        self.D = DCGANDiscriminator(s.channels + s.n_classes, s.image_size, c["d_width"])

    def judge(self, x, y):
        """D(x | y): the label enters as constant one-hot planes beside the image channels."""
        maps = self.one_hot(y)[:, :, None, None].expand(-1, -1, *x.shape[-2:])
        return self.D(torch.cat([x, maps.to(x.dtype)], 1))

    def d_step(self, batch):
        real, y = self.r1_input(batch["x"]), batch["y"]
        inputs = self.sample_inputs(len(real))
        d_real, d_fake = self.judge(real, y), self.judge(self.generate(inputs), inputs["y"])
        loss, out = self.d_adversarial(d_real, d_fake), {"D(x)": d_real.mean(), "D(G(z))": d_fake.mean()}
        for name, term in self.r1(d_real, real).items():
            loss, out[name] = loss + term, term.detach()
        return {"loss": loss + self.history_penalty("D"), **out}

    def g_step(self, batch):
        inputs = self.sample_inputs(batch_len(batch))
        return {"loss": self.g_adversarial(self.judge(self.generate(inputs), inputs["y"])) + self.history_penalty("G")}
