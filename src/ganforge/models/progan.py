"""ProGAN: Karras, Aila, Laine & Lehtinen, "Progressive Growing of GANs for Improved Quality,
Stability, and Variation", ICLR 2018.

What is different: training starts at 4x4 and doubles the resolution of G and D together; each
new block fades in, its output blended with the upsampled (G) or downsampled (D) output of the
level below with a weight alpha that rises linearly over ``fade_images`` images, and the real
images D sees are blended the same way. A stage then trains stable for ``stage_images`` images.
All layers use the equalized learning rate (weights scaled at run time by He's constant), G
normalises every pixel's feature vector (pixel norm), D ends with the minibatch standard-deviation
map; the loss is WGAN-GP (lambda 10) with the drift term 0.001 E[D(x)^2] that keeps the critic's
output near zero. Adam (0, 0.99) at 0.001, reset at every change of stage as in the authors' code;
the batch size per resolution follows ``batch_sizes``. The networks live in ``ganforge.nn.progressive``.

The growth happens in ``on_step``: the stage (level, alpha) is a function of the step alone, so a
run stopped anywhere, mid-fade included, resumes exactly (the engine replays the steps where the
batch size or optimizers changed, then loads the checkpoint). ``--set progressive=false`` trains
the full-size networks from the start.
"""
from __future__ import annotations

import math

import torch

from ..errors import ConfigError
from ..nn.progressive import ProGANGenerator, ProgressiveDiscriminator, at_stage, levels_for, set_stage
from ..registry import register
from .base import Change, GANModel


class GrowthSchedule:
    """Which level trains at a step, and alpha: level 0 trains ``stage_images``; every later level
    fades in over ``fade_images`` then trains stable for ``stage_images`` (the last one for ever),
    counted in images at that level's batch size."""

    def __init__(self, levels: int, fade_images: int, stage_images: int, batch_of):
        self.phases = []  # (first step, level, fading, steps or None for the last, batch size)
        start = 0
        for level in range(levels + 1):
            bs = batch_of(level)
            if level > 0 and fade_images > 0:
                n = math.ceil(fade_images / bs)
                self.phases.append((start, level, True, n, bs))
                start += n
            if level == levels:
                self.phases.append((start, level, False, None, bs))
            elif stage_images > 0:
                n = math.ceil(stage_images / bs)
                self.phases.append((start, level, False, n, bs))
                start += n

    def at(self, step: int):
        """(level, alpha, whether a phase starts at ``step``, batch size)."""
        for start, level, fading, n, bs in reversed(self.phases):
            if step >= start:
                alpha = (step - start) / n if fading else 1.0
                return level, alpha, step == start, bs
        raise ValueError(f"step {step} < 0")


def _resolution_table(cfg: dict, key: str, kind) -> dict:
    table = cfg[key]
    if not isinstance(table, dict):
        raise ConfigError(f"{key} maps a resolution to a value, e.g. {{4: 16, 8: 16}}; got {table!r}")
    out = {}
    for res, v in table.items():
        try:
            r = int(res)
        except (TypeError, ValueError):
            r = 0
        if r < 4 or r & (r - 1) or isinstance(v, bool) or not isinstance(v, (int, float)) or v <= 0 \
                or (kind is int and int(v) != v):
            raise ConfigError(f"{key}: resolutions are powers of two >= 4 and values positive "
                              f"{'integers' if kind is int else 'numbers'}; got {res!r}: {v!r}")
        out[r] = kind(v)
    return out


@register
class ProGAN(GANModel):
    name = "progan"
    family = "advanced"
    paper = "Karras et al., Progressive Growing of GANs for Improved Quality, Stability, and Variation"
    year = 2018
    # The paper's settings (section 4.1, appendix A.1): 800k images per fade and per stable stage,
    # batch 16 up to 128x128 then 14, 6, 3; EMA of G with decay 0.999.
    defaults = {"z_dim": 512, "fmap_base": 16384, "fmap_max": 512, "mbstd_group": 4,
                "loss": "wasserstein", "lambda_gp": 10.0, "drift": 0.001,
                "lr": 0.001, "betas": [0.0, 0.99], "ema": 0.999, "batch_size": 16,
                "progressive": True, "fade_images": 800_000, "stage_images": 800_000,
                "batch_sizes": {4: 16, 8: 16, 16: 16, 32: 16, 64: 16, 128: 16, 256: 14, 512: 6, 1024: 3},
                "lr_by_res": {}}

    @staticmethod
    def fit_image_size(native: int) -> int:
        # The networks grow from 4x4 by doubling: unset, 28x28 digits are resized to 32x32.
        return 1 << max(2, (native - 1).bit_length())
    step_options = ("r1_gamma",)  # d_step below adds R1 when r1_gamma > 0 (StyleGAN's default)

    def build(self):
        c, s = self.cfg, self.spec
        self.levels = levels_for(s.image_size)
        self.G = ProGANGenerator(c["z_dim"], s.channels, s.image_size, c["fmap_base"], c["fmap_max"])
        self.D = ProgressiveDiscriminator(s.channels, s.image_size, c["fmap_base"], c["fmap_max"], c["mbstd_group"])
        self._setup_growth()

    def _setup_growth(self):
        c = self.cfg
        for key in ("fmap_base", "fmap_max"):
            if c[key] < 1:
                raise ConfigError(f"{key} must be a positive integer, got {c[key]!r}")
        self.batch_sizes = _resolution_table(c, "batch_sizes", int)
        self.lr_by_res = _resolution_table(c, "lr_by_res", float)
        if c["fade_images"] < 0 or c["stage_images"] < 0:
            raise ConfigError("fade_images and stage_images are numbers of images >= 0")
        self.schedule = GrowthSchedule(self.levels, c["fade_images"], c["stage_images"], self.batch_at) \
            if c["progressive"] else None
        self.level, self.alpha = self.levels, 1.0

    def resolution(self, level: int) -> int:
        return 4 * 2 ** level

    def batch_at(self, level: int) -> int:
        return self.batch_sizes.get(self.resolution(level), self.cfg["batch_size"])

    def optimizers(self):
        c = self.cfg
        lr = self.lr_by_res.get(self.resolution(self.level), c["lr"])
        return {"G": self.adam(self.G.parameters(), c["lr_g"] or lr),
                "D": self.adam(self.D.parameters(), c["lr_d"] or lr)}

    def set_stage(self, level: int, alpha: float) -> None:
        """Put G, D and G's EMA copy at (level, alpha)."""
        self.level, self.alpha = level, alpha
        for name in ("G", "D", *(f"{n}_ema" for n in self.ema_nets)):
            net = getattr(self, name, None)
            if net is not None:
                set_stage(net, level, alpha)

    def on_step(self, step: int):
        if self.schedule is None:
            return None
        level, alpha, starts, bs = self.schedule.at(step)
        self.set_stage(level, alpha)
        if starts:
            # Adam's moments belong to the stage they were gathered in: the authors' code resets
            # them whenever the stage changes (fade start and fade end). At step 0 the fresh
            # optimizers take the first resolution's rate (lr_by_res).
            return Change(optimizers=True, batch_size=bs)
        return None

    def faded_real(self, x):
        """The real images at the current stage (``nn.progressive.at_stage``)."""
        if self.level == self.levels and self.alpha == 1.0:
            return x
        return at_stage(x, self.levels, self.level, self.alpha)

    def d_step(self, batch: dict) -> dict:
        c = self.cfg
        real = self.r1_input(self.faded_real(batch["x"]))
        fake = self.generate(self.sample_inputs(len(real)))
        d_real, d_fake = self.D(real), self.D(fake)
        loss = self.d_adversarial(d_real, d_fake)
        out = {"D(x)": d_real.mean(), "D(G(z))": d_fake.mean(),
               # the level with the fade's progress: 1.0 is 8x8 stable, 1.5 halfway through fading in 16x16
               "stage": torch.full((), self.level - 1 + self.alpha, device=real.device)}
        terms = {}
        if c.get("lambda_gp"):
            terms["GP"] = c["lambda_gp"] * self.gradient_penalty(real, fake)
        if c.get("drift"):
            # Keeps the critic's output from drifting far from zero, which WGAN-GP's loss alone allows.
            terms["drift"] = c["drift"] * d_real.float().pow(2).mean()
        terms.update(self.r1(d_real, real))
        for name, term in terms.items():
            loss, out[name] = loss + term, term.detach()
        return {"loss": loss, **out}
