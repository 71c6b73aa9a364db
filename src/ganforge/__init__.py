"""ganforge: the GAN family in one consistent, fast, tested library.

    >>> import ganforge
    >>> model = ganforge.create("dcgan")          # networks under the paper's names: model.G, model.D
    >>> images = model.sample(16, seed=0)          # (16, 1, 28, 28) in [-1, 1]
    >>> ganforge.train("dcgan", data="digits", steps=200, out="runs/quick")
    >>> model = ganforge.load("runs/quick")        # the trained model
"""
from .errors import ConfigError, DataError, GanforgeError, RunDirError
from .registry import get_model_class, model_names, register

__version__ = "0.1.0"

# Loaded on first use, so that `import ganforge.metrics.frechet` (or any lower layer) does not pull
# in the engine, the distributed launcher and the run-level evaluation above it.
_LAZY = {"create": ("training.engine", "create"), "train": ("training.engine", "train"),
         "load_run": ("training.engine", "load_run"), "load": ("training.engine", "load_run"),
         "evaluate_run": ("run_eval", "evaluate_run")}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(f".{module}", __name__), attr)
    raise AttributeError(f"module 'ganforge' has no attribute {name!r}")


__all__ = ["ConfigError", "DataError", "GanforgeError", "RunDirError", "create", "evaluate_run", "get_model_class",
           "load", "load_run", "model_names", "register", "train", "__version__"]
