"""User-facing errors.

Everything a user can get wrong (a misspelt model, a missing file, a bad flag) raises a
``GanforgeError``; the CLI prints its message on one line and exits with code 2. Anything
else is a bug and keeps its traceback.
"""
from __future__ import annotations

import difflib


class GanforgeError(Exception):
    """An error caused by the user's input, reported as one line by the CLI."""


class ConfigError(GanforgeError):
    """A bad option, flag or config value."""


class DataError(GanforgeError):
    """A data set that is missing, partial in an unusable way, or corrupt."""


class RunDirError(GanforgeError):
    """A run directory that is not one, or that would be overwritten."""


class DivergedError(GanforgeError):
    """Training produced a loss or weights that are not finite (NaN or infinite)."""


def closest(name: str, choices, n: int = 3) -> str:
    """' (did you mean a, b?)' for a misspelt name, or '' when nothing is close."""
    hits = difflib.get_close_matches(name, list(choices), n=n, cutoff=0.5)
    return f" (did you mean {', '.join(hits)}?)" if hits else ""
