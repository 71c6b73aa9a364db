"""Shared network blocks: written once here, used by every model that needs them."""
from .augment import random_affine
from .blocks import MLP, Maxout, View, evaluating, moving_average_
from .dcgan import DCGANDiscriminator, DCGANGenerator, dcgan_init, dcgan_stages
from .improved import HistoricalAverage, MinibatchDiscrimination
from .points import MLPCritic, gan_nets

__all__ = ["MLP", "Maxout", "View", "evaluating", "moving_average_", "DCGANDiscriminator", "DCGANGenerator", "dcgan_init", "dcgan_stages",
           "HistoricalAverage", "MinibatchDiscrimination", "MLPCritic", "gan_nets", "random_affine"]
