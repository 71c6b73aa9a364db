"""Atomic file writes: the one place that writes results a user must not lose.

Everything ganforge writes that a crash must not leave half-written (checkpoints, configs, logs,
cached statistics, pictures) goes through here: a temporary file beside the target, flushed to
disk, then renamed over it, so the target is always either the old whole file or the new one.
A leaf module (standard library and torch only), so every layer can use it without importing
the engine.
"""
from __future__ import annotations

import os
import re
import tempfile
import time
from pathlib import Path

# What _atomic's temporary files look like (mkstemp's random part is 8 characters); a process killed
# between writing and renaming leaves one behind, which remove_temps() clears away.
_TEMP = re.compile(r"\..+\.[A-Za-z0-9_]{8}\.tmp")


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
        if _DELAY:  # tests only: widen the window in which a kill finds the write done but not renamed
            time.sleep(_DELAY)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600 files; results are ordinary user files
        os.replace(tmp, path)
    except BaseException as e:
        if os.path.exists(tmp):
            os.unlink(tmp)
        # A full disk (ENOSPC, EDQUOT, EFBIG): name the file, and undo torch.save's wrapping of the
        # OSError in a RuntimeError that says only "unexpected pos".
        cause = e if isinstance(e, OSError) else e.__context__ if isinstance(e, RuntimeError) else None
        if isinstance(cause, OSError) and cause.errno and not cause.filename:
            raise OSError(cause.errno, cause.strerror, str(path)) from None
        raise


_DELAY = float(os.environ.get("GANFORGE_FAULT_WRITE_DELAY") or 0)


def remove_temps(*folders: Path) -> int:
    """Delete the temporary files that killed writers left in ``folders``; return how many.
    Only for folders no other process is writing into (a run directory under its lock)."""
    n = 0
    for folder in folders:
        for p in Path(folder).glob(".*.tmp") if Path(folder).is_dir() else ():
            if _TEMP.fullmatch(p.name) and p.is_file():
                p.unlink(missing_ok=True)
                n += 1
    return n


def atomic_write_bytes(path: Path, data: bytes) -> None:
    _atomic(path, lambda f: f.write(data))


def atomic_save(obj, path: Path) -> None:
    """``torch.save`` that never leaves a half-written file at ``path``."""
    import torch

    _atomic(path, lambda f: torch.save(obj, f))
