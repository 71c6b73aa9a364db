"""Blocks of the image-restoration models: super-resolution (SRGAN, Ledig et al. 2017) and
inpainting (Context Encoders, Pathak et al. 2016).

* ``SubPixelUpsample``: conv to ``r^2`` times the channels, then ``PixelShuffle(r)`` (Shi et al.
  2016): each output pixel of an r x r cell comes from its own channel of one low-resolution
  position, so upsampling is learnt at the low resolution instead of after a fixed interpolation.
* ``SRResNetGenerator`` / ``SRDiscriminator``: SRGAN's networks (the paper's Fig. 4).
* ``ChannelWiseFC``: Context Encoders' bottleneck, a fully connected layer per feature map.
* ``ContextEncoderGenerator``: encoder, channel-wise FC, 1x1 convolution, decoder.
* The degradations: ``downsample`` (SRGAN's bicubic 4x), ``centre_region`` and ``random_blocks``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from .dcgan import _norm, dcgan_init, dcgan_stages
from .translation import ResidualBlock


class SubPixelUpsample(nn.Module):
    """x (N, C, H, W) -> (N, C, rH, rW): conv3x3 to C r^2 channels, PixelShuffle(r), PReLU."""

    def __init__(self, channels: int, scale: int = 2):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels * scale * scale, 3, 1, 1)
        self.shuffle = nn.PixelShuffle(scale)
        self.act = nn.PReLU()

    def forward(self, x):
        return self.act(self.shuffle(self.conv(x)))


class SRResNetGenerator(nn.Module):
    """SRResNet: conv9x9-PReLU, B residual blocks (conv3x3-BN-PReLU-conv3x3-BN + skip), conv3x3-BN
    plus a skip over all blocks, log2(scale) sub-pixel x2 upsamplings, conv9x9 to the image with a
    tanh (images here are in [-1, 1]). Fully convolutional: any input size upscales by ``scale``."""

    def __init__(self, in_ch: int, out_ch: int, width: int = 64, n_blocks: int = 16, scale: int = 4,
                 norm: str = "batch"):
        super().__init__()
        if scale < 2 or scale & (scale - 1):
            raise ConfigError(f"scale must be a power of two >= 2, got {scale}")
        self.scale = scale
        self.head = nn.Sequential(nn.Conv2d(in_ch, width, 9, 1, 4), nn.PReLU())
        self.blocks = nn.Sequential(*[ResidualBlock(width, norm, padding="zeros", act=nn.PReLU)
                                      for _ in range(n_blocks)])
        self.post = nn.Sequential(nn.Conv2d(width, width, 3, 1, 1, bias=norm == "none"), _norm(norm, width))
        self.up = nn.Sequential(*[SubPixelUpsample(width, 2) for _ in range(scale.bit_length() - 1)])
        self.tail = nn.Sequential(nn.Conv2d(width, out_ch, 9, 1, 4), nn.Tanh())

    def forward(self, x):
        h = self.head(x)
        return self.tail(self.up(h + self.post(self.blocks(h))))


class SRDiscriminator(nn.Module):
    """SRGAN's D: conv3x3 (k3n64s1) and LeakyReLU(0.2), then seven conv3x3-BN-LeakyReLU with
    widths 64, 128, 128, 256, 256, 512, 512 and strides alternating 2 and 1, a dense layer of
    ``fc`` (1024) units, LeakyReLU and one logit (the sigmoid is in the loss)."""

    def __init__(self, in_ch: int, image_size: int, width: int = 64, fc: int = 1024):
        super().__init__()
        layers, ch, size = [nn.Conv2d(in_ch, width, 3, 1, 1), nn.LeakyReLU(0.2, True)], width, image_size
        for i, mult in enumerate((1, 2, 2, 4, 4, 8, 8)):
            stride = 2 if i % 2 == 0 else 1
            out = width * mult
            layers += [nn.Conv2d(ch, out, 3, stride, 1, bias=False), nn.BatchNorm2d(out), nn.LeakyReLU(0.2, True)]
            ch, size = out, (size - 1) // stride + 1
        self.body = nn.Sequential(*layers, nn.Flatten())
        self.head = nn.Sequential(nn.Linear(ch * size * size, fc), nn.LeakyReLU(0.2, True), nn.Linear(fc, 1))

    def forward(self, x):
        return self.head(self.body(x)).squeeze(1)


class ChannelWiseFC(nn.Module):
    """Pathak et al.'s channel-wise fully connected layer: (N, C, k, k) -> (N, C, k, k), each
    channel's k^2 outputs a linear function of that channel's k^2 inputs only. Every location of a
    map sees every other (unlike a convolution), at C k^4 weights instead of a full layer's
    (C k^2)^2; information crosses channels only in the 1x1 convolution that follows it."""

    def __init__(self, channels: int, size: int):
        super().__init__()
        self.channels, self.size = channels, size
        n = size * size
        self.weight = nn.Parameter(torch.randn(channels, n, n) / n ** 0.5)
        self.bias = nn.Parameter(torch.zeros(channels, n))

    def forward(self, x):
        n, c, h, w = x.shape
        if (c, h, w) != (self.channels, self.size, self.size):
            raise ValueError(f"ChannelWiseFC expects (N, {self.channels}, {self.size}, {self.size}), got {tuple(x.shape)}")
        y = torch.einsum("cji,nci->ncj", self.weight, x.reshape(n, c, h * w)) + self.bias
        return y.reshape(n, c, h, w)


class ContextEncoderGenerator(nn.Module):
    """The context encoder: a DCGAN-style encoder (conv4x4 s2, BN, LeakyReLU(0.2)) down to a
    k x k map, the channel-wise FC, a 1x1 convolution across channels, and a decoder of
    up-convolutions (BN, ReLU; tanh out) back to the full image, of which the model reads the part
    it was asked to predict (the centre, or the random blocks)."""

    def __init__(self, channels: int, image_size: int, width: int = 64, norm: str = "batch"):
        super().__init__()
        base, k = dcgan_stages(image_size)
        enc, ch = [], channels
        for i in range(k):
            out = width * 2 ** i
            enc += [nn.Conv2d(ch, out, 4, 2, 1, bias=i == 0 or norm == "none")]
            if i > 0:
                enc.append(_norm(norm, out))
            enc.append(nn.LeakyReLU(0.2, True))
            ch = out
        self.encoder = nn.Sequential(*enc)
        self.cwfc = ChannelWiseFC(ch, base)
        self.mix = nn.Sequential(nn.Dropout(0.5), nn.Conv2d(ch, ch, 1), nn.ReLU(True))
        dec = []
        for _ in range(k - 1):
            dec += [nn.ConvTranspose2d(ch, ch // 2, 4, 2, 1, bias=norm == "none"), _norm(norm, ch // 2), nn.ReLU(True)]
            ch //= 2
        self.decoder = nn.Sequential(*dec, nn.ConvTranspose2d(ch, channels, 4, 2, 1), nn.Tanh())
        cw = self.cwfc.weight.detach().clone()
        dcgan_init(self)
        with torch.no_grad():  # dcgan_init knows no ChannelWiseFC: keep its fan-in scale
            self.cwfc.weight.copy_(cw)

    def forward(self, x):
        return self.decoder(self.mix(self.cwfc(self.encoder(x))))


# -- degradations ------------------------------------------------------------------------------
def downsample(x: torch.Tensor, scale: int = 4) -> torch.Tensor:
    """SRGAN's low-resolution input: the image shrunk ``scale`` times with a bicubic kernel
    (antialiased, as MATLAB's imresize the paper used), in [-1, 1]."""
    h, w = x.shape[-2:]
    if h % scale or w % scale:
        raise ConfigError(f"a {scale}x super-resolution model needs an image side divisible by {scale}, got {h}x{w}")
    y = F.interpolate(x.float(), size=(h // scale, w // scale), mode="bicubic", antialias=True, align_corners=False)
    return y.clamp(-1, 1).to(x.dtype)


def bicubic_upsample(x: torch.Tensor, scale: int = 4) -> torch.Tensor:
    """The baseline every SR model is measured against: plain bicubic interpolation, in [-1, 1]."""
    h, w = x.shape[-2:]
    return F.interpolate(x.float(), size=(h * scale, w * scale), mode="bicubic", align_corners=False).clamp(-1, 1)


def centre_region(size: int, overlap: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(region, hole) bool masks (size, size) for the centre task: ``region`` is the centre square of
    side size/2 (a quarter of the area), the part G predicts; ``hole`` is that square less a border
    of ``overlap`` pixels, the part the input loses. The border is seen in the input and predicted
    too (Pathak et al.'s overlap), which ties the prediction to its surroundings."""
    if size % 2:
        raise ConfigError(f"the centre region needs an even image side, got {size}")
    q, half = size // 4, size // 2
    if not 0 <= overlap < half // 2:
        raise ConfigError(f"overlap must be in [0, {half // 2 - 1}] for {size}x{size} images, got {overlap}")
    region = torch.zeros(size, size, dtype=torch.bool)
    region[q:q + half, q:q + half] = True
    hole = torch.zeros_like(region)
    hole[q + overlap:q + half - overlap, q + overlap:q + half - overlap] = True
    return region, hole


def random_blocks(n: int, size: int, generator: torch.Generator | None = None, coverage: float = 0.25,
                  max_blocks: int = 5) -> torch.Tensor:
    """(n, size, size) bool masks of random rectangles (Pathak et al.'s random-block masks):
    blocks of side size/8 .. size/2 at random places, added until a mask covers at least
    ``coverage`` of the image or has ``max_blocks`` blocks."""
    masks = torch.zeros(n, size, size, dtype=torch.bool)
    lo, hi = max(1, size // 8), max(2, size // 2)
    for i in range(n):
        for _ in range(max_blocks):
            h, w = (int(v) for v in torch.randint(lo, hi + 1, (2,), generator=generator))
            top = int(torch.randint(0, size - h + 1, (1,), generator=generator))
            left = int(torch.randint(0, size - w + 1, (1,), generator=generator))
            masks[i, top:top + h, left:left + w] = True
            if masks[i].float().mean() >= coverage:
                break
    return masks
