"""Shared network blocks: written once here, used by every model that needs them."""
from .augment import random_affine, random_shift
from .blocks import MLP, Maxout, View, adain, evaluating, init_weights, moving_average_
from .dcgan import DCGANDiscriminator, DCGANGenerator, dcgan_init, dcgan_stages
from .improved import HistoricalAverage, MinibatchDiscrimination
from .points import MLPCritic, gan_nets
from .progressive import (AdaIN, EqualizedConv2d, EqualizedLinear, MinibatchStdDev, NoiseInjection, PixelNorm,
                          ProGANGenerator, ProgressiveDiscriminator, StyleGenerator)
from .translation import (ImagePool, PatchDiscriminator, ResidualBlock, ResnetGenerator, UNetGenerator, norm_layer,
                          receptive_field)

__all__ = ["MLP", "Maxout", "View", "evaluating", "moving_average_", "DCGANDiscriminator", "DCGANGenerator", "dcgan_init", "dcgan_stages",
           "HistoricalAverage", "MinibatchDiscrimination", "MLPCritic", "gan_nets", "random_affine", "random_shift", "init_weights",
           "norm_layer", "UNetGenerator", "ResidualBlock", "ResnetGenerator", "PatchDiscriminator", "receptive_field",
           "ImagePool", "adain", "AdaIN", "EqualizedConv2d", "EqualizedLinear", "MinibatchStdDev", "NoiseInjection", "PixelNorm",
           "ProGANGenerator", "ProgressiveDiscriminator", "StyleGenerator"]
from .attention import ConditionalBatchNorm2d, SelfAttention  # noqa: E402
from .spectral import apply_spectral_norm, spectral_norm_ready, supports_spectral_norm  # noqa: E402

__all__ += ["ConditionalBatchNorm2d", "SelfAttention", "apply_spectral_norm", "spectral_norm_ready",
            "supports_spectral_norm"]
