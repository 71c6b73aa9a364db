"""The one training engine every model runs on."""
from .engine import Interrupted, Trainer, create, load_run, train

__all__ = ["Interrupted", "Trainer", "create", "load_run", "train"]
