"""ganforge: the GAN family in one consistent, fast, tested library.

    >>> import ganforge
    >>> model = ganforge.create("dcgan")          # networks under the paper's names: model.G, model.D
    >>> images = model.sample(16, seed=0)          # (16, 1, 28, 28) in [-1, 1]
    >>> ganforge.train("dcgan", data="digits", steps=200, out="runs/quick")
    >>> model = ganforge.load("runs/quick")        # the trained model
"""
from .errors import ConfigError, DataError, GanforgeError, RunDirError
from .registry import get_model_class, model_names, register
from .train import create, load_run, train

load = load_run
__version__ = "0.1.0"

__all__ = ["ConfigError", "DataError", "GanforgeError", "RunDirError", "create", "get_model_class", "load",
           "load_run", "model_names", "register", "train", "__version__"]
