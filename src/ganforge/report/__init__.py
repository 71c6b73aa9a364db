"""Pictures: sample grids, scatter plots of 2-D samples, loss curves."""
from .plots import loss_plot, save_grid, save_scatter

__all__ = ["loss_plot", "save_grid", "save_scatter"]
