"""Networks of the multimodal translators: MUNIT (Huang et al. 2018), DRIT (Lee et al. 2018) and
BicycleGAN (Zhu et al. 2017, "Toward Multimodal Image-to-Image Translation").

Each splits an image into a *content* (a spatial map, what is kept across domains) and a *style*
(a small vector, what a translation may vary) and decodes the pair again:

- ``ContentEncoder``: conv7, stride-2 downsamplings, residual blocks, instance norm (MUNIT's).
- ``StyleEncoder``: conv7, stride-2 downsamplings *without* norm (a norm would erase the very
  statistics that are the style), global average pooling, a 1x1 conv to the code; ``vae=True``
  gives a mean and a log-variance (DRIT's attribute encoder, BicycleGAN's E).
- ``AdaIN`` and ``AdaINDecoder``: MUNIT's decoder, whose residual blocks normalise each channel
  and then scale and shift it by parameters an MLP computes from the style code; the style reaches
  the decoder through those parameters and nowhere else.
- ``ConcatDecoder``: DRIT's decoder, which instead tiles the attribute code over the content map
  and concatenates it at every block.
- ``MultiScaleDiscriminator``: PatchGANs at the image's scale and at successive halvings (MUNIT's
  least-squares multi-scale D; BicycleGAN's ``num_Ds``).
- ``ZInput``: a generator whose input gets the code tiled over it as extra channels (BicycleGAN's
  "add to input" injection).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from .blocks import adain, init_weights
from .translation import PatchDiscriminator, ResidualBlock, norm_layer


def _cna(cin, cout, k, s, p, norm, act=True):
    layers = [nn.Conv2d(cin, cout, k, s, p, padding_mode="reflect", bias=norm == "none"), norm_layer(norm, cout)]
    return layers + ([nn.ReLU(True)] if act else [])


class ContentEncoder(nn.Module):
    """MUNIT's content encoder: c7s1-w, ``n_down`` x (4x4 stride 2, doubling), ``n_res`` residual
    blocks; instance norm throughout, so the map keeps the layout and loses the image's statistics."""

    def __init__(self, in_ch: int, width: int = 64, n_down: int = 2, n_res: int = 4, norm: str = "instance"):
        super().__init__()
        layers, c = _cna(in_ch, width, 7, 1, 3, norm), width
        for _ in range(n_down):
            layers += _cna(c, 2 * c, 4, 2, 1, norm)
            c *= 2
        layers += [ResidualBlock(c, norm) for _ in range(n_res)]
        self.net, self.out_channels = nn.Sequential(*layers), c
        init_weights(self)

    def forward(self, x):
        return self.net(x)


class StyleEncoder(nn.Module):
    """c7s1-w, ``n_down`` stride-2 convs (doubling up to 4w), global average pooling, 1x1 conv to
    ``style_dim`` (2 x style_dim with ``vae``: mean and log-variance). No normalisation."""

    def __init__(self, in_ch: int, style_dim: int = 8, width: int = 64, n_down: int = 4, vae: bool = False):
        super().__init__()
        layers, c = _cna(in_ch, width, 7, 1, 3, "none"), width
        for i in range(n_down):
            out = width * min(2 ** (i + 1), 4)
            layers += _cna(c, out, 4, 2, 1, "none")
            c = out
        layers += [nn.AdaptiveAvgPool2d(1), nn.Conv2d(c, style_dim * (2 if vae else 1), 1)]
        self.net, self.style_dim, self.vae = nn.Sequential(*layers), style_dim, vae
        init_weights(self)

    def forward(self, x):
        """The code (N, style_dim); with ``vae``, the pair (mean, log-variance)."""
        s = self.net(x).flatten(1)
        return s.chunk(2, 1) if self.vae else s


class AssignedAdaIN(nn.Module):
    """An instance norm whose scale and shift are set per image before each forward pass
    (``set_params``), by the decoder's MLP: a layer with no parameters of its own."""

    def __init__(self, channels: int):
        super().__init__()
        self.channels = channels
        self.gamma = self.beta = None

    def set_params(self, gamma, beta):
        self.gamma, self.beta = gamma, beta

    def forward(self, x):
        if self.gamma is None:
            raise RuntimeError("AdaIN used before its parameters were set from a style code")
        return adain(x, self.gamma, self.beta)


class AdaINResBlock(nn.Module):
    """x + (conv3-AdaIN-ReLU-conv3-AdaIN)(x): MUNIT's decoder block."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, 1, 1, padding_mode="reflect")
        self.conv2 = nn.Conv2d(channels, channels, 3, 1, 1, padding_mode="reflect")
        self.norm1, self.norm2 = AssignedAdaIN(channels), AssignedAdaIN(channels)

    def forward(self, x):
        return x + self.norm2(self.conv2(F.relu(self.norm1(self.conv1(x)))))


class LayerNorm2d(nn.Module):
    """Layer norm over (C, H, W) per image with a per-channel scale and shift (MUNIT's upsampling
    layers: an instance norm there would remove the style the AdaIN blocks just put in)."""

    def __init__(self, channels: int, eps: float = 1e-5):
        super().__init__()
        self.weight, self.bias = nn.Parameter(torch.ones(channels)), nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x):
        mu = x.mean((1, 2, 3), keepdim=True)
        sd = (x.var((1, 2, 3), keepdim=True, unbiased=False) + self.eps).sqrt()
        return (x - mu) / sd * self.weight[:, None, None] + self.bias[:, None, None]


def _upsampling(c: int, n_up: int) -> list:
    layers = []
    for _ in range(n_up):  # nearest-neighbour upsampling then conv5: no checkerboard of transposed convs
        layers += [nn.Upsample(scale_factor=2), nn.Conv2d(c, c // 2, 5, 1, 2, padding_mode="reflect"),
                   LayerNorm2d(c // 2), nn.ReLU(True)]
        c //= 2
    return layers


class AdaINDecoder(nn.Module):
    """MUNIT's decoder: ``n_res`` AdaIN residual blocks on the content map, ``n_up`` upsamplings
    (layer norm), conv7 to ``out_ch`` and tanh. ``mlp`` maps the style code to every AdaIN layer's
    (gamma, beta): the only path by which the style reaches the image."""

    def __init__(self, content_ch: int, out_ch: int, style_dim: int = 8, n_up: int = 2, n_res: int = 4,
                 mlp_dim: int = 256, mlp_layers: int = 3):
        super().__init__()
        self.blocks = nn.ModuleList([AdaINResBlock(content_ch) for _ in range(n_res)])
        self.up = nn.Sequential(*_upsampling(content_ch, n_up),
                                nn.Conv2d(content_ch >> n_up, out_ch, 7, 1, 3, padding_mode="reflect"), nn.Tanh())
        self.adain_layers = [m for m in self.modules() if isinstance(m, AssignedAdaIN)]
        n_params = 2 * sum(m.channels for m in self.adain_layers)
        layers, d = [], style_dim
        for _ in range(mlp_layers - 1):
            layers += [nn.Linear(d, mlp_dim), nn.ReLU(True)]
            d = mlp_dim
        self.mlp = nn.Sequential(*layers, nn.Linear(d, n_params))
        init_weights(self)
        self.style_dim = style_dim

    def adain_params(self, style):
        return self.mlp(style)

    def forward(self, content, style):
        params = self.adain_params(style)
        i = 0
        for m in self.adain_layers:
            c = m.channels
            # gamma = 1 + the MLP's output: an untrained decoder normalises rather than erases
            m.set_params(1 + params[:, i:i + c], params[:, i + c:i + 2 * c])
            i += 2 * c
        try:
            x = content
            for block in self.blocks:
                x = block(x)
            return self.up(x)
        finally:  # no tensor of this call stays on the module (it could not be deep-copied for EMA)
            for m in self.adain_layers:
                m.set_params(None, None)


def tile(z, like):
    """The code ``z`` (N, D) as D constant channels of the spatial size of ``like``."""
    return z[:, :, None, None].expand(-1, -1, *like.shape[-2:])


class ConcatDecoder(nn.Module):
    """DRIT's decoder: the attribute code is tiled and concatenated to the content map before each
    residual block and each upsampling, so every layer sees it."""

    def __init__(self, content_ch: int, out_ch: int, z_dim: int = 8, n_up: int = 2, n_res: int = 4,
                 norm: str = "instance"):
        super().__init__()
        self.blocks = nn.ModuleList([nn.Sequential(*_cna(content_ch + z_dim, content_ch, 3, 1, 1, norm),
                                                   *_cna(content_ch, content_ch, 3, 1, 1, norm, act=False))
                                     for _ in range(n_res)])
        c, self.ups = content_ch, nn.ModuleList()
        for _ in range(n_up):
            self.ups.append(nn.Sequential(nn.Upsample(scale_factor=2),
                                          nn.Conv2d(c + z_dim, c // 2, 5, 1, 2, padding_mode="reflect"),
                                          LayerNorm2d(c // 2), nn.ReLU(True)))
            c //= 2
        self.out = nn.Sequential(nn.Conv2d(c, out_ch, 7, 1, 3, padding_mode="reflect"), nn.Tanh())
        init_weights(self)

    def forward(self, content, z):
        x = content
        for block in self.blocks:
            x = x + block(torch.cat([x, tile(z, x)], 1))
        for up in self.ups:
            x = up(torch.cat([x, tile(z, x)], 1))
        return self.out(x)


class ZInput(nn.Module):
    """``net`` (a U-Net) fed the image with the code tiled over it as extra channels: G(A, z)."""

    def __init__(self, net: nn.Module, z_dim: int):
        super().__init__()
        self.net, self.z_dim = net, z_dim

    def forward(self, x, z):
        return self.net(torch.cat([x, tile(z, x)], 1))


class MultiScaleDiscriminator(nn.Module):
    """``n_scales`` PatchGANs (no norm), the k-th judging the image average-pooled k times; returns
    the list of their logit maps. Fine scales judge texture, coarse ones the overall layout."""

    def __init__(self, in_ch: int, ndf: int = 64, n_layers: int = 4, n_scales: int = 3, norm: str = "none"):
        super().__init__()
        if n_scales < 1:
            raise ConfigError(f"a multi-scale discriminator needs n_scales >= 1, got {n_scales}")
        self.scales = nn.ModuleList([PatchDiscriminator(in_ch, ndf, n_layers, norm) for _ in range(n_scales)])
        self.min_size = self.scales[0].min_size * 2 ** (n_scales - 1)

    def forward(self, x):
        out = []
        for i, d in enumerate(self.scales):
            if i:
                x = F.avg_pool2d(x, 3, 2, 1, count_include_pad=False)
            out.append(d(x))
        return out


def kl_normal(mu, logvar):
    """KL(N(mu, exp(logvar)) || N(0, I)), summed over the code and averaged over the batch."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).sum(1).mean()


class SharedContentEncoder(nn.Module):
    """DRIT's content encoders: one front per domain (``ContentEncoder`` of ``n_res - 1`` blocks)
    and a last residual block shared by both, so the two domains' contents land in one space.
    ``forward(x, domain)`` with domain "A" or "B"."""

    def __init__(self, in_a: int, in_b: int, width: int = 64, n_down: int = 2, n_res: int = 4,
                 norm: str = "instance"):
        super().__init__()
        if n_res < 1:
            raise ConfigError(f"the shared content encoder needs n_res >= 1 (its last block is shared), got {n_res}")
        self.front = nn.ModuleDict({"A": ContentEncoder(in_a, width, n_down, n_res - 1, norm),
                                    "B": ContentEncoder(in_b, width, n_down, n_res - 1, norm)})
        self.out_channels = self.front["A"].out_channels
        self.shared = ResidualBlock(self.out_channels, norm)

    def forward(self, x, domain: str):
        return self.shared(self.front[domain](x))


class ContentDiscriminator(nn.Module):
    """DRIT's content discriminator: from a content map to one logit, "came from domain A".
    Strided convs with LeakyReLU (no norm: the content maps of small images are only a few
    pixels wide), global average pooling, a 1x1 conv."""

    def __init__(self, channels: int, width: int = 64, n_layers: int = 2):
        super().__init__()
        layers, c = [], channels
        for _ in range(n_layers):
            layers += [nn.Conv2d(c, width, 4, 2, 1), nn.LeakyReLU(0.2, True)]
            c = width
        self.net = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Conv2d(c, 1, 1))
        init_weights(self)

    def forward(self, content):
        return self.net(content).flatten()
