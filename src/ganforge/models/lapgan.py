"""LAPGAN: Denton, Chintala, Szlam & Fergus, "Deep Generative Image Models using a Laplacian Pyramid
of Adversarial Networks", NeurIPS 2015.

What is different from GAN: the image is generated coarse to fine, one GAN per level of a Laplacian
pyramid. The coarsest level K is an ordinary GAN drawing a small image I_K = G_K(z_K). Every finer
level k is a *conditional* GAN: G_k draws only the band-pass residual h_k = I_k - u(d(I_k)) (the
detail lost by halving the image, ``nn/pyramid.py``), given the upsampled coarser image u(I_{k+1})
and a noise plane z_k; D_k judges (u(I_{k+1}), h_k) pairs. Each generator thus has an easy job: add
one octave of detail to an image it is shown.

The levels train independently, as in the paper: level k's real pairs and its condition come from
the pyramid of a *real* image, never from the level above's samples, so each level is its own GAN
with its own G_k, D_k and optimizers (phases ``D{k}``, ``G{k}``). Only sampling chains them:
I_k = u(I_{k+1}) + G_k(u(I_{k+1}), z_k) from I_K down to the full image I_0.

On 28x28 digits, ``levels`` 2: 7x7 (an MLP GAN, as the paper's 8x8 CIFAR level), then 14x14 and
28x28 (3-layer conv G_k; 2 conv + linear D_k, both seeing the condition as channels). The coarsest
G has batch norm after its hidden layers (``coarse_norm``; ``none`` is the paper's plain MLP):
without it the 7x7 MLP GAN collapsed to one image on MNIST, and no finer level can add the
diversity the coarsest lacks (docs/conditioned.md).
``sample_grid`` (the training grids) shows every level of each sample, coarse to fine, each
upsampled to full size; ``sample_levels(n, seed)`` returns them. ``G`` holds the whole pyramid
(``G.levels[k]`` is G_k), so saving, EMA and ``ganforge sample`` see one generator.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from ..nn.pyramid import (CoarseDiscriminator, CoarseGenerator, LaplacianGenerator, ResidualDiscriminator,
                          ResidualGenerator, check_levels, downsample, upsample)
from ..registry import register
from .base import STEP_OPTIONS, GANModel, Phase


@register
class LAPGAN(GANModel):
    name = "lapgan"
    family = "advanced"
    paper = "Denton et al., Deep Generative Image Models using a Laplacian Pyramid of Adversarial Networks"
    year = 2015
    defaults = {"levels": 2, "z_dim": 100, "coarse_hidden": 600, "coarse_norm": "batch", "g_width": 64, "d_width": 64,
                "dropout": 0.5, "loss": "nonsaturating"}

    def build(self):
        c, s = self.cfg, self.spec
        on = [k for k in STEP_OPTIONS if c.get(k)]
        if on:
            raise ConfigError(f"lapgan's per-level steps do not implement {', '.join(on)}")
        side = check_levels(s.image_size, c["levels"])
        K = c["levels"]
        finer = [ResidualGenerator(s.channels, c["g_width"]) for _ in range(K)]
        self.G = LaplacianGenerator(CoarseGenerator(c["z_dim"], s.channels, side, c["coarse_hidden"],
                                                    c["coarse_norm"]), finer)
        # D[k] judges level k (0 the finest); D[K] is the coarsest level's unconditional D.
        self.D = nn.ModuleList([ResidualDiscriminator(s.channels, s.image_size >> k, c["d_width"], c["dropout"])
                                for k in range(K)]
                               + [CoarseDiscriminator(s.channels, side, c["coarse_hidden"], c["dropout"])])

    @property
    def K(self) -> int:
        return self.cfg["levels"]

    def optimizers(self):
        lr_g, lr_d = self.cfg["lr_g"] or self.cfg["lr"], self.cfg["lr_d"] or self.cfg["lr"]
        opts = {}
        for k in range(self.K + 1):
            opts[f"G{k}"] = self.adam(self.G.levels[k].parameters(), lr_g)
            opts[f"D{k}"] = self.adam(self.D[k].parameters(), lr_d)
        return opts

    def phases(self):
        # Coarsest first, then finer; the coarsest G needs no real image, the finer ones their condition.
        out = []
        for k in range(self.K, -1, -1):
            out += [Phase(f"D{k}", lambda b, k=k: self.d_level(k, b), (f"D{k}",)),
                    Phase(f"G{k}", lambda b, k=k: self.g_level(k, b), (f"G{k}",), data=k < self.K)]
        return out

    # -- one level --------------------------------------------------------------------------
    def real_level(self, x, k: int):
        """(u(I_{k+1}), h_k) of real images ``x`` at level k < K: the condition and the real residual."""
        for _ in range(k):
            x = downsample(x)
        up = upsample(downsample(x))
        return up, x - up

    def noise_plane(self, like: torch.Tensor, generator=None):
        return self.randn(len(like), 1, *like.shape[-2:], generator=generator)

    def d_level(self, k: int, batch: dict) -> dict:
        x = batch["x"]
        if k == self.K:
            real = x
            for _ in range(k):
                real = downsample(real)
            fake = self.G.levels[k](self.randn(len(x), self.cfg["z_dim"]))
            d_real, d_fake = self.D[k](real), self.D[k](fake)
        else:
            up, h = self.real_level(x, k)
            fake = self.G.levels[k](up, self.noise_plane(up))
            d_real, d_fake = self.D[k](up, h), self.D[k](up, fake)
        return {"loss": self.d_adversarial(d_real, d_fake), f"D{k}(x)": d_real.mean().detach(),
                f"D{k}(G)": d_fake.mean().detach()}

    def g_level(self, k: int, batch: dict) -> dict:
        if k == self.K:
            fake = self.G.levels[k](self.randn(batch["n"] if "n" in batch else len(batch["x"]), self.cfg["z_dim"]))
            return {"loss": self.g_adversarial(self.D[k](fake))}
        up, _ = self.real_level(batch["x"], k)
        return {"loss": self.g_adversarial(self.D[k](up, self.G.levels[k](up, self.noise_plane(up))))}

    # -- sampling -----------------------------------------------------------------------------
    def sample_inputs(self, n, generator=None, **cond):
        size = self.spec.image_size
        inputs = {"z": self.randn(n, self.cfg["z_dim"], generator=generator)}
        for k in range(self.K):
            side = size >> k
            inputs[f"z{k}"] = self.randn(n, 1, side, side, generator=generator)
        return inputs

    def generate(self, inputs, net=None):
        return (net or self.G)(inputs)

    @torch.no_grad()
    def sample_levels(self, n: int = 8, seed: int | None = 0, use_ema: bool = True) -> list[torch.Tensor]:
        """[I_0 (full size), I_1, ..., I_K (coarsest)] of ``n`` samples, on the CPU, in [-1, 1]."""
        from ..nn import evaluating

        g = torch.Generator().manual_seed(seed) if seed is not None else None
        net = self.generator_net(use_ema)
        with evaluating(net):
            return [t.float().cpu() for t in net(self.sample_inputs(n, g), all_levels=True)]

    def sample_grid(self, n: int):
        """One sample per row: its levels from the coarsest to the full image, each shown at full size."""
        rows = max(1, min(n // (self.K + 1), 10))
        levels = self.sample_levels(rows, seed=self.cfg["seed"] + 1_000_003)[::-1]
        size = self.spec.image_size
        big = [F.interpolate(t, size=(size, size), mode="nearest") for t in levels]
        return torch.stack(big, 1).flatten(0, 1), self.K + 1
