"""BigGAN's networks (Brock, Donahue & Simonyan, "Large Scale GAN Training for High Fidelity Natural
Image Synthesis", ICLR 2019), sized from the image size like the DCGAN ones (28 -> 7x7 and two
blocks, 32 -> 4x4 and three).

G: the latent z is split into one chunk per block plus one (the *hierarchical latent*): the first
chunk feeds the linear layer that makes the base feature map, each other one joins the *shared*
class embedding in the condition vector of that block's conditional batch norms. Residual up-blocks
(BN-ReLU-upsample-conv3-BN-ReLU-conv3, 1x1 conv shortcut), one self-attention block, then
BN-ReLU-conv3-tanh. D: residual down-blocks (pre-activation except the first, average pooling),
self-attention, ReLU, global sum pooling and a *projection* head (Miyato & Koyama 2018):
D(x, y) = w . h(x) + embed(y) . h(x). Both are initialised orthogonally and, by default,
spectrally normalised in every layer (G's shared embedding excepted, as in the authors' code).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from .attention import ConditionalBatchNorm2d, SelfAttention
from .dcgan import dcgan_stages
from .spectral import SN_LAYERS, apply_spectral_norm, spectral_norm_ready


def ortho_init(module: nn.Module) -> None:
    """BigGAN's initialisation: orthogonal conv/linear/embedding weights, zero biases."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear, nn.Embedding)):
            nn.init.orthogonal_(m.weight)
            if getattr(m, "bias", None) is not None:
                nn.init.zeros_(m.bias)


def truncated_normal(z: torch.Tensor, threshold: float, draw) -> torch.Tensor:
    """The truncation trick (Brock et al. Sec. 3.1): every entry of ``z`` with |z| > threshold is
    redrawn, by ``draw(shape)`` (fresh N(0, 1) values of z's shape), until all lie inside. Entries
    already inside keep their values, so the result is N(0, 1) conditioned on |z| <= threshold."""
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not threshold > 0:
        raise ConfigError(f"truncation must be a threshold > 0, got {threshold!r}")
    out = z.abs() > threshold
    while out.any():
        z = torch.where(out, draw(z.shape).to(z), z)
        out = z.abs() > threshold
    return z


class GBlock(nn.Module):
    """Residual up-block: cBN-ReLU-up-conv3-cBN-ReLU-conv3 plus up-conv1 on the shortcut."""

    def __init__(self, c_in: int, c_out: int, cond_dim: int):
        super().__init__()
        self.bn1, self.bn2 = ConditionalBatchNorm2d(c_in, cond_dim), ConditionalBatchNorm2d(c_out, cond_dim)
        self.conv1, self.conv2 = nn.Conv2d(c_in, c_out, 3, 1, 1), nn.Conv2d(c_out, c_out, 3, 1, 1)
        self.conv_sc = nn.Conv2d(c_in, c_out, 1)

    def forward(self, x, cond):
        h = F.interpolate(F.relu(self.bn1(x, cond)), scale_factor=2)
        h = self.conv2(F.relu(self.bn2(self.conv1(h), cond)))
        return h + self.conv_sc(F.interpolate(x, scale_factor=2))


class DBlock(nn.Module):
    """Residual down-block: (ReLU-)conv3-ReLU-conv3(-avgpool) plus a 1x1 conv shortcut."""

    def __init__(self, c_in: int, c_out: int, downsample: bool, preactivation: bool):
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(c_in, c_out, 3, 1, 1), nn.Conv2d(c_out, c_out, 3, 1, 1)
        self.downsample, self.preactivation = downsample, preactivation
        self.conv_sc = nn.Conv2d(c_in, c_out, 1) if c_in != c_out or downsample else None

    def _down(self, h):
        return F.avg_pool2d(h, 2) if self.downsample else h

    def forward(self, x):
        h = F.relu(x) if self.preactivation else x
        h = self._down(self.conv2(F.relu(self.conv1(h))))
        if self.conv_sc is None:
            return h + x
        # the first block sees raw pixels: pool before its shortcut conv (fewer positions), as in BigGAN
        sc = self._down(self.conv_sc(x)) if self.preactivation else self.conv_sc(self._down(x))
        return h + sc


def _attn_res(image_size: int, attn_res) -> int:
    """The resolution of the self-attention block: half the image size unless set (0: none)."""
    if attn_res is None:
        return image_size // 2
    if isinstance(attn_res, bool) or not isinstance(attn_res, int) or attn_res < 0:
        raise ConfigError(f"attn_res must be a resolution (an integer >= 0; 0: no self-attention), got {attn_res!r}")
    return attn_res


class BigGANGenerator(nn.Module):
    """(z (B, z_dim), y (B,)) -> images (B, channels, size, size) in [-1, 1].

    ``width`` is the channel count at full resolution; it doubles at every halving towards the base
    map. ``attn_res``: the resolution after which the self-attention block sits (0: none).
    """

    def __init__(self, z_dim: int, n_classes: int, channels: int, image_size: int, width: int = 32,
                 shared_dim: int = 128, attn_res: int | None = None, spectral: bool = True):
        super().__init__()
        base, k = dcgan_stages(image_size)
        self.slots = k + 1
        if z_dim % self.slots:
            raise ConfigError(f"BigGAN splits z into {self.slots} chunks at {image_size}x{image_size} "
                              f"(one per block, plus one): z_dim must be a multiple of {self.slots}, got {z_dim}")
        self.z_dim, self.chunk, self.base = z_dim, z_dim // self.slots, base
        self.shared = nn.Embedding(n_classes, shared_dim)
        c = width * 2 ** k
        self.linear = nn.Linear(self.chunk, c * base * base)
        blocks, res, self.attn_after = [], base, None
        attn = _attn_res(image_size, attn_res)
        self.attn = None
        for i in range(k):
            blocks.append(GBlock(c, c // 2, shared_dim + self.chunk))
            c, res = c // 2, res * 2
            if res == attn:
                self.attn, self.attn_after = SelfAttention(c), i
        if attn and self.attn is None:
            raise ConfigError(f"attn_res must be 0 or one of G's resolutions "
                              f"{[base * 2 ** (i + 1) for i in range(k)]}, got {attn}")
        self.blocks = nn.ModuleList(blocks)
        self.out = nn.Sequential(nn.BatchNorm2d(c), nn.ReLU(), nn.Conv2d(c, channels, 3, 1, 1), nn.Tanh())
        ortho_init(self)
        if spectral:
            # the shared embedding stays plain (BigGAN's code); every other weight, cBN's included
            apply_spectral_norm(self, kinds=SN_LAYERS)

    def split(self, z):
        """z's chunks: the first for the base map, then one per block."""
        return torch.split(z, self.chunk, dim=1)

    def conditions(self, z, y) -> list[torch.Tensor]:
        """Each block's condition vector: [shared(y), its z chunk]."""
        s = self.shared(y)
        return [torch.cat([s, zc.to(s.dtype)], 1) for zc in self.split(z)[1:]]

    def forward(self, z, y):
        z0 = self.split(z)[0]
        h = self.linear(z0).view(len(z), -1, self.base, self.base)
        for i, (block, cond) in enumerate(zip(self.blocks, self.conditions(z, y))):
            h = block(h, cond)
            if i == self.attn_after:
                h = self.attn(h)
        return self.out(h)


@spectral_norm_ready
class BigGANDiscriminator(nn.Module):
    """(x, y) -> D(x, y) (B,): residual down-blocks to the base resolution and one more block,
    ReLU, sum over positions -> h (B, C); output w . h + b + embed(y) . h (the projection)."""

    def __init__(self, n_classes: int, channels: int, image_size: int, width: int = 32,
                 attn_res: int | None = None, spectral: bool = True):
        super().__init__()
        base, k = dcgan_stages(image_size)
        attn = _attn_res(image_size, attn_res)
        blocks, c, res, self.attn, self.attn_after = [], channels, image_size, None, None
        for i in range(k):
            blocks.append(DBlock(c, width * 2 ** i, downsample=True, preactivation=i > 0))
            c, res = width * 2 ** i, res // 2
            if res == attn and self.attn is None:
                self.attn, self.attn_after = SelfAttention(c), i
        if attn and self.attn is None:
            raise ConfigError(f"attn_res must be 0 or one of D's resolutions "
                              f"{[image_size // 2 ** (i + 1) for i in range(k)]}, got {attn}")
        blocks.append(DBlock(c, c, downsample=False, preactivation=True))
        self.blocks = nn.ModuleList(blocks)
        self.feature_dim = c
        self.linear = nn.Linear(c, 1)
        self.embed = nn.Embedding(n_classes, c)
        ortho_init(self)
        if spectral:
            apply_spectral_norm(self, kinds=(*SN_LAYERS, nn.Embedding))

    def features(self, x):
        h = x
        for i, block in enumerate(self.blocks):
            h = block(h)
            if i == self.attn_after:
                h = self.attn(h)
        return F.relu(h).sum((2, 3))

    def project(self, h, y):
        """The class term embed(y) . h of the projection discriminator."""
        return (self.embed(y) * h).sum(1)

    def forward(self, x, y):
        h = self.features(x)
        return self.linear(h).squeeze(1) + self.project(h, y)
