"""Blocks of the progressively grown GANs: ProGAN (Karras et al. 2018) and StyleGAN (Karras et al. 2019).

- Equalized learning rate (``EqualizedLinear``, ``EqualizedConv2d``): weights are drawn from N(0, 1)
  and multiplied at run time by He's constant gain / sqrt(fan_in), so that Adam, which normalises
  each weight's step by its own gradient scale, moves every layer at the same relative speed.
  ``lr_mul`` (StyleGAN's mapping network, 0.01) slows a layer down by the same device.
- ``PixelNorm``: each pixel's feature vector scaled to unit mean square (ProGAN's G, StyleGAN's z).
- ``MinibatchStdDev``: D sees the standard deviation of features across groups of samples as one
  extra feature map, so a G that collapses (low variation) is easy to spot.
- ``AdaIN``: instance norm, then a per-channel scale and shift computed from the style w.
- ``NoiseInjection``: per-pixel Gaussian noise added with a learned per-channel strength (zero at start).
- ``GrowingNet``: the stage (level, alpha) a network is at. Level l works at 4 * 2**l pixels; during
  a fade the new level's output is blended with the old level's, weighted alpha and 1 - alpha.
  The networks hold every level from the start and use the first ``level + 1``: a checkpoint of any
  stage loads into a freshly built model. Images cross the network boundary at full size (G's output
  is upscaled by nearest neighbour, D average-pools its input), so grids, evaluation and the data
  never see the stage.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from .blocks import adain

LRELU = 0.2  # the slope of every leaky ReLU in both papers
SQRT2 = math.sqrt(2.0)


def levels_for(image_size: int) -> int:
    """The index of the last level (4x4 is level 0); ``image_size`` must be a power of two >= 4."""
    if image_size < 4 or image_size & (image_size - 1):
        raise ConfigError(f"progressive networks grow from 4x4 by doubling, so the image size must be a power of "
                          f"two >= 4, not {image_size}: set image_size (e.g. --set image_size=32 for MNIST)")
    return int(math.log2(image_size)) - 2


def widths(fmap_base: int, fmap_max: int):
    """Channels at a resolution: min(fmap_max, fmap_base / res), as in both papers' code."""
    return lambda res: max(1, min(fmap_max, fmap_base // res))


def lrelu(x):
    return F.leaky_relu(x, LRELU)


# -- equalized learning rate ----------------------------------------------------------------
class EqualizedLinear(nn.Module):
    def __init__(self, d_in: int, d_out: int, bias: bool = True, gain: float = SQRT2, lr_mul: float = 1.0,
                 bias_init: float = 0.0):
        super().__init__()
        # Stored divided by lr_mul and multiplied back at run time: the update Adam makes is then
        # lr_mul times smaller in the weight the layer uses.
        self.weight = nn.Parameter(torch.randn(d_out, d_in) / lr_mul)
        self.bias = nn.Parameter(torch.full((d_out,), bias_init / lr_mul)) if bias else None
        self.scale = gain / math.sqrt(d_in) * lr_mul
        self.lr_mul = lr_mul

    def forward(self, x):
        bias = self.bias * self.lr_mul if self.bias is not None else None
        return F.linear(x, self.weight * self.scale, bias)


class EqualizedConv2d(nn.Module):
    def __init__(self, c_in: int, c_out: int, kernel: int, bias: bool = True, gain: float = SQRT2):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(c_out, c_in, kernel, kernel))
        self.bias = nn.Parameter(torch.zeros(c_out)) if bias else None
        self.scale = gain / math.sqrt(c_in * kernel * kernel)
        self.padding = kernel // 2

    def forward(self, x):
        return F.conv2d(x, self.weight * self.scale, self.bias, padding=self.padding)


# -- normalisation and statistics -------------------------------------------------------------
def pixel_norm(x, eps: float = 1e-8):
    return x * torch.rsqrt(x.pow(2).mean(dim=1, keepdim=True) + eps)


class PixelNorm(nn.Module):
    def forward(self, x):
        return pixel_norm(x)


class MinibatchStdDev(nn.Module):
    """Appends one feature map: the standard deviation of each feature over a group of samples,
    averaged over features and pixels, for each group (ProGAN section 3)."""

    def __init__(self, group_size: int = 4):
        super().__init__()
        self.group_size = group_size

    def forward(self, x):
        n, c, h, w = x.shape
        g = min(self.group_size, n)
        while n % g:  # groups must tile the batch; the papers' code asserts this, a smaller group is kinder
            g -= 1
        # Sample i belongs to group i mod (n / g), as in the reference code's reshape and tile.
        y = x.float().reshape(g, n // g, c, h, w)
        y = (y - y.mean(0)).pow(2).mean(0).add(1e-8).sqrt()  # per group, feature and pixel
        y = y.mean(dim=(1, 2, 3)).to(x.dtype)  # one number per group
        y = y.repeat(g).view(n, 1, 1, 1).expand(n, 1, h, w)
        return torch.cat([x, y], dim=1)


class AdaIN(nn.Module):
    """Adaptive instance norm (StyleGAN eq. 1): each channel normalised over its pixels, then scaled
    and shifted by the style y = A(w), a learned affine map of w (scale biased to start at 1)."""

    def __init__(self, channels: int, w_dim: int):
        super().__init__()
        self.style = EqualizedLinear(w_dim, 2 * channels, gain=1.0)
        with torch.no_grad():
            self.style.bias[:channels] = 1.0
        self.channels = channels

    def forward(self, x, w):
        scale, shift = self.style(w).chunk(2, dim=1)
        return adain(x, scale, shift, eps=1e-8)


class NoiseInjection(nn.Module):
    """x + strength * noise: one noise value per pixel, broadcast over channels, scaled per channel."""

    def __init__(self, channels: int):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(channels))

    def forward(self, x, noise):
        return x + self.weight.view(1, -1, 1, 1) * noise


# -- resolution and the fade ------------------------------------------------------------------
def downscale(x, factor: int):
    return F.avg_pool2d(x, factor) if factor > 1 else x


def upscale(x, factor: int):
    return F.interpolate(x, scale_factor=factor, mode="nearest") if factor > 1 else x


def fade(low, high, alpha: float):
    """The fade-in blend (1 - alpha) * low + alpha * high; exactly ``low`` at 0 and ``high`` at 1."""
    return torch.lerp(low, high, alpha)


def at_stage(x, levels: int, level: int, alpha: float):
    """Images (full size) as a network at (level, alpha) makes and sees them: at 4 * 2**level pixels,
    blended during a fade with the level below. ProGAN shows D real images in this form, so that
    reals and fakes differ in content, not in resolution (ProGAN figure 2)."""
    x = downscale(x, 2 ** (levels - level))
    if level > 0 and alpha < 1:
        x = fade(upscale(downscale(x, 2), 2), x, alpha)
    return upscale(x, 2 ** (levels - level))


class GrowingNet(nn.Module):
    """A network that uses its first ``level + 1`` levels, fading the last one in with ``alpha``.

    The stage is kept as Python numbers (no device sync in forward) and mirrored in the ``stage``
    buffer (float64, so alpha survives a checkpoint unrounded), which checkpoints and the EMA copy carry.
    """

    def __init__(self, levels: int):
        super().__init__()
        self.levels = levels
        self.level, self.alpha = levels, 1.0
        self.register_buffer("stage", torch.tensor([float(levels), 1.0], dtype=torch.float64))

    def set_stage(self, level: int, alpha: float = 1.0) -> None:
        if not 0 <= level <= self.levels or not 0.0 <= alpha <= 1.0:
            raise ValueError(f"stage ({level}, {alpha}) outside 0..{self.levels}, alpha in [0, 1]")
        self.level, self.alpha = int(level), float(alpha)
        self.stage[0].fill_(float(level))
        self.stage[1].fill_(float(alpha))

    @property
    def fading(self) -> bool:
        return self.level > 0 and self.alpha < 1.0

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        if prefix + "stage" in state_dict:
            level, alpha = state_dict[prefix + "stage"].tolist()
            self.level, self.alpha = int(round(level)), float(alpha)


def set_stage(net: nn.Module, level: int, alpha: float) -> None:
    """Put every growing part of ``net`` at (level, alpha)."""
    for m in net.modules():
        if isinstance(m, GrowingNet):
            m.set_stage(level, alpha)


# -- ProGAN's networks -------------------------------------------------------------------------
class _GBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.conv1, self.conv2 = EqualizedConv2d(c_in, c_out, 3), EqualizedConv2d(c_out, c_out, 3)

    def forward(self, x):
        x = upscale(x, 2)
        return pixel_norm(lrelu(self.conv2(pixel_norm(lrelu(self.conv1(x))))))


class ProGANGenerator(GrowingNet):
    """z -> image (ProGAN table 2): pixel-normalised latent, 4x4 block, then one block per doubling
    (upscale, two 3x3 convs, each followed by leaky ReLU and pixel norm); a 1x1 toRGB per level."""

    def __init__(self, z_dim: int, channels: int, image_size: int, fmap_base: int = 16384, fmap_max: int = 512):
        super().__init__(levels_for(image_size))
        nf = widths(fmap_base, fmap_max)
        self.c0 = nf(4)
        # The 4x4 "conv" on a 1x1 latent is a dense layer; the reference code gives it gain sqrt(2)/4.
        self.dense = EqualizedLinear(z_dim, self.c0 * 16, gain=SQRT2 / 4)
        self.conv = EqualizedConv2d(self.c0, self.c0, 3)
        self.blocks = nn.ModuleList(_GBlock(nf(2 ** (l + 1)), nf(2 ** (l + 2))) for l in range(1, self.levels + 1))
        self.to_rgb = nn.ModuleList(EqualizedConv2d(nf(2 ** (l + 2)), channels, 1, gain=1.0)
                                    for l in range(self.levels + 1))

    def forward(self, z):
        x = pixel_norm(lrelu(self.dense(pixel_norm(z)).view(-1, self.c0, 4, 4)))
        x = pixel_norm(lrelu(self.conv(x)))
        prev = x
        for block in self.blocks[:self.level]:
            prev, x = x, block(x)
        img = self.to_rgb[self.level](x)
        if self.fading:
            img = fade(upscale(self.to_rgb[self.level - 1](prev), 2), img, self.alpha)
        return upscale(img, 2 ** (self.levels - self.level))


class _DBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.conv1, self.conv2 = EqualizedConv2d(c_in, c_in, 3), EqualizedConv2d(c_in, c_out, 3)

    def forward(self, x):
        return downscale(lrelu(self.conv2(lrelu(self.conv1(x)))), 2)


class ProgressiveDiscriminator(GrowingNet):
    """image -> (B,) score, ProGAN's D (StyleGAN keeps it): fromRGB per level, one block per halving
    (two 3x3 convs, average pool), and at 4x4 the minibatch-stddev map, a 3x3 conv, a dense layer on
    the 4x4 map and a linear output."""

    def __init__(self, channels: int, image_size: int, fmap_base: int = 16384, fmap_max: int = 512,
                 mbstd_group: int = 4):
        super().__init__(levels_for(image_size))
        nf = widths(fmap_base, fmap_max)
        c0 = nf(4)
        self.from_rgb = nn.ModuleList(EqualizedConv2d(channels, nf(2 ** (l + 2)), 1) for l in range(self.levels + 1))
        # blocks[l - 1] takes level l's resolution down to level l - 1's
        self.blocks = nn.ModuleList(_DBlock(nf(2 ** (l + 2)), nf(2 ** (l + 1))) for l in range(1, self.levels + 1))
        self.mbstd = MinibatchStdDev(mbstd_group) if mbstd_group > 0 else None
        self.conv = EqualizedConv2d(c0 + (1 if self.mbstd else 0), c0, 3)
        self.dense = EqualizedLinear(c0 * 16, c0)
        self.head = EqualizedLinear(c0, 1, gain=1.0)

    def forward(self, x):
        x = downscale(x, 2 ** (self.levels - self.level))
        h = lrelu(self.from_rgb[self.level](x))
        if self.level > 0:
            h = self.blocks[self.level - 1](h)
            if self.fading:
                h = fade(lrelu(self.from_rgb[self.level - 1](downscale(x, 2))), h, self.alpha)
        for block in reversed(self.blocks[:self.level - 1] if self.level > 1 else []):
            h = block(h)
        if self.mbstd is not None:
            h = self.mbstd(h)
        h = lrelu(self.dense(lrelu(self.conv(h)).flatten(1)))
        return self.head(h).squeeze(1)


# -- StyleGAN's generator ----------------------------------------------------------------------
class MappingNetwork(nn.Module):
    """f: z -> w, ``layers`` fully connected layers (8 in StyleGAN) at a 100x lower learning rate."""

    def __init__(self, z_dim: int, w_dim: int, layers: int = 8, lr_mul: float = 0.01):
        super().__init__()
        dims = [z_dim] + [w_dim] * layers
        self.layers = nn.ModuleList(EqualizedLinear(a, b, lr_mul=lr_mul) for a, b in zip(dims[:-1], dims[1:]))

    def forward(self, z):
        x = pixel_norm(z)
        for layer in self.layers:
            x = lrelu(layer(x))
        return x


class StyleLayer(nn.Module):
    """One synthesis layer: [upscale] [3x3 conv] -> noise -> bias, leaky ReLU -> AdaIN(style w)."""

    def __init__(self, c_in: int, c_out: int, w_dim: int, conv: bool = True, up: bool = False):
        super().__init__()
        self.up = up
        self.conv = EqualizedConv2d(c_in, c_out, 3, bias=False) if conv else None
        self.noise = NoiseInjection(c_out)
        self.bias = nn.Parameter(torch.zeros(c_out))
        self.adain = AdaIN(c_out, w_dim)

    def forward(self, x, w, noise):
        if self.up:
            x = upscale(x, 2)
        if self.conv is not None:
            x = self.conv(x)
        x = lrelu(self.noise(x, noise) + self.bias.view(1, -1, 1, 1))
        return self.adain(x, w)


class SynthesisNetwork(GrowingNet):
    """g: (w per layer, noise) -> image. Starts from a learned 4x4 constant; two style layers per
    resolution; a 1x1 toRGB per level for growing. ``noise`` is one flat row per sample holding every
    layer's map (``noise_size`` numbers), so that it can be drawn, sliced and replayed like z."""

    def __init__(self, w_dim: int, channels: int, image_size: int, fmap_base: int = 16384, fmap_max: int = 512):
        super().__init__(levels_for(image_size))
        nf = widths(fmap_base, fmap_max)
        self.const = nn.Parameter(torch.ones(1, nf(4), 4, 4))
        layers = [StyleLayer(nf(4), nf(4), w_dim, conv=False), StyleLayer(nf(4), nf(4), w_dim)]
        for l in range(1, self.levels + 1):
            c_in, c_out = nf(2 ** (l + 1)), nf(2 ** (l + 2))
            layers += [StyleLayer(c_in, c_out, w_dim, up=True), StyleLayer(c_out, c_out, w_dim)]
        self.layers = nn.ModuleList(layers)
        self.to_rgb = nn.ModuleList(EqualizedConv2d(nf(2 ** (l + 2)), channels, 1, gain=1.0)
                                    for l in range(self.levels + 1))
        self.sizes = [2 ** (i // 2 + 2) for i in range(len(layers))]  # each layer's resolution
        self.noise_size = sum(s * s for s in self.sizes)

    @property
    def num_layers(self) -> int:
        return len(self.layers)

    def noise_maps(self, noise):
        maps, i = [], 0
        for s in self.sizes:
            maps.append(noise[:, i:i + s * s].reshape(-1, 1, s, s))
            i += s * s
        return maps

    def forward(self, ws, noise):
        maps = self.noise_maps(noise)
        x = self.const.expand(len(ws), -1, -1, -1)
        prev = x
        for l in range(self.level + 1):
            prev = x
            for i in (2 * l, 2 * l + 1):
                x = self.layers[i](x, ws[:, i], maps[i])
        img = self.to_rgb[self.level](x)
        if self.fading:
            img = fade(upscale(self.to_rgb[self.level - 1](prev), 2), img, self.alpha)
        return upscale(img, 2 ** (self.levels - self.level))


class StyleGenerator(nn.Module):
    """StyleGAN's G: mapping network f, synthesis network g, and the tracked mean of w.

    ``forward(z, z2=None, cross=None, noise=None, psi=None)``: w = f(z) feeds every layer; with
    ``z2``, layers >= ``cross`` (per sample) take f(z2) instead (style mixing); ``psi`` (B, layers)
    pulls each layer's w towards the mean w (the truncation trick). In training mode every call
    moves ``w_avg`` towards the batch's mean w.
    """

    def __init__(self, z_dim: int, w_dim: int, channels: int, image_size: int, mapping_layers: int = 8,
                 fmap_base: int = 16384, fmap_max: int = 512, mapping_lr_mul: float = 0.01, w_avg_beta: float = 0.995):
        super().__init__()
        self.mapping = MappingNetwork(z_dim, w_dim, mapping_layers, mapping_lr_mul)
        self.synthesis = SynthesisNetwork(w_dim, channels, image_size, fmap_base, fmap_max)
        self.register_buffer("w_avg", torch.zeros(w_dim))
        self.w_avg_beta = w_avg_beta

    @property
    def num_layers(self) -> int:
        return self.synthesis.num_layers

    def styles(self, z, z2=None, cross=None, psi=None):
        """The (B, layers, w_dim) styles that feed the synthesis layers."""
        w = self.mapping(z)
        if self.training:
            with torch.no_grad():
                self.w_avg.lerp_(w.detach().float().mean(0).to(self.w_avg.dtype), 1.0 - self.w_avg_beta)
        ws = w.unsqueeze(1).expand(-1, self.num_layers, -1)
        if z2 is not None:
            layer = torch.arange(self.num_layers, device=w.device)
            second = (layer.unsqueeze(0) >= cross.view(-1, 1)).unsqueeze(-1)
            ws = torch.where(second, self.mapping(z2).unsqueeze(1), ws)
        if psi is not None:
            ws = torch.lerp(self.w_avg.to(ws.dtype).expand_as(ws), ws, psi.to(ws.dtype).unsqueeze(-1))
        return ws

    def forward(self, z, z2=None, cross=None, noise=None, psi=None):
        if noise is None:
            noise = torch.randn(len(z), self.synthesis.noise_size, device=z.device, dtype=z.dtype)
        return self.synthesis(self.styles(z, z2, cross, psi), noise)
