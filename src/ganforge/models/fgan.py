"""f-GAN: Nowozin, Cseke & Tomioka, "f-GAN: Training Generative Neural Samplers using Variational
Divergence Minimization", NeurIPS 2016.

What is different: the GAN objective is one member of a family. For any convex f with f(1) = 0,
the f-divergence D_f(P||Q) = E_Q[f(p/q)] has the variational lower bound
sup_T E_P[T(x)] - E_Q[f*(T(x))] (f* the convex conjugate), tight at T = f'(p/q). D outputs a raw
V(x); an output activation g_f maps it into the domain of f* (T = g_f(V)); D maximises the bound
(an estimate of the divergence) and G minimises it. ``divergence`` picks f: kl, reverse-kl,
pearson, neyman, squared-hellinger, jensen-shannon, gan (Table 2 of the paper; ``losses.F_DIVERGENCES``).
KL covers the data's modes, reverse KL seeks one (Section 4). G uses the paper's practical
objective, maximising E_Q[g_f(V(G(z)))], by default; ``g_objective=saddle`` minimises the bound itself.

Networks: the DCGAN pair for images, MLPs for 2-D points (as the other objective models), Adam.
"""
from __future__ import annotations

from .. import losses
from ..errors import ConfigError
from ..nn import gan_nets
from ..registry import register
from .base import GANModel


@register
class FGAN(GANModel):
    name = "fgan"
    family = "divergences"
    paper = "Nowozin et al., f-GAN: Training Generative Neural Samplers using Variational Divergence Minimization"
    year = 2016
    data_kinds = ("image", "points")
    defaults = {"z_dim": 100, "g_width": 64, "d_width": 64, "toy_hidden": 128, "toy_layers": 3,
                "toy_g_hidden": 0, "toy_g_layers": 0, "toy_g_norm": "none",
                "divergence": "gan", "g_objective": "practical", "lr": 1e-4}
    # The paper has no 2-D experiment: on points, the settings the other objective models use (docs/defaults.md).
    defaults_by_kind = {"points": {"z_dim": 2, "ema": 0.99, "batch_size": 128, "lr": 1e-3, "lr_d": 2e-3}}

    def build(self):
        c = self.cfg
        losses.f_divergence(c["divergence"])  # a one-line error for a misspelt name, at build time
        if c["g_objective"] not in ("practical", "saddle"):
            raise ConfigError(f"g_objective must be practical or saddle, got {c['g_objective']!r}")
        if c.get("label_smoothing"):  # there are no real/fake targets to smooth
            raise ConfigError("fgan's objective is chosen by --set divergence=...; label_smoothing does not apply")
        self.G, self.D = gan_nets(self.spec, c)

    def d_adversarial(self, d_real, d_fake):
        # D maximises the bound: its loss is the bound's negative, so -loss estimates D_f(P||Q).
        return -losses.f_bound(self.cfg["divergence"], d_real, d_fake)

    def g_adversarial(self, d_fake):
        return losses.f_g_loss(self.cfg["divergence"], d_fake, saddle=self.cfg["g_objective"] == "saddle")
