"""One training process per run directory.

The lock is ``fcntl.flock`` on ``DIR/.ganforge.lock``: the kernel drops it when its holder exits
in any way, SIGKILL and power loss included, so it can never go stale. The file itself stays
(deleting it would let a third process lock a new file while a second still holds the old one);
it holds the holder's pid and host, for the message a second process gets.
"""
from __future__ import annotations

import contextlib
import errno
import os
import socket
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows: no flock; runs there are unguarded, as before
    fcntl = None

from ..errors import RunDirError

LOCK = ".ganforge.lock"


@contextlib.contextmanager
def run_lock(out: Path):
    """Hold the run directory ``out`` (created if missing) for the duration of the block."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise RunDirError(f"{out} exists and is not a directory")
    out.mkdir(parents=True, exist_ok=True)
    if fcntl is None:
        yield
        return
    fd = os.open(out / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").split()
            who = f" (pid {holder[0]} on {holder[1]})" if len(holder) == 2 else ""
            raise RunDirError(f"{out} is in use by another ganforge process{who}; wait for it to finish, "
                              f"or train into another --out") from None
        except OSError as e:
            if e.errno not in (errno.ENOLCK, errno.EOPNOTSUPP):
                raise
            yield  # a file system without locks (some network mounts): train unguarded, as before
            return
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()} {socket.gethostname()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock
