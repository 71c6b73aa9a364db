"""Watching a run while it trains, besides metrics.jsonl: plain progress lines for logs that are
not a terminal, and TensorBoard event files (``--tensorboard``)."""
from __future__ import annotations

import sys
import time
from pathlib import Path

from ..errors import ConfigError


def _clock(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"


class PlainProgress:
    """One line every ``every`` steps instead of tqdm's bar, whose carriage-return redraws fill a
    redirected log (nohup, a batch job, CI) with thousands of partial lines."""

    def __init__(self, name: str, total: int, start_step: int, every: int, stream=None):
        self.name, self.total, self.every = name, total, every
        self.stream = stream or sys.stderr
        self.start_step, self.t0 = start_step, time.time()

    def update(self, step: int, last: dict) -> None:
        if step % self.every and step != self.total:
            return
        elapsed = time.time() - self.t0
        rate = (step - self.start_step) / max(elapsed, 1e-9)  # this session's pace: resumes start afresh
        losses = " ".join(f"{k} {v:.4g}" for k, v in last.items() if k.endswith("loss") and v is not None)
        speed = f" | {last['img_per_s']:,.0f} img/s" if "img_per_s" in last else ""
        print(f"{self.name} step {step}/{self.total} ({100 * step / self.total:.0f}%) | {losses}{speed} | "
              f"elapsed {_clock(elapsed)}, left {_clock((self.total - step) / max(rate, 1e-9))}",
              file=self.stream, flush=True)


def check_tensorboard() -> None:
    """Fail before training starts (and before anything is written) when the package is missing."""
    try:
        import torch.utils.tensorboard  # noqa: F401 - needs the `tensorboard` package
    except ImportError:
        raise ConfigError("--tensorboard needs the tensorboard package: pip install 'ganforge[tensorboard]' "
                          "(or pip install tensorboard)") from None


# metrics.jsonl keys that are not curves: the step itself, the clock, and evaluation settings
_NOT_SCALARS = {"step", "time", "eval_kid_subset", "eval_prdc_n", "eval_n_classes"}


class TensorboardLog:
    """Scalars and sample grids as TensorBoard event files under RUN/tensorboard/."""

    def __init__(self, out: Path, step: int):
        check_tensorboard()
        from torch.utils.tensorboard import SummaryWriter

        # On resume, events past the checkpoint's step belong to steps that are trained again: purge
        # them, as the engine trims metrics.jsonl (the checkpoint's own step was logged, and stays).
        self.writer = SummaryWriter(str(Path(out) / "tensorboard"), purge_step=step + 1 if step else None)
        self._image_step = None

    def scalars(self, row: dict) -> None:
        for k, v in row.items():
            if k in _NOT_SCALARS or isinstance(v, bool) or not isinstance(v, (int, float)):
                continue
            group = "loss" if k.endswith("loss") else "eval" if k.startswith("eval_") else "train"
            self.writer.add_scalar(f"{group}/{k.removeprefix('eval_')}", v, row["step"])

    def image(self, path: Path, step: int) -> None:
        # The PNG the run wrote, so TensorBoard shows exactly that grid (or 2-D scatter plot).
        import numpy as np
        from PIL import Image

        if step == self._image_step:  # the final grid is written again at the end of a run
            return
        self._image_step = step
        arr = np.asarray(Image.open(path).convert("RGB"))
        self.writer.add_image("samples", arr, step, dataformats="HWC")

    def flush(self) -> None:
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()
