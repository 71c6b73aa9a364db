"""Small MLPs for the 2-D point mixtures (ring8, grid25), and the usual image/points switch.

Toy GAN experiments (VEEGAN, PacGAN) use fully connected nets a few layers deep; a linear output
in G because the mixtures are not confined to [-1, 1].
"""
from __future__ import annotations

from torch import nn

from .blocks import MLP
from .dcgan import DCGANDiscriminator, DCGANGenerator


class MLPCritic(nn.Module):
    """x (B, d) -> D's output (B,) or (B, out_dim); ``features(x)`` is the last hidden layer.

    ``norm="layer"`` gives a per-sample normalisation, safe under a gradient penalty.
    """

    def __init__(self, d_in: int, hidden: int, layers: int, norm: str = "none", out_dim: int = 1):
        super().__init__()
        blocks, d = [nn.Flatten()], d_in
        for _ in range(layers):
            blocks += [nn.Linear(d, hidden), nn.LayerNorm(hidden) if norm == "layer" else nn.Identity(),
                       nn.LeakyReLU(0.2)]
            d = hidden
        self.body = nn.Sequential(*blocks)
        self.head = nn.Linear(d, out_dim)
        self.out_dim = out_dim

    def features(self, x):
        return self.body(x)

    def forward(self, x):
        out = self.head(self.body(x))
        return out.squeeze(1) if self.out_dim == 1 else out


def gan_nets(spec, cfg: dict, d_norm: str = "batch", toy_d_norm: str = "none"):
    """(G, D): DCGAN networks for images, MLPs of ``toy_hidden`` x ``toy_layers`` for points."""
    if spec.kind == "points":
        h, n = cfg["toy_hidden"], cfg["toy_layers"]
        return MLP([cfg["z_dim"], *[h] * n, spec.dim]), MLPCritic(spec.dim, h, n, norm=toy_d_norm)
    return (DCGANGenerator(cfg["z_dim"], spec.channels, spec.image_size, cfg["g_width"]),
            DCGANDiscriminator(spec.channels, spec.image_size, cfg["d_width"], norm=d_norm))
