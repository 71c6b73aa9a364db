"""Atomic, safely loadable checkpoints.

A checkpoint is written to a temporary file in the same directory, flushed to disk, then renamed
over the old one, so ``last.pt`` is always a whole checkpoint even if the process dies mid-write.
Checkpoints hold only tensors and plain Python values, so they load with ``weights_only=True``:
opening one can never run code.
"""
from __future__ import annotations

import pickle
import warnings
from pathlib import Path

import torch

from ..errors import RunDirError
from ..files import atomic_write_bytes

# The layout of a checkpoint (its "version" key). Raise it when a change would make older code
# misread a newer file; checkpoints written before the key existed are format 1.
FORMAT = 1
KEYS = ("step", "spec", "model", "optimizers", "loader", "rng")


def load_checkpoint(path: Path, map_location="cpu") -> dict:
    path = Path(path)
    if not path.is_file():
        raise RunDirError(f"no checkpoint at {path}")
    try:
        with warnings.catch_warnings():  # torch warns (on stderr) about odd pickle protocols before refusing
            warnings.simplefilter("ignore")
            state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unpickling failure means a corrupt, foreign or hostile file
        # weights_only refuses any global outside tensors and plain values before building anything
        lines = [line.strip() for line in str(e).splitlines() if line.strip()]
        code = next((line for line in lines if "GLOBAL" in line), None)
        if code:
            raise RunDirError(f"refused to load checkpoint {path}: it holds code or objects a checkpoint never "
                              f"holds, so loading it could run code ({code[:160]}); nothing in it was run") from None
        why = next((line for line in lines if line.startswith("Unsupported")), lines[0] if lines else "")
        raise RunDirError(f"cannot load checkpoint {path}: it is corrupt or not a checkpoint "
                          f"({type(e).__name__}: {why[:200]}); nothing in it was run") from None
    if not isinstance(state, dict):
        raise RunDirError(f"{path} is not a ganforge checkpoint (it holds a {type(state).__name__})")
    version = state.get("version", 1)
    if not isinstance(version, int) or version > FORMAT:
        raise RunDirError(f"checkpoint {path} is format {version!r}, newer than this ganforge reads ({FORMAT}); "
                          f"upgrade ganforge to use it")
    missing = [k for k in KEYS if k not in state]
    if missing:
        raise RunDirError(f"{path} is not a ganforge checkpoint of format {version}: it lacks "
                          f"{', '.join(missing)}")
    return state


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
