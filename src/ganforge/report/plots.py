"""Image grids and plots (matplotlib with the Agg backend: works with no screen)."""
from __future__ import annotations

import io
import json
import math
from pathlib import Path

import torch

from ..files import atomic_write_bytes


def _png_bytes(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return buf.getvalue()


def save_grid(images: torch.Tensor, path, nrow: int | None = None) -> None:
    """Images in [-1, 1], (N, C, H, W), as one PNG grid."""
    from torchvision.utils import make_grid
    from PIL import Image

    images = images.detach().float().cpu().clamp(-1, 1)
    nrow = nrow or max(1, int(math.ceil(math.sqrt(len(images)))))
    grid = make_grid((images + 1) / 2, nrow=nrow, padding=2, pad_value=1.0)
    arr = grid.mul(255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    if arr.shape[2] == 1:
        arr = arr[:, :, 0]
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    atomic_write_bytes(Path(path), buf.getvalue())


def save_scatter(fake: torch.Tensor, real: torch.Tensor | None, path, title: str = "") -> None:
    """2-D samples (blue) over real data (grey)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 5))
    if real is not None:
        ax.scatter(real[:, 0], real[:, 1], s=2, c="0.7", label="real")
    ax.scatter(fake[:, 0].cpu(), fake[:, 1].cpu(), s=2, c="tab:blue", label="generated")
    ax.set_aspect("equal")
    ax.set_title(title)
    ax.legend(loc="upper right", markerscale=4)
    atomic_write_bytes(Path(path), _png_bytes(fig))


def loss_plot(metrics_file, path) -> bool:
    """Plot every logged loss in ``metrics.jsonl`` against the step; False if nothing to plot."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [json.loads(line) for line in Path(metrics_file).read_text().splitlines() if line.strip()]
    keys = [k for k in (rows[0] if rows else {}) if k.endswith("loss")]
    if not keys:
        return False
    fig, ax = plt.subplots(figsize=(7, 4))
    steps = [r["step"] for r in rows]
    for k in keys:
        ax.plot(steps, [r.get(k) for r in rows], label=k)
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.legend()
    ax.grid(alpha=0.3)
    atomic_write_bytes(Path(path), _png_bytes(fig))
    return True
