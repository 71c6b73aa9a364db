"""One module per model (or close family); each registers itself with ``@register``."""
from .base import GANModel, Phase

__all__ = ["GANModel", "Phase"]
