"""The errors Coupler raises for bad input.

Every error a user can cause by a config, a file or a command line is a ``CouplerError``: the CLI prints its
message alone, with no traceback, and exits non-zero. A message names the problem and the fix.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class CouplerError(Exception):
    """A problem with the user's input that Coupler can explain; printed without a traceback."""

    #: the CLI's exit status for it: 2, bad input (a subclass for a fault that is not the input's says 1)
    exit_status = 2


class ConfigError(CouplerError):
    """A config key holds a value that is not allowed."""

    def __init__(self, key: str, value: object, allowed: str):
        super().__init__(f"{key}={shown(value)} is not allowed: {allowed}")
        self.key, self.value, self.allowed = key, value, allowed


class DataError(CouplerError):
    """The data cannot be used as asked: a missing file or column, no rows, a class too small to split."""


class PluginError(CouplerError):
    """A plugin could not be loaded or registered."""


class RunPruned(CouplerError):
    """A search stopped the run early: its trial was pruned (``coupler-optuna``). Not a failure of the run: the
    job ends without a traceback, and its half-written directory goes as an interrupted run's does."""

    exit_status = 0


def plain(value):
    """A NumPy scalar as the Python value it holds, in lists and mappings too: labels are saved to JSON and
    compared with ==, and messages show ``0``, not ``np.int64(0)``."""
    if isinstance(value, dict):
        return {plain(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value.item() if hasattr(value, "item") and not isinstance(value, (str, bytes)) else value


def shown(value) -> str:
    """A value as the user wrote it, for a message: ``0`` (not ``np.int64(0)``), ``2.5``, ``inf``, ``'yes'``,
    ``null``, ``true``; a list or a mapping as Python writes it (``['a', 'b']``, ``{'a': 1}``)."""
    value = plain(value)
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    return repr(value)


def closest(name: str, candidates: Iterable[str]) -> str | None:
    """The candidate most like ``name``, or None when nothing is close."""
    matches = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.5)
    return matches[0] if matches else None


def did_you_mean(name: str, candidates: Iterable[str]) -> str:
    """`` Did you mean 'x'?`` when a candidate is close to ``name``, else an empty string."""
    match = closest(name, candidates)
    return f" Did you mean {match!r}?" if match else ""


def describe_os_error(exc: OSError) -> str:
    """One line for a fault of the machine (a full disk, a read-only or vanished directory): what failed, on
    which path, and what to do."""
    import errno

    path = f": {exc.filename}" if exc.filename else ""
    reason = exc.strerror or type(exc).__name__
    fixes = {
        errno.ENOSPC: "free some space, or write somewhere else",
        errno.EDQUOT: "free some space within your quota, or write somewhere else",
        errno.EROFS: "the file system is read-only: write somewhere else",
        errno.EACCES: "you may not write there: choose a directory of your own",
        errno.EPERM: "you may not write there: choose a directory of your own",
        errno.ENOENT: "the directory vanished or never existed: create it, or choose another",
        errno.ENOTDIR: "a file stands where a directory is needed: choose another path",
        errno.EIO: "the disk reported an error: check it, or write somewhere else",
    }
    fix = fixes.get(exc.errno, "check the path and the disk, then try again")
    return f"{reason}{path}; {fix}."
