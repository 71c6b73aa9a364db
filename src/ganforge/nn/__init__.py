"""Shared network blocks: written once here, used by every model that needs them."""
from .blocks import MLP, Maxout, View
from .dcgan import DCGANDiscriminator, DCGANGenerator, dcgan_init, dcgan_stages

__all__ = ["MLP", "Maxout", "View", "DCGANDiscriminator", "DCGANGenerator", "dcgan_init", "dcgan_stages"]
