"""Atomic file writes: the one place that writes results a user must not lose.

Everything ganforge writes that a crash must not leave half-written (checkpoints, configs, logs,
cached statistics, pictures) goes through here: a temporary file beside the target, flushed to
disk, then renamed over it, so the target is always either the old whole file or the new one.
A leaf module (standard library and torch only), so every layer can use it without importing
the engine.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path


def _atomic(path: Path, write) -> None:
    """Call ``write(f)`` on a temporary file beside ``path``, sync it, then rename it over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes 0600 files; results are ordinary user files
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_bytes(path: Path, data: bytes) -> None:
    _atomic(path, lambda f: f.write(data))


def atomic_save(obj, path: Path) -> None:
    """``torch.save`` that never leaves a half-written file at ``path``."""
    import torch

    _atomic(path, lambda f: torch.save(obj, f))
