"""Context Encoders: Pathak, Krahenbuhl, Donahue, Darrell & Efros, "Context Encoders: Feature
Learning by Inpainting", CVPR 2016.

What is different: G sees an image with a region removed and paints the region in. The masked
image is made from each real image inside the model (so the data is a plain image set): by
default the centre square of half the side, a quarter of the area, is filled with the training
set's mean colour (``mask=centre``); ``mask=random`` removes random rectangles instead. G is an
encoder (conv4x4 s2, BN, LeakyReLU) down to a small map, a *channel-wise fully connected* layer
(every location of a feature map connected to every other, no connection across maps: global
context at C k^4 instead of (C k^2)^2 weights), a 1x1 convolution that mixes the maps, and a
decoder of up-convolutions. Its loss is 0.999 times a masked L2 reconstruction loss plus 0.001
times the adversarial loss of a DCGAN discriminator that judges the predicted region (the centre
crop; the filled image for random blocks): L2 alone gives blurry averages, the adversarial term
picks one sharp answer.

The overlap (the paper's code, ``overlapPred``): the removed hole is the centre less a border of
``overlap`` pixels (None: image side / 32, at least 1); G predicts the whole centre, border included,
whose pixels it also sees, and the reconstruction loss weighs the border ``overlap_weight`` (10)
times the hole, so that the fill joins its surroundings. Only the hole is pasted back.

Settings: ``mask`` (centre | random), ``overlap``, ``overlap_weight``, ``lambda_rec`` (0.999),
``lambda_adv`` (0.001; 0: the reconstruction loss alone, D not trained), ``width`` / ``d_width``
(64), ``image_side`` (restoration.py). Adam with beta1 0.5; G's learning rate (2e-4) ten times
D's (2e-5), as in the paper. The image side must be b * 2^k with b <= 8 (28, 32, 64, 128).
"""
from __future__ import annotations

import torch

from ..errors import ConfigError
from ..nn import DCGANDiscriminator
from ..nn.restoration import ContextEncoderGenerator, centre_region, random_blocks
from ..registry import register
from .base import GANModel, Phase
from .restoration import Restorer

MASKS = ("centre", "random")


@register
class ContextEncoder(Restorer, GANModel):
    name = "context-encoder"
    family = "restoration"
    paper = "Pathak et al., Context Encoders: Feature Learning by Inpainting"
    year = 2016
    defaults = {"width": 64, "d_width": 64, "mask": "centre", "overlap": None, "overlap_weight": 10.0,
                "lambda_rec": 0.999, "lambda_adv": 0.001, "loss": "nonsaturating", "lr": 2e-4, "lr_d": 2e-5,
                "betas": [0.5, 0.999], "batch_size": 64, "image_side": "auto"}
    sample_options = ("mask",)
    scored = "hole"
    baseline_name = "mean_fill"

    def build(self):
        c, s = self.cfg, self.spec
        if c["mask"] not in MASKS:
            raise ConfigError(f"mask must be one of {', '.join(MASKS)}, got {c['mask']!r}")
        if c["lambda_rec"] < 0 or c["lambda_adv"] < 0 or c["overlap_weight"] < 0:
            raise ConfigError("lambda_rec, lambda_adv and overlap_weight must be >= 0")
        if not c["lambda_rec"] and not c["lambda_adv"]:
            raise ConfigError("lambda_rec = lambda_adv = 0 leaves the context encoder nothing to learn")
        size = s.image_size
        self.overlap = c["overlap"] if c["overlap"] is not None else max(1, size // 32)
        region, hole = centre_region(size, self.overlap)  # checks the size and the overlap
        self.register_buffer("centre", region, persistent=False)
        self.register_buffer("centre_hole", hole, persistent=False)
        # The colour the hole is filled with: the training images' mean (set by prepare(), saved).
        self.register_buffer("fill", torch.zeros(s.channels))
        self.G = ContextEncoderGenerator(s.channels, size, c["width"])
        if c["lambda_adv"]:
            self.D = DCGANDiscriminator(s.channels, size // 2 if c["mask"] == "centre" else size, c["d_width"])

    def optimizers(self):
        opts = {"G": self.adam(self.G.parameters(), self.cfg["lr_g"] or self.cfg["lr"])}
        if self.cfg["lambda_adv"]:
            opts["D"] = self.adam(self.D.parameters(), self.cfg["lr_d"] or self.cfg["lr"])
        return opts

    def phases(self):
        if not self.cfg["lambda_adv"]:
            return [Phase("G", self.g_step, ("G",))]
        return [Phase("D", self.d_step, ("D",), keep_graph=("G",)), Phase("G", self.g_step, ("G",))]

    def prepare(self, raw) -> None:
        super().prepare(raw)
        # The paper fills the hole with the data's mean pixel; taken from the training images.
        x = raw.x
        mean = torch.stack([x[i:i + 4096].double().mean((0, 2, 3)) for i in range(0, len(x), 4096)]).mean(0)
        self.fill.copy_((mean / 127.5 - 1).to(self.fill))

    # -- masks ----------------------------------------------------------------------------
    def masks(self, n: int, kind: str | None = None, generator=None) -> tuple[torch.Tensor, torch.Tensor]:
        """(region, hole) as float (n, 1, H, W) masks on the model's device: what G must predict
        and what the input loses (the centre task: the centre square and it less the overlap border;
        random blocks: the same blocks, no border)."""
        kind = kind or self.cfg["mask"]
        if kind not in MASKS:
            raise ConfigError(f"mask must be one of {', '.join(MASKS)}, got {kind!r}")
        if kind == "centre":
            region, hole = self.centre.expand(n, -1, -1), self.centre_hole.expand(n, -1, -1)
        else:
            hole = random_blocks(n, self.spec.image_size, generator).to(self.device)
            region = hole
        return region[:, None].float(), hole[:, None].float()

    def rec_weights(self, region: torch.Tensor, hole: torch.Tensor) -> torch.Tensor:
        """Per-pixel weights of the L2 loss: 1 in the hole, ``overlap_weight`` on the border of the
        region that the input still shows, 0 elsewhere."""
        return hole + self.cfg["overlap_weight"] * (region - hole)

    def degrade(self, x, generator=None, mask: str | None = None, **how) -> dict:
        x = self.as_float(x).to(self.device)
        region, hole = self.masks(len(x), mask, generator)
        masked = x * (1 - hole) + self.fill.view(1, -1, 1, 1) * hole
        return {"masked": masked, "hole": hole, "region": region}

    def restore_inputs(self, inputs, net):
        hole = inputs["hole"]
        return inputs["masked"] * (1 - hole) + net(inputs["masked"]) * hole

    def baseline(self, inputs):
        return inputs["masked"]  # mean fill

    def shown_input(self, inputs):
        return inputs["masked"].cpu()

    def inpaint(self, x: torch.Tensor, mask: str = "centre", seed: int | None = 0, use_ema: bool = True):
        """Images (uint8, or floats in [-1, 1]) with the centre (or random blocks, drawn from ``seed``)
        filled in; pixels outside the hole are the input's own."""
        c, size = self.spec.channels, self.spec.image_size
        if x.ndim != 4 or tuple(x.shape[1:]) != (c, size, size):
            raise ConfigError(f"{self.name} fills ({c}, {size}, {size}) images, got shape {tuple(x.shape)}")
        g = torch.Generator().manual_seed(seed) if seed is not None else None
        return self.restore(self.degrade(x, g, mask), use_ema)

    # -- training ---------------------------------------------------------------------------
    def judged(self, image, region):
        """What D sees: the centre crop for the centre task, the whole image for random blocks."""
        if self.cfg["mask"] != "centre":
            return image
        q, half = self.spec.image_size // 4, self.spec.image_size // 2
        return image[:, :, q:q + half, q:q + half]

    def _forward(self, real):
        inputs = self.degrade(real)
        out = self.G(inputs["masked"])
        # Outside the region the real image stands: D judges the fill in its context.
        filled = real * (1 - inputs["region"]) + out * inputs["region"]
        return inputs, out, filled

    def d_step(self, batch):
        real = self.real(batch)
        inputs, out, filled = self._forward(real)
        self.share("G", (inputs, out, filled), self.G)
        d_real = self.D(self.judged(real, inputs["region"]))
        d_fake = self.D(self.judged(filled.detach(), inputs["region"]))
        return {"loss": self.d_adversarial(d_real, d_fake), "D(x)": d_real.mean().detach(),
                "D(G(x))": d_fake.mean().detach()}

    def g_step(self, batch):
        real = self.real(batch)
        shared = self.reuse("G", self.G)
        inputs, out, filled = shared if shared is not None and len(shared[1]) == len(real) else self._forward(real)
        w = self.rec_weights(inputs["region"], inputs["hole"])
        # Mean over the region's pixels, as the paper's code (weights 1 and overlap_weight inside it).
        rec = (w * (out - real) ** 2).sum() / (inputs["region"].sum() * real.shape[1]).clamp(min=1)
        loss, stats = self.cfg["lambda_rec"] * rec, {"rec": rec.detach()}
        if self.cfg["lambda_adv"]:
            adv = self.g_adversarial(self.D(self.judged(filled, inputs["region"])))
            loss, stats["G_adv"] = loss + self.cfg["lambda_adv"] * adv, adv.detach()
        return {"loss": loss, **stats}
