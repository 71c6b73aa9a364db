"""S^2-GAN: Wang & Gupta, "Generative Image Modeling using Style and Structure Adversarial Networks",
ECCV 2016.

What is different: the image is drawn in two stages, each a GAN of its own. The Structure-GAN
(``G_struct``, ``D_struct``) draws a structure map from noise z^; the Style-GAN (``G_style``,
``D_style``) renders an image from a structure map and noise z~, and its D judges (structure,
image) pairs, so the rendering must fit the structure it was given. A fully convolutional network
(``FCN``), trained on real pairs only to predict the structure back from an image, ties the two:
G_style's loss adds ``fcn_weight`` x the pixel-wise L1 between FCN(G_style(s, z~)) and s, the
paper's pixel-wise constraint (a rendering whose structure cannot be read back is penalised
everywhere, not only where D looks).

Training is staged, as in the paper: until step ``joint_start`` the two GANs train independently,
the Style-GAN on *real* structure maps (phases ``D_struct``, ``G_struct``, ``D_style``,
``G_style``); from ``joint_start`` on they train jointly (phases ``D``, ``G``): G_struct's output
feeds G_style, and G_style's adversarial and FCN losses (times ``joint_weight``) backpropagate
through the rendered image into G_struct. The FCN keeps learning from real pairs throughout
(phase ``FCN``) and never from generated images.

The paper's structure is surface normals (NYUv2, from Kinect depth); there is none such here, so
the structure is the **edge map** on digits (``mnist-edges``, ``digits-edges``: the digit's
morphological edges) and the **label map** on facades (``facades``: the CMP facade labels, colour
coded). The data is loaded with A = structure and B = image whatever the set's own layout (both are
``direction=BtoA`` of the paired sets), so ``model.sample(n)`` gives images, ``sample_pairs(n)``
(structure, image), and the training grids show each structure beside its rendering.

Networks (sized for 28x28 digits; any b * 2^k side): G_struct and D_struct are DCGAN's
(``nn/dcgan.py``); G_style is pix2pix's U-Net (``nn/translation.py``) whose input is the structure
map with z~ (``style_z``) tiled over it as extra channels, without dropout; D_style is a DCGAN D on the
structure's and the image's channels; the FCN is a U-Net without dropout. ``ganforge eval RUN``
measures the images (B) against the set's real images, in the digit classifier's features on digits;
``--ref DATA`` measures them against another set's images, e.g. the facades test photos
(``folder:.../facades/testA``), the reference a one-stage G trained on the photos alone can share.
"""
from __future__ import annotations

import torch
from torch import nn

from ..errors import ConfigError
from ..nn import DCGANDiscriminator, DCGANGenerator, UNetGenerator
from ..registry import register
from .base import STEP_OPTIONS, GANModel, Phase, batch_len


class StructureStyleGenerator(nn.Module):
    """The two generators as one sampler: z^ -> G_struct -> s, (s, z~) -> G_style -> image."""

    def __init__(self, structure: nn.Module, style: nn.Module):
        super().__init__()
        self.structure, self.style = structure, style

    def render(self, s, z_style):
        z = z_style[:, :, None, None].expand(-1, -1, *s.shape[-2:])
        return self.style(torch.cat([s, z.to(s.dtype)], 1))

    def forward(self, inputs: dict, with_structure: bool = False):
        s = self.structure(inputs["z"])
        x = self.render(s, inputs["z_style"])
        return (s, x) if with_structure else x


@register
class SSGAN(GANModel):
    name = "ssgan"
    family = "advanced"
    paper = "Wang & Gupta, Generative Image Modeling using Style and Structure Adversarial Networks"
    year = 2016
    data_kinds = ("paired",)
    data_desc = "paired (image, structure map): mnist-edges, digits-edges, facades"
    defaults = {"z_dim": 100, "style_z": 8, "g_width": 64, "d_width": 64, "fcn_width": 32, "g_down": 3,
                "fcn_weight": 10.0, "joint_weight": 1.0, "joint_start": 1000, "loss": "nonsaturating"}

    @classmethod
    def data_options(cls, cfg: dict) -> dict:
        # Both paired layouts hold the image as A and the structure as B (facades: photo | labels;
        # digits: digit | edges); swapped, A is the structure and B (the set's x) the image.
        return {"direction": "BtoA"}

    def build(self):
        c, s = self.cfg, self.spec
        on = [k for k in STEP_OPTIONS if c.get(k)]
        if on:
            raise ConfigError(f"ssgan's own steps do not implement {', '.join(on)}")
        if c["joint_start"] is None or int(c["joint_start"]) < 0:
            raise ConfigError(f"joint_start is the step where joint training begins (>= 0), got {c['joint_start']!r}")
        if c["style_z"] < 0:
            raise ConfigError(f"style_z must be >= 0, got {c['style_z']}")
        s_ch, x_ch = s.in_channels or s.channels, s.channels
        self.G = StructureStyleGenerator(
            DCGANGenerator(c["z_dim"], s_ch, s.image_size, c["g_width"]),
            UNetGenerator(s_ch + c["style_z"], x_ch, s.image_size, c["g_width"], "batch", 0.0, max_down=c["g_down"]))
        self.D_struct = DCGANDiscriminator(s_ch, s.image_size, c["d_width"])
        self.D_style = DCGANDiscriminator(s_ch + x_ch, s.image_size, c["d_width"])
        self.FCN = UNetGenerator(x_ch, s_ch, s.image_size, c["fcn_width"], "batch", 0.0, max_down=c["g_down"])

    # The paper's names for the two generators inside G.
    @property
    def G_struct(self) -> nn.Module:
        return self.G.structure

    @property
    def G_style(self) -> nn.Module:
        return self.G.style

    def optimizers(self):
        lr_g, lr_d = self.cfg["lr_g"] or self.cfg["lr"], self.cfg["lr_d"] or self.cfg["lr"]
        return {"G_struct": self.adam(self.G_struct.parameters(), lr_g),
                "G_style": self.adam(self.G_style.parameters(), lr_g),
                "D_struct": self.adam(self.D_struct.parameters(), lr_d),
                "D_style": self.adam(self.D_style.parameters(), lr_d),
                "FCN": self.adam(self.FCN.parameters(), self.cfg["lr"])}

    def phases(self):
        j = int(self.cfg["joint_start"])
        return [Phase("FCN", self.fcn_step, ("FCN",)),
                # independent: each GAN on its own, the Style-GAN rendering real structure maps
                Phase("D_struct", self.d_struct_step, ("D_struct",), stop=j),
                Phase("G_struct", self.g_struct_step, ("G_struct",), data=False, stop=j),
                Phase("D_style", self.d_style_step, ("D_style",), stop=j),
                Phase("G_style", self.g_style_step, ("G_style",), stop=j),
                # joint: G_struct's maps feed G_style, whose losses reach G_struct through them
                Phase("D", self.d_joint_step, ("D_struct", "D_style"), start=j),
                Phase("G", self.g_joint_step, ("G_struct", "G_style"), data=False, start=j)]

    # -- pieces ---------------------------------------------------------------------------
    def sample_inputs(self, n, generator=None, **cond):
        return {"z": self.randn(n, self.cfg["z_dim"], generator=generator),
                "z_style": self.randn(n, self.cfg["style_z"], generator=generator)}

    def generate(self, inputs, net=None):
        return (net or self.G)(inputs)

    def render(self, s, n: int | None = None):
        return self.G.render(s, self.randn(n or len(s), self.cfg["style_z"]))

    def judge_pair(self, s, x):
        return self.D_style(torch.cat([s, x], 1))

    def fcn_loss(self, x, s):
        """The pixel-wise constraint: L1 between the FCN's structure of ``x`` and the structure ``s``."""
        return (self.FCN(x) - s).abs().mean()

    def style_g_loss(self, s, x):
        """G_style's loss for the rendering ``x`` of structure ``s``: adversarial + the FCN term.
        The target ``s`` is held fixed: the rendering must show the structure, not the reverse."""
        adv, fcn = self.g_adversarial(self.judge_pair(s, x)), self.fcn_loss(x, s.detach())
        return adv + self.cfg["fcn_weight"] * fcn, adv, fcn

    # -- steps ----------------------------------------------------------------------------
    def fcn_step(self, batch):
        return {"loss": self.fcn_loss(batch["B"], batch["A"])}

    def d_struct_step(self, batch):
        s = batch["A"]
        fake = self.G_struct(self.randn(len(s), self.cfg["z_dim"]))
        d_real, d_fake = self.D_struct(s), self.D_struct(fake)
        return {"loss": self.d_adversarial(d_real, d_fake), "D_struct(s)": d_real.mean().detach(),
                "D_struct(G(z))": d_fake.mean().detach()}

    def g_struct_step(self, batch):
        fake = self.G_struct(self.randn(batch_len(batch), self.cfg["z_dim"]))
        return {"loss": self.g_adversarial(self.D_struct(fake))}

    def d_style_step(self, batch):
        s, x = batch["A"], batch["B"]
        fake = self.render(s)
        d_real, d_fake = self.judge_pair(s, x), self.judge_pair(s, fake)
        return {"loss": self.d_adversarial(d_real, d_fake), "D_style(s,x)": d_real.mean().detach(),
                "D_style(s,G(s))": d_fake.mean().detach()}

    def g_style_step(self, batch):
        loss, adv, fcn = self.style_g_loss(batch["A"], self.render(batch["A"]))
        return {"loss": loss, "G_style_adv": adv.detach(), "L_fcn": fcn.detach()}

    def d_joint_step(self, batch):
        s, x = batch["A"], batch["B"]
        s_fake, x_fake = self.G(self.sample_inputs(len(s)), with_structure=True)
        d_s, d_s_fake = self.D_struct(s), self.D_struct(s_fake)
        d_x, d_x_fake = self.judge_pair(s, x), self.judge_pair(s_fake, x_fake)
        l_struct, l_style = self.d_adversarial(d_s, d_s_fake), self.d_adversarial(d_x, d_x_fake)
        return {"loss": l_struct + l_style, "L_D_struct": l_struct.detach(), "L_D_style": l_style.detach()}

    def g_joint_step(self, batch):
        s_fake, x_fake = self.G(self.sample_inputs(batch_len(batch)), with_structure=True)
        l_struct = self.g_adversarial(self.D_struct(s_fake))
        l_style, adv, fcn = self.style_g_loss(s_fake, x_fake)
        return {"loss": l_struct + self.cfg["joint_weight"] * l_style, "G_struct_adv": l_struct.detach(),
                "G_style_adv": adv.detach(), "L_fcn": fcn.detach()}

    # -- sampling -------------------------------------------------------------------------
    @torch.no_grad()
    def sample_pairs(self, n: int = 8, seed: int | None = 0, use_ema: bool = True):
        """(structure maps, images) of ``n`` samples, on the CPU, in [-1, 1]."""
        from ..nn import evaluating

        g = torch.Generator().manual_seed(seed) if seed is not None else None
        net = self.generator_net(use_ema)
        with evaluating(net):
            s, x = net(self.sample_inputs(n, g), with_structure=True)
        return s.float().cpu(), x.float().cpu()

    def sample_grid(self, n: int):
        """Structure | rendering, side by side: four pairs per row."""
        s, x = self.sample_pairs(max(1, n // 2), seed=self.cfg["seed"] + 1_000_003)
        c = max(s.shape[1], x.shape[1])
        s, x = s.expand(-1, c, -1, -1), x.expand(-1, c, -1, -1)
        return torch.stack([s, x], 1).flatten(0, 1), 8

    # -- measuring ------------------------------------------------------------------------
    def measured_as(self) -> str:
        """The data name whose features ``ganforge eval`` measures the images with (the run's real
        images are its B, the image, through ``data_options``): on the digit sets the digits' own
        (``mnist-edges[:8000]`` -> ``mnist``), so FD and KID use the classifier trained on digits,
        not the one trained on edge maps."""
        from ..data import parse_name

        base = parse_name(self.cfg["data"])[0]
        return base.split("-edges")[0] if "-edges" in base else self.cfg["data"]
