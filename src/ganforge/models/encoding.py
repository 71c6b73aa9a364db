"""What the models with an encoder share (AAE, BiGAN, ALI, VAE-GAN, VAE): images to codes and back.

Such a model has, beside its generator or decoder (``generator``, sampled and measured as for any
model), an encoder ``E``: x -> z. ``encode(x)`` gives the codes of given images (for BiGAN's and
ALI's feature-learning claim: a nearest-neighbour classifier on E(x)); ``reconstruct(x)`` gives
G(E(x)). ``ganforge encode RUN --input ...`` and ``ganforge sample RUN --input ...`` call them.

A model overrides ``encode_batch`` when its encoder's output is not the code itself (a stochastic
encoder returns its mean: the code a user wants for features is the deterministic one) and
``decode_batch`` when G takes more than z (AAE's supervised G also reads the label: ``reconstruct``
and ``decode`` take the images' labels ``y``, which other models ignore).
"""
from __future__ import annotations

import torch

from ..errors import ConfigError
from ..nn import evaluating


class Encoding:
    """Mixin for a GANModel with an encoder (put it before GANModel in the bases)."""

    encoder: str = "E"  # the network that encodes (its EMA copy when the run has one)

    def encoder_name(self, use_ema: bool = True) -> str:
        ema = f"{self.encoder}_ema"
        return ema if use_ema and hasattr(self, ema) else self.encoder

    def encode_batch(self, x: torch.Tensor, E) -> torch.Tensor:
        """The codes of a batch ``x`` (floats in [-1, 1], on the model's device) by network ``E``."""
        return E(x)

    def reparameterise(self, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        """A sample of a stochastic encoder's N(mu, exp(logvar)): z = mu + exp(logvar / 2) * eps,
        so the gradient of whatever z feeds reaches mu and logvar; eps is drawn like all the
        engine's noise (``GANModel.randn``: for the global batch, sliced by rank)."""
        eps = self.randn(len(mu), mu.shape[1]).to(mu.dtype)
        return mu + (0.5 * logvar).exp() * eps

    def decode_batch(self, z: torch.Tensor, G, y: torch.Tensor | None = None) -> torch.Tensor:
        """Images for codes ``z`` by network ``G`` (the generator or decoder); ``y``, the labels of the
        images the codes came from, or None, is for a G that reads labels."""
        return self.generate({"z": z}, G)

    def _images(self, x: torch.Tensor) -> torch.Tensor:
        s = self.spec
        if x.ndim != 4 or tuple(x.shape[1:]) != (s.channels, s.image_size, s.image_size):
            raise ConfigError(f"{self.name} encodes images of shape (N, {s.channels}, {s.image_size}, "
                              f"{s.image_size}), got {tuple(x.shape)}")
        return x.float() / 127.5 - 1.0 if x.dtype == torch.uint8 else x.float()

    @torch.no_grad()
    def encode(self, x: torch.Tensor, use_ema: bool = True, batch_size: int = 500) -> torch.Tensor:
        """Codes (N, z) of images ``x`` (uint8, or floats in [-1, 1]), in eval mode, on the CPU."""
        x, E = self._images(x), getattr(self, self.encoder_name(use_ema))
        with evaluating(E):
            out = [self.encode_batch(x[i:i + batch_size].to(self.device), E).float().cpu()
                   for i in range(0, len(x), batch_size)]
        return torch.cat(out) if out else x.new_empty(0, 0)

    @torch.no_grad()
    def decode(self, z: torch.Tensor, use_ema: bool = True, batch_size: int = 500, y=None) -> torch.Tensor:
        """Images G(z) for codes ``z`` (from ``encode``), in [-1, 1], on the CPU; ``y``: see ``decode_batch``."""
        G = self.generator_net(use_ema)
        y = None if y is None else torch.as_tensor(y).long()
        with evaluating(G):
            out = [self.decode_batch(z[i:i + batch_size].to(self.device), G,
                                     None if y is None else y[i:i + batch_size].to(self.device)).float().cpu()
                   for i in range(0, len(z), batch_size)]
        s = self.spec
        return torch.cat(out) if out else z.new_empty(0, s.channels, s.image_size, s.image_size)

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor, use_ema: bool = True, batch_size: int = 500, y=None) -> torch.Tensor:
        """G(E(x)) for images ``x``, in [-1, 1], on the CPU; ``y``, the images' labels, for a G that
        reads them (AAE's supervised variant)."""
        return self.decode(self.encode(x, use_ema, batch_size), use_ema, batch_size, y)
