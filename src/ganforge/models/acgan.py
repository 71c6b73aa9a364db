"""AC-GAN: Odena, Olah & Shlens, "Conditional Image Synthesis with Auxiliary Classifier GANs", ICML 2017.

What is different from CGAN: D is not told the label. It sees only the image and outputs two
things from one body, the source P(S|X) (real or fake) and the class P(C|X). Both networks also
minimise the class loss L_C on generated images (and D on real ones too): G is trained to make
images whose class D can recognise, D to recognise classes. D maximises L_S + L_C, G maximises
L_C - L_S, as in the paper's eqs. (2)-(3).
"""
from __future__ import annotations

import torch.nn.functional as F

from ..nn import DCGANDiscriminator, DCGANGenerator
from ..registry import register
from .base import GANModel, batch_len
from .cgan import ClassConditional


@register
class ACGAN(ClassConditional, GANModel):
    name = "acgan"
    family = "conditional"
    paper = "Odena et al., Conditional Image Synthesis with Auxiliary Classifier GANs"
    year = 2017
    needs_labels = True
    defaults = {"z_dim": 100, "g_width": 64, "d_width": 64, "loss": "nonsaturating", "lambda_cls": 1.0}
    # Options of the default steps that these steps implement too (with GANModel's helpers).
    step_options = ("label_smoothing", "r1_gamma", "historical_averaging")

    def build(self):
        c, s = self.cfg, self.spec
        self.G = DCGANGenerator(c["z_dim"] + s.n_classes, s.channels, s.image_size, c["g_width"])
        # One head, 1 + N outputs: the source logit, then the N class logits.
        self.D = DCGANDiscriminator(s.channels, s.image_size, c["d_width"], out_dim=1 + s.n_classes)

    def judge(self, x):
        """(source logit, class logits) of D for images ``x``."""
        out = self.D(x)
        return out[:, 0], out[:, 1:]

    def classify(self, x):
        """D's class prediction P(C|X), as class indices."""
        return self.judge(x)[1].argmax(1)

    def d_step(self, batch):
        real, y = self.r1_input(batch["x"]), batch["y"]
        inputs = self.sample_inputs(len(real))
        (s_real, c_real), (s_fake, c_fake) = self.judge(real), self.judge(self.generate(inputs))
        l_s = self.d_adversarial(s_real, s_fake)
        l_c = F.cross_entropy(c_real, y) + F.cross_entropy(c_fake, inputs["y"])
        loss, out = l_s + self.cfg["lambda_cls"] * l_c, {"L_S": l_s, "L_C": l_c}
        for name, term in self.r1(s_real, real).items():
            loss, out[name] = loss + term, term.detach()
        return {"loss": loss + self.history_penalty("D"), **out, "acc_real": (c_real.argmax(1) == y).float().mean()}

    def g_step(self, batch):
        inputs = self.sample_inputs(batch_len(batch))
        s_fake, c_fake = self.judge(self.generate(inputs))
        l_s = self.g_adversarial(s_fake)
        l_c = F.cross_entropy(c_fake, inputs["y"])
        return {"loss": l_s + self.cfg["lambda_cls"] * l_c + self.history_penalty("G"), "G_L_C": l_c}
