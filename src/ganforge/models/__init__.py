"""One module per model (or close family); each registers itself with ``@register``."""
from .base import Change, GANModel, Phase, batch_len

__all__ = ["Change", "GANModel", "Phase", "batch_len"]
