"""Networks for image-to-image translation: pix2pix (Isola et al. 2017) and CycleGAN (Zhu et al. 2017).

The U-Net and ResNet generators, the PatchGAN discriminator and CycleGAN's image pool, written once
for the translation models (pix2pix, CycleGAN, and later DualGAN, DiscoGAN, UNIT, MUNIT, BicycleGAN,
SRGAN) to share. Both papers' Ck is a 4x4 (or 3x3) convolution, norm, activation with k filters.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError, closest
from .blocks import init_weights
from .spectral import spectral_norm_ready

NORMS = ("batch", "instance", "none")


def norm_layer(kind: str, channels: int) -> nn.Module:
    """The papers' norms. Instance norm as in their code: no affine scale, no running statistics,
    so it normalises each image by itself in training and at test time alike.

    (DCGAN's own norms, with an affine instance norm and "layer", stay in ``dcgan.py``.)
    """
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=False, track_running_stats=False)
    if kind == "none":
        return nn.Identity()
    raise ConfigError(f"unknown norm {kind!r}{closest(kind, NORMS)}: use one of {', '.join(NORMS)}")


def _conv(cin, cout, k, s, p, norm, *, transposed=False, **kw):
    """Conv then norm. The bias is dropped before a norm, which subtracts the mean and so cancels it."""
    layer = nn.ConvTranspose2d if transposed else nn.Conv2d
    return [layer(cin, cout, k, s, p, bias=norm == "none", **kw), norm_layer(norm, cout)]


def _drop(p: float) -> list:
    return [nn.Dropout(p)] if p else []


class UNetGenerator(nn.Module):
    """pix2pix's U-Net: an encoder-decoder whose decoder layer n-i also sees encoder layer i.

    Encoder C64-C128-C256-C512-C512-...: 4x4 stride-2 convs with LeakyReLU(0.2), no norm on the
    first (nor on the innermost, whose 1x1 map at batch size 1 has nothing to normalise). Decoder:
    4x4 stride-2 transposed convs, norm, dropout in the first three (the only noise pix2pix's G
    gets), ReLU; then a transposed conv to ``out_ch`` and tanh. log2(image_size) downsamplings take
    the image to 1x1 (8 at 256), or ``max_down``. ``skips=False`` makes it the paper's plain
    encoder-decoder baseline. Another size (28x28 digits) is padded to the next power of two by
    repeating the border and the output cropped back: halving must stay exact down the encoder.
    ``z_dim`` > 0: ``forward(x, z)`` tiles the code z (N, z_dim) over the input of every encoder
    layer, the first included (BicycleGAN's "add to all"), so that each layer sees z before its
    norm and not only through what the norms above left of it.
    """

    def __init__(self, in_ch: int, out_ch: int, image_size: int, ngf: int = 64, norm: str = "batch",
                 dropout: float = 0.5, max_down: int | None = None, skips: bool = True, z_dim: int = 0):
        super().__init__()
        if image_size < 8:
            raise ConfigError(f"the U-Net needs an image size >= 8, got {image_size}")
        self.image_size, self.side = image_size, 1 << (image_size - 1).bit_length()
        n = self.side.bit_length() - 1
        if max_down is not None:
            if max_down < 2:
                raise ConfigError(f"the U-Net needs max_down >= 2, got {max_down}")
            n = min(n, max_down)
        norm_layer(norm, 1)  # an unknown norm fails here, before any layer is built
        width = [ngf * min(2 ** i, 8) for i in range(n)]
        zc = z_dim  # the code's channels beside each encoder layer's input
        self.encoder = nn.ModuleList([nn.Sequential(nn.Conv2d(in_ch + zc, ngf, 4, 2, 1), nn.LeakyReLU(0.2, True))])
        for i in range(1, n - 1):
            self.encoder.append(nn.Sequential(*_conv(width[i - 1] + zc, width[i], 4, 2, 1, norm), nn.LeakyReLU(0.2, True)))
        # The bottleneck's activation is the decoder's ReLU.
        self.encoder.append(nn.Sequential(nn.Conv2d(width[n - 2] + zc, width[n - 1], 4, 2, 1), nn.ReLU(True)))
        grow = 2 if skips else 1
        self.decoder = nn.ModuleList()
        for j in range(n - 1):
            cin = width[n - 1] if j == 0 else width[n - 1 - j] * grow
            self.decoder.append(nn.Sequential(*_conv(cin, width[n - 2 - j], 4, 2, 1, norm, transposed=True),
                                              *_drop(dropout if j < 3 else 0.0), nn.ReLU(True)))
        self.out = nn.Sequential(nn.ConvTranspose2d(width[0] * grow, out_ch, 4, 2, 1), nn.Tanh())
        self.skips, self.n_down, self.z_dim = skips, n, z_dim
        init_weights(self)

    def forward(self, x, z=None):
        if (z is None) != (self.z_dim == 0):
            raise ValueError(f"this U-Net takes {'a code z' if self.z_dim else 'no code'} (z_dim={self.z_dim})")
        size = x.shape[-1]
        if size != self.side:
            lo = (self.side - size) // 2
            x = F.pad(x, (lo, self.side - size - lo) * 2, mode="replicate")
        feats = []
        for layer in self.encoder:
            if z is not None:
                x = torch.cat([x, z[:, :, None, None].expand(-1, -1, *x.shape[-2:])], 1)
            x = layer(x)
            feats.append(x)
        for j, layer in enumerate(self.decoder):
            x = layer(x)
            if self.skips:
                x = torch.cat([x, feats[-2 - j]], 1)
        x = self.out(x)
        if size != self.side:
            x = x[..., lo:lo + size, lo:lo + size]
        return x


class ResidualBlock(nn.Module):
    """x + F(x), F = pad-conv3x3-norm-act-(dropout)-pad-conv3x3-norm (He et al. 2016, as CycleGAN uses it).

    ``padding="zeros"`` and ``act=nn.PReLU`` give SRGAN's block (Ledig et al. 2017).
    """

    def __init__(self, channels: int, norm: str = "instance", dropout: float = 0.0, padding: str = "reflect",
                 act=nn.ReLU):
        super().__init__()
        if padding not in ("reflect", "zeros"):
            raise ConfigError(f"ResidualBlock padding must be reflect or zeros, got {padding!r}")
        self.residual = nn.Sequential(*_conv(channels, channels, 3, 1, 1, norm, padding_mode=padding), act(),
                                      *_drop(dropout), *_conv(channels, channels, 3, 1, 1, norm, padding_mode=padding))
        init_weights(self)

    def forward(self, x):
        return x + self.residual(x)


class ResnetGenerator(nn.Module):
    """CycleGAN's generator (after Johnson et al. 2016): c7s1-ngf, d2ngf, d4ngf, n_blocks x R4ngf,
    u2ngf, ungf, c7s1-out_ch with tanh. Reflection padding keeps border artefacts out; the image side
    must be a multiple of 4. The paper uses 9 blocks at 256x256, 6 at 128x128.
    """

    def __init__(self, in_ch: int, out_ch: int, ngf: int = 64, n_blocks: int = 9, norm: str = "instance",
                 dropout: float = 0.0):
        super().__init__()
        if n_blocks < 0:
            raise ConfigError(f"n_blocks must be >= 0, got {n_blocks}")
        layers = [*_conv(in_ch, ngf, 7, 1, 3, norm, padding_mode="reflect"), nn.ReLU(True)]
        for i in range(2):
            c = ngf * 2 ** i
            layers += [*_conv(c, 2 * c, 3, 2, 1, norm), nn.ReLU(True)]
        layers += [ResidualBlock(4 * ngf, norm, dropout) for _ in range(n_blocks)]
        for i in range(2):
            c = ngf * 4 // 2 ** i
            layers += [*_conv(c, c // 2, 3, 2, 1, norm, transposed=True, output_padding=1), nn.ReLU(True)]
        layers += [nn.Conv2d(ngf, out_ch, 7, 1, 3, padding_mode="reflect"), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        init_weights(self)

    def forward(self, x):
        if x.shape[-1] % 4 or x.shape[-2] % 4:
            raise ConfigError(f"the ResNet generator needs image sides that are multiples of 4, "
                              f"got {tuple(x.shape[-2:])}")
        return self.net(x)


def receptive_field(n_layers: int = 3) -> int:
    """The side of the input patch one PatchGAN logit sees: 70 for n_layers=3 (16, 34, 70, 142, ...)."""
    r = 1
    for k, s in [(4, 1), (4, 1)] + [(4, 2)] * n_layers:  # from the output back to the input
        r = (r - 1) * s + k
    return r


@spectral_norm_ready
class PatchDiscriminator(nn.Module):
    """pix2pix's PatchGAN: a map of logits, each judging one patch (70x70 for n_layers=3).

    C64 (no norm) and n_layers - 1 more 4x4 stride-2 convs doubling the width (up to 8 * ndf), one at
    stride 1, then a stride-1 conv to one channel; LeakyReLU(0.2). ``in_ch`` counts the condition too
    when a model concatenates it (pix2pix's D sees input and output together).
    """

    def __init__(self, in_ch: int, ndf: int = 64, n_layers: int = 3, norm: str = "batch"):
        super().__init__()
        if n_layers < 1:
            raise ConfigError(f"the PatchGAN needs n_layers >= 1, got {n_layers}")
        layers, c = [nn.Conv2d(in_ch, ndf, 4, 2, 1), nn.LeakyReLU(0.2, True)], ndf
        for i in range(1, n_layers + 1):
            out = ndf * min(2 ** i, 8)
            layers += [*_conv(c, out, 4, 2 if i < n_layers else 1, 1, norm), nn.LeakyReLU(0.2, True)]
            c = out
        layers.append(nn.Conv2d(c, 1, 4, 1, 1))
        self.net = nn.Sequential(*layers)
        self.n_layers, self.receptive_field = n_layers, receptive_field(n_layers)
        # n_layers halvings, then two 4x4 stride-1 convs that take 3 pixels off each side.
        self.min_size = 3 * 2 ** n_layers
        init_weights(self)

    def forward(self, x):
        if min(x.shape[-2:]) < self.min_size:
            raise ConfigError(f"a PatchGAN with n_layers={self.n_layers} needs images of at least "
                              f"{self.min_size}x{self.min_size}, got {tuple(x.shape[-2:])}")
        return self.net(x)


class ImagePool(nn.Module):
    """CycleGAN's history of generated images (Shrivastava et al. 2017), so D also sees older fakes.

    ``query(images)`` stores images until ``size`` are held and returns them as they are; after
    that, with probability 1/2, an image is swapped: a random stored one is returned in its place
    and it takes that one's slot. Returns a detached batch (for D's step). The stored images (a buffer) and the count and
    random state (extra state) are all in ``state_dict()``, so a resumed run draws the same swaps.
    ``generator`` (CPU) or ``seed`` fixes the draws; with neither, the seed comes from torch's RNG.
    """

    def __init__(self, size: int = 50, seed: int | None = None, generator: torch.Generator | None = None):
        super().__init__()
        if size < 0:
            raise ConfigError(f"the image pool size must be >= 0, got {size}")
        self.size, self.count = size, 0
        if generator is None:
            seed = int(torch.randint(2 ** 62, ())) if seed is None else seed
            generator = torch.Generator().manual_seed(seed)
        self.generator = generator
        # Shaped by the first query (or by a loaded state), so the pool needs no image shape.
        self.register_buffer("images", torch.empty(0))

    @torch.no_grad()
    def query(self, images: torch.Tensor) -> torch.Tensor:
        images = images.detach()
        if self.size == 0:
            return images
        if self.images.shape[1:] != images.shape[1:]:
            if self.count:
                raise ValueError(f"image pool holds {tuple(self.images.shape[1:])} images, "
                                 f"got {tuple(images.shape[1:])}")
            # zeros, not new_empty: the slots not yet filled are saved in checkpoints too, which
            # must be identical between a resumed and an uninterrupted run
            self.images = images.new_zeros(self.size, *images.shape[1:])
        out = images.clone()
        for i, img in enumerate(images):
            if self.count < self.size:
                self.images[self.count] = img
                self.count += 1
            elif torch.rand((), generator=self.generator) < 0.5:  # drawn on the CPU: no device sync
                j = int(torch.randint(self.size, (), generator=self.generator))
                out[i] = self.images[j]
                self.images[j] = img
        return out

    def forward(self, images):
        return self.query(images)

    def get_extra_state(self):
        return {"count": self.count, "rng": self.generator.get_state()}

    def set_extra_state(self, state):
        self.count = int(state["count"])
        self.generator.set_state(state["rng"].cpu())

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # A fresh pool has not seen an image yet: take the stored images' shape before loading them.
        saved = state_dict.get(prefix + "images")
        if saved is not None and saved.shape != self.images.shape:
            self.images = self.images.new_empty(saved.shape, dtype=saved.dtype)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
