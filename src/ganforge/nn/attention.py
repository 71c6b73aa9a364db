"""Self-attention (Zhang et al., "Self-Attention Generative Adversarial Networks", ICML 2019; SAGAN)
and conditional batch norm (de Vries et al. 2017; Dumoulin et al. 2017), as BigGAN uses them.

Convolutions see a few pixels at a time; a self-attention block lets every position of a feature
map draw on every other (a digit's top stroke on its bottom one) at the cost of one attention map.
Conditional batch norm puts the condition into G at every block: the normalised features are scaled
and shifted by a gain and bias computed from the condition vector, not by learned constants.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError


class SelfAttention(nn.Module):
    """``x + gamma * o(attention)`` with query/key/value 1x1 convs (C/8, C/8, C/2 channels) and, as in
    BigGAN's code, keys and values max-pooled 2x2 (a quarter of the positions to attend over).

    ``gamma`` starts at 0: the block begins as the identity and the network learns how much
    non-local evidence to use (SAGAN Sec. 4).
    """

    def __init__(self, channels: int):
        super().__init__()
        if channels < 8:
            raise ConfigError(f"self-attention needs at least 8 channels where it sits, got {channels}: "
                              "widen the network or move it (attn_res)")
        self.theta = nn.Conv2d(channels, channels // 8, 1, bias=False)
        self.phi = nn.Conv2d(channels, channels // 8, 1, bias=False)
        self.g = nn.Conv2d(channels, channels // 2, 1, bias=False)
        self.o = nn.Conv2d(channels // 2, channels, 1, bias=False)
        self.gamma = nn.Parameter(torch.zeros(()))

    def attention(self, x) -> torch.Tensor:
        """The attention map (B, HW, HW/4 pooled positions): each row sums to 1."""
        theta = self.theta(x).flatten(2)  # (B, C/8, HW)
        phi = self._pool(self.phi(x)).flatten(2)  # (B, C/8, HW')
        return F.softmax(theta.transpose(1, 2) @ phi, dim=-1)

    @staticmethod
    def _pool(h):
        return F.max_pool2d(h, 2) if min(h.shape[-2:]) >= 2 else h

    def forward(self, x):
        beta = self.attention(x)
        g = self._pool(self.g(x)).flatten(2)  # (B, C/2, HW')
        o = (g @ beta.transpose(1, 2)).view(x.shape[0], -1, *x.shape[-2:])
        return x + self.gamma * self.o(o)


class ConditionalBatchNorm2d(nn.Module):
    """Batch norm without its own affine parameters; gain ``1 + W_g c`` and bias ``W_b c`` per
    channel from the condition vector ``c`` (B, cond_dim) (BigGAN: c = [shared class embedding, z chunk])."""

    def __init__(self, channels: int, cond_dim: int, eps: float = 1e-5, momentum: float = 0.1):
        super().__init__()
        self.bn = nn.BatchNorm2d(channels, affine=False, eps=eps, momentum=momentum)
        # No bias: with c = 0 the layer is a plain batch norm (gain 1, bias 0).
        self.gain = nn.Linear(cond_dim, channels, bias=False)
        self.bias = nn.Linear(cond_dim, channels, bias=False)

    def forward(self, x, cond):
        gain = (1 + self.gain(cond)).to(x.dtype)[:, :, None, None]
        bias = self.bias(cond).to(x.dtype)[:, :, None, None]
        return self.bn(x) * gain + bias
