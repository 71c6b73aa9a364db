"""Atomic, safely loadable checkpoints.

A checkpoint is written to a temporary file in the same directory, flushed to disk, then renamed
over the old one, so ``last.pt`` is always a whole checkpoint even if the process dies mid-write.
Checkpoints hold only tensors and plain Python values, so they load with ``weights_only=True``:
opening one can never run code.
"""
from __future__ import annotations

from pathlib import Path

import torch

from ..errors import RunDirError
from ..files import atomic_write_bytes


def load_checkpoint(path: Path, map_location="cpu") -> dict:
    path = Path(path)
    if not path.is_file():
        raise RunDirError(f"no checkpoint at {path}")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unpickling failure means a corrupt or foreign file
        raise RunDirError(f"cannot load checkpoint {path}: {type(e).__name__}: {str(e).splitlines()[0][:200]}") \
            from None


def save_generator(model, path: Path) -> None:
    """The final weights of the generator and of every network with an EMA copy (and those
    copies), as safetensors, keyed ``{name}.{key}`` and ``{name}_ema.{key}``."""
    from safetensors.torch import save

    tensors = {}
    for name in dict.fromkeys((getattr(model, "generator", "G"), *model.ema_nets)):
        for prefix in (name, f"{name}_ema"):
            net = getattr(model, prefix, None)
            if net is not None:
                for k, v in net.state_dict().items():
                    tensors[f"{prefix}.{k}"] = v.detach().cpu().contiguous()
    atomic_write_bytes(Path(path), save(tensors))
