"""What the image-restoration models (SRGAN / SRResNet, Context Encoders) share.

A restorer takes an image and produces one, like a translator, but its input is not a second
domain in the data: it is made from the real image inside the model (``degrade``: SRGAN shrinks
it 4x, the context encoder blanks its centre), so it trains on a plain image set, and its target
is the image itself. On a paired set (facades) it learns one side of the pairs, the photos by
default (``image_side``: auto | A | B; auto is facades' photos, A on disk, else B).

Each model implements ``degrade(x, generator=None, **how) -> dict`` (G's inputs and what is
needed to put the output back), ``restore_inputs(inputs, net) -> images`` (G's output made
into a whole image), ``baseline(inputs)`` (bicubic / mean fill, measured beside the model) and
``shown_input(inputs)`` (the degraded image as a picture). ``ganforge eval RUN`` measures the
three images (baseline, model, real) on the held-out split (run_eval._evaluate_restoration).
"""
from __future__ import annotations

import torch

from ..data import parse_name
from ..errors import ConfigError
from ..nn import evaluating

SIDES = ("auto", "A", "B")
N_SHOW = 8


def _grouped(data: str) -> bool:
    base = parse_name(data)[0]
    return base.startswith(("facades", "aligned:", "unaligned:")) or "-edges" in base


class Restorer:
    """Mixin for a GANModel that restores images (put it before GANModel in the bases)."""

    data_kinds = ("image", "paired", "unpaired")
    data_desc = "images (facades: its photos)"
    evaluation = "restoration"
    grid_from_held_out = True
    _show: torch.Tensor | None = None
    # Which pixels the paired metrics score: "all" (SR) or "hole" (inpainting: the rest is copied).
    scored = "all"
    baseline_name = ""  # the record's prefix for the baseline's metrics (bicubic, mean_fill)

    @classmethod
    def data_options(cls, cfg: dict) -> dict:
        side = cfg.get("image_side", "auto")
        if side not in SIDES:
            raise ConfigError(f"image_side must be one of {', '.join(SIDES)}, got {side!r}")
        if not _grouped(cfg["data"]):
            return {}
        if side == "auto":
            side = "A" if parse_name(cfg["data"])[0].startswith("facades") else "B"
        # The model reads field B; BtoA makes the pairs' A side field B.
        return {"direction": "BtoA" if side == "A" else "AtoB"}

    @staticmethod
    def real(batch: dict) -> torch.Tensor:
        """The batch's images: ``x`` of plain data, field ``B`` of grouped data (see data_options)."""
        return batch["x"] if "x" in batch else batch["B"]

    # -- what a restorer implements ---------------------------------------------------------
    def degrade(self, x: torch.Tensor, generator: torch.Generator | None = None, **how) -> dict:
        raise NotImplementedError

    def restore_inputs(self, inputs: dict, net) -> torch.Tensor:
        raise NotImplementedError

    def baseline(self, inputs: dict) -> torch.Tensor:
        raise NotImplementedError

    def shown_input(self, inputs: dict) -> torch.Tensor:
        raise NotImplementedError

    # -- restoring --------------------------------------------------------------------------
    @staticmethod
    def as_float(x: torch.Tensor) -> torch.Tensor:
        return x.float() / 127.5 - 1.0 if x.dtype == torch.uint8 else x.float()

    @torch.no_grad()
    def restore(self, inputs: dict, use_ema: bool = True, batch_size: int = 64) -> torch.Tensor:
        """G's restorations of ``degrade``'s output, in eval mode, on the CPU, in [-1, 1]."""
        net = self.generator_net(use_ema)
        n = len(next(iter(inputs.values())))
        out = []
        with evaluating(net):
            for i in range(0, n, batch_size):
                part = {k: v[i:i + batch_size].to(self.device) for k, v in inputs.items()}
                out.append(self.restore_inputs(part, net).float().cpu().clamp(-1, 1))
        return torch.cat(out)

    def sample(self, n: int = 64, seed: int | None = 0, batch_size: int = 500, use_ema: bool = True, **cond):
        raise ConfigError(f"{self.name} restores images rather than drawing them from noise: use "
                          f"`ganforge sample RUN --input IMAGE_OR_FOLDER --out DIR`")

    # -- grids ------------------------------------------------------------------------------
    def prepare(self, raw) -> None:
        self._show = raw.x[:N_SHOW].cpu()

    def prepare_grid(self, held_out) -> None:
        self._show = held_out.x[:N_SHOW].cpu()

    def sample_grid(self, n: int) -> tuple[torch.Tensor, int]:
        """Fixed images (the first held-out ones), one per row: degraded input | output | real."""
        if self._show is None:
            raise ConfigError(f"{self.name} has no fixed images for its grid (prepare() was not given the data)")
        real = self.as_float(self._show[:max(1, min(len(self._show), n // 3))])
        inputs = self.degrade(real, torch.Generator().manual_seed(0))
        shown = self.shown_input(inputs)
        return torch.stack([shown, self.restore(inputs), real], 1).flatten(0, 1), 3
