"""One module per model (or close family); each registers itself with ``@register``."""
from .base import GANModel, Phase, batch_len

__all__ = ["GANModel", "Phase", "batch_len"]
