"""The model registry: every model class registers itself under its CLI name.

Model modules under ``ganforge.models`` are discovered automatically, so adding a model is
adding one file with a ``@register`` class in it.
"""
from __future__ import annotations

import importlib
import pkgutil

from .errors import ConfigError, closest

_MODELS: dict[str, type] = {}
_loaded = False


def register(cls):
    """Class decorator: make a GANModel subclass available as ``ganforge train <cls.name>``."""
    if not cls.name:
        raise ValueError(f"{cls.__name__} has no name")
    if cls.name in _MODELS and _MODELS[cls.name] is not cls:
        raise ValueError(f"model name {cls.name!r} registered twice")
    _MODELS[cls.name] = cls
    return cls


def _load_all():
    global _loaded
    if _loaded:
        return
    from . import models

    for info in pkgutil.iter_modules(models.__path__):
        if not info.name.startswith("_"):
            importlib.import_module(f"{models.__name__}.{info.name}")
    _loaded = True


def model_names() -> list[str]:
    _load_all()
    return sorted(_MODELS)


def all_models() -> dict[str, type]:
    """Every registered model class by name."""
    _load_all()
    return dict(sorted(_MODELS.items()))


def get_model_class(name: str):
    _load_all()
    key = name.lower()
    if key not in _MODELS:
        raise ConfigError(f"unknown model {name!r}{closest(key, _MODELS)}; `ganforge list` shows them all")
    return _MODELS[key]
