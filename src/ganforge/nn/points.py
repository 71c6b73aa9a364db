"""Small MLPs for the 2-D point mixtures (ring8, grid25), and the usual image/points switch.

Toy GAN experiments (VEEGAN, PacGAN) use fully connected nets a few layers deep; a linear output
in G because the mixtures are not confined to [-1, 1].
"""
from __future__ import annotations

from torch import nn

from ..errors import ConfigError
from .dcgan import DCGANDiscriminator, DCGANGenerator
from .spectral import spectral_norm_ready


class ToyGenerator(nn.Sequential):
    """z (B, z_dim) -> points (B, d_out): ``layers`` hidden ReLU layers of ``hidden`` units, linear output.

    ``norm="batch"`` puts batch norm before each ReLU (bias-free linear layers), as in PacGAN's
    2-D generators (Lin et al. 2018: 4 x 400 units, BN + ReLU).
    """

    def __init__(self, z_dim: int, hidden: int, layers: int, d_out: int, norm: str = "none"):
        if norm not in ("none", "batch"):
            raise ConfigError(f"toy_g_norm must be none or batch, got {norm!r}")
        blocks, d = [], z_dim
        for _ in range(layers):
            if norm == "batch":
                blocks += [nn.Linear(d, hidden, bias=False), nn.BatchNorm1d(hidden)]
            else:
                blocks.append(nn.Linear(d, hidden))
            blocks.append(nn.ReLU())
            d = hidden
        blocks.append(nn.Linear(d, d_out))
        super().__init__(*blocks)


@spectral_norm_ready
class MLPCritic(nn.Module):
    """x (B, d) -> D's output (B,) or (B, out_dim); ``features(x)`` is the last hidden layer.

    ``norm="layer"`` gives a per-sample normalisation, safe under a gradient penalty. ``pack=m``
    is PacGAN's packing (Lin et al. 2018): D judges m samples of the same source at once, so a
    batch of B points gives B/m outputs (B must be a multiple of m; losses average over outputs).
    """

    def __init__(self, d_in: int, hidden: int, layers: int, norm: str = "none", out_dim: int = 1, pack: int = 1):
        super().__init__()
        if pack < 1:
            raise ConfigError(f"toy_pack must be at least 1, got {pack}")
        self.pack = pack
        blocks, d = [nn.Flatten()], d_in * pack
        for _ in range(layers):
            blocks += [nn.Linear(d, hidden), nn.LayerNorm(hidden) if norm == "layer" else nn.Identity(),
                       nn.LeakyReLU(0.2)]
            d = hidden
        self.body = nn.Sequential(*blocks)
        self.head = nn.Linear(d, out_dim)
        self.out_dim = out_dim

    def _packed(self, x):
        if self.pack == 1:
            return x
        if len(x) % self.pack:
            raise ConfigError(f"a packed D (toy_pack={self.pack}) needs batches of a multiple of {self.pack} "
                              f"samples, got {len(x)}")
        return x.reshape(len(x) // self.pack, -1)

    def features(self, x):
        return self.body(self._packed(x))

    def forward(self, x):
        out = self.head(self.features(x))
        return out.squeeze(1) if self.out_dim == 1 else out


def gan_nets(spec, cfg: dict, d_norm: str = "batch", toy_d_norm: str = "none"):
    """(G, D): DCGAN networks for images, MLPs of ``toy_hidden`` x ``toy_layers`` for points.

    Optional toy settings (in a model's defaults): ``toy_g_hidden`` / ``toy_g_layers`` size G apart
    from D (0: as ``toy_hidden`` / ``toy_layers``), ``toy_g_norm`` ("none" | "batch") normalises G,
    ``toy_pack`` packs D's inputs (PacGAN).
    """
    if spec.kind == "points":
        h, n = cfg["toy_hidden"], cfg["toy_layers"]
        g = ToyGenerator(cfg["z_dim"], cfg.get("toy_g_hidden") or h, cfg.get("toy_g_layers") or n, spec.dim,
                         norm=cfg.get("toy_g_norm", "none"))
        return g, MLPCritic(spec.dim, h, n, norm=toy_d_norm, pack=cfg.get("toy_pack", 1))
    return (DCGANGenerator(cfg["z_dim"], spec.channels, spec.image_size, cfg["g_width"]),
            DCGANDiscriminator(spec.channels, spec.image_size, cfg["d_width"], norm=d_norm))
