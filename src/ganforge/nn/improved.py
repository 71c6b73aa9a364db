"""Blocks for the Improved-GAN techniques (Salimans et al., "Improved Techniques for Training
GANs", NeurIPS 2016) that any model with the default GAN steps can switch on.
"""
from __future__ import annotations

import torch
from torch import nn


class MinibatchDiscrimination(nn.Module):
    """Appends, to each sample's features, how close it is to the *other* samples of its batch.

    Features f (N, A) are projected by a tensor T (A, B, C) to M (N, B, C); for each of the B
    kernels, o_b(x_i) = sum_{j != i} exp(-||M_i,b - M_j,b||_1). A collapsed G produces a batch of
    near-identical samples whose o is large, which D can then see; output is (N, A + B).
    """

    def __init__(self, in_features: int, kernels: int = 100, kernel_dim: int = 5):
        super().__init__()
        self.kernels, self.kernel_dim = kernels, kernel_dim
        self.T = nn.Parameter(torch.randn(in_features, kernels * kernel_dim) * 0.1)

    def forward(self, f):
        m = (f @ self.T).view(-1, self.kernels, self.kernel_dim)
        l1 = (m.unsqueeze(0) - m.unsqueeze(1)).abs().sum(-1)  # (N, N, B)
        # exp(-0) = 1 on the diagonal: subtract it so a sample is not compared with itself.
        o = torch.exp(-l1).sum(1) - 1.0
        return torch.cat([f, o], dim=1)


class HistoricalAverage(nn.Module):
    """The running mean of a network's past parameters, and the penalty ||theta - mean||^2.

    The mean is kept in buffers so that it is saved in checkpoints and a resumed run continues
    with exactly the same history.
    """

    def __init__(self, net: nn.Module):
        super().__init__()
        params = [p for p in net.parameters()]
        for i, p in enumerate(params):
            self.register_buffer(f"mean{i}", p.detach().clone())
        self.register_buffer("count", torch.ones((), dtype=torch.long))
        self.n = len(params)

    def means(self):
        return [getattr(self, f"mean{i}") for i in range(self.n)]

    @torch.no_grad()
    def update(self, net: nn.Module) -> None:
        self.count += 1
        w = 1.0 / self.count.item()
        for m, p in zip(self.means(), net.parameters()):
            m.lerp_(p.detach().to(m.dtype), w)  # cumulative mean: m += (p - m) / t

    def penalty(self, net: nn.Module):
        return sum((p - m).pow(2).sum() for p, m in zip(net.parameters(), self.means()))
