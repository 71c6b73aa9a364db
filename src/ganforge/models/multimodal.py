"""What the multimodal translators (MUNIT, DRIT, BicycleGAN) share: one input, many outputs.

A one-to-one translator (pix2pix, CycleGAN) gives each input a single output. These three split
the output into what the input fixes (its *content*: for BicycleGAN the input image itself) and
a low-dimensional code the input does not fix (MUNIT's *style*, DRIT's *attribute*, BicycleGAN's
*z*), drawn from N(0, I) at test time or encoded from an example image of the target domain. A
model implements three functions for a direction (``AtoB``/``BtoA``):

- ``content(x, direction, use_ema)``: what of the input is kept;
- ``style_of(y, direction, use_ema)``: the code of an example ``y`` of the target domain (the
  encoder's mean where it is stochastic);
- ``decode(content, style, direction, use_ema)``: the output.

``translate_styles(x, direction, k, style_images, use_ema, seed)`` (``ganforge sample --styles K``
/ ``--style-from IMAGE``) and ``translate`` (one drawn style per input, seeded, so that
``ganforge eval`` measures a fixed set of outputs) are written once here on top of them.
"""
from __future__ import annotations

import contextlib

import torch
from torch import nn

from ..errors import ConfigError
from .translation import Translator


def frozen(net: nn.Module, *args):
    """``net(*args)`` with its parameters detached: the gradient reaches the inputs (and through
    them an earlier network) but not ``net``. BicycleGAN's and DRIT's latent regression updates
    G alone this way, so E cannot meet G halfway by ignoring what G draws."""
    params = {k: v.detach() for k, v in net.named_parameters()}
    return torch.func.functional_call(net, params, args)


class Multimodal(Translator):
    """Mixin for a translator with a style code (put it before GANModel in the bases)."""

    sample_options = ("styles",)
    GRID_SEED = 0  # the training grids show the same drawn styles at every step

    # -- what a model implements ----------------------------------------------------------
    def content(self, x, direction: str, use_ema: bool = False):
        raise NotImplementedError

    def style_of(self, y, direction: str, use_ema: bool = False):
        raise NotImplementedError

    def decode(self, content, style, direction: str, use_ema: bool = False):
        raise NotImplementedError

    @property
    def style_dim(self) -> int:
        return self.cfg["style_dim"]

    def net(self, name: str, use_ema: bool = False) -> nn.Module:
        """Network ``name``, or its EMA copy when the run has one and ``use_ema``."""
        return getattr(self, f"{name}_ema") if use_ema and hasattr(self, f"{name}_ema") else getattr(self, name)

    def draw_style(self, n: int):
        """Codes from the prior N(0, I) for a training batch."""
        return self.randn(n, self.style_dim)

    # -- translating ----------------------------------------------------------------------
    def _images(self, x: torch.Tensor, channels: int, what: str) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != channels:
            raise ConfigError(f"{self.name} takes {what} as {channels}-channel images (N, {channels}, H, W), "
                              f"got shape {tuple(x.shape)}")
        if x.dtype == torch.uint8:
            x = x.float() / 127.5 - 1.0
        return x.to(self.device, torch.float32)

    @contextlib.contextmanager
    def _eval_mode(self):
        was = self.training
        self.eval()
        try:
            yield
        finally:
            self.train(was)

    @torch.no_grad()
    def translate_styles(self, x: torch.Tensor, direction: str = "AtoB", k: int = 8, style_images=None,
                         use_ema: bool = True, seed: int | None = 0, batch_size: int = 64) -> torch.Tensor:
        """Each image of ``x`` translated ``direction`` in several styles: ``k`` codes drawn from
        N(0, I) per input (``seed``: the same codes every call), or, given ``style_images``, the
        codes of those examples of the target domain (the same S styles for every input).
        Returns (N, K or S, C, H, W) floats in [-1, 1] on the CPU."""
        self.translator_name(direction)  # an unknown direction fails here
        a, b = self.in_out()
        x = self._images(x, a if direction == "AtoB" else b, "its inputs")
        with self._eval_mode():
            if style_images is not None:
                ys = self._images(style_images, b if direction == "AtoB" else a, "style examples of the target domain")
                style = torch.cat([self.style_of(ys[i:i + batch_size], direction, use_ema)
                                   for i in range(0, len(ys), batch_size)])
                styles = style[None].expand(len(x), -1, -1)
            else:
                if k < 1:
                    raise ConfigError(f"k (styles per input) must be >= 1, got {k}")
                g = torch.Generator().manual_seed(seed) if seed is not None else None
                styles = torch.randn(len(x), k, self.style_dim, generator=g)
            styles = styles.to(self.device)
            out = []
            for i in range(0, len(x), batch_size):
                c = self.content(x[i:i + batch_size], direction, use_ema)
                s = styles[i:i + batch_size]
                out.append(torch.stack([self.decode(c, s[:, j], direction, use_ema).float().cpu()
                                        for j in range(s.shape[1])], 1))
        if not out:
            return x.new_empty(0, styles.shape[1], self.out_channels(direction), *x.shape[-2:]).cpu()
        return torch.cat(out)

    def out_channels(self, direction: str) -> int:
        a, b = self.in_out()
        return b if direction == "AtoB" else a

    @torch.no_grad()
    def translate(self, x: torch.Tensor, direction: str = "AtoB", use_ema: bool = True,
                  batch_size: int = 64, seed: int | None = 0) -> torch.Tensor:
        """One output per image, in a style drawn from the prior (seeded: the same outputs each call)."""
        return self.translate_styles(x, direction, 1, None, use_ema, seed, batch_size)[:, 0]

    def grid_rows(self, a, b, paired):
        # Each way: the input, then four drawn styles (the diversity is the point of these models).
        rows = []
        for way, src in (("AtoB", a), ("BtoA", b)):
            if way in self.directions:
                outs = self.translate_styles(src, way, 4, use_ema=True, seed=self.GRID_SEED)
                rows.append([src, *outs.unbind(1)])
        return rows
