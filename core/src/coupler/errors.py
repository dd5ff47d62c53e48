"""The errors Coupler raises for bad input.

Every error a user can cause by a config, a file or a command line is a ``CouplerError``: the CLI prints its
message alone, with no traceback, and exits non-zero. A message names the problem and the fix.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class CouplerError(Exception):
    """A problem with the user's input that Coupler can explain; printed without a traceback."""


class ConfigError(CouplerError):
    """A config key holds a value that is not allowed."""

    def __init__(self, key: str, value: object, allowed: str):
        shown = "null" if value is None else str(value).lower() if isinstance(value, bool) else repr(value)
        super().__init__(f"{key}={shown} is not allowed: {allowed}")
        self.key, self.value, self.allowed = key, value, allowed


class DataError(CouplerError):
    """The data cannot be used as asked: a missing file or column, no rows, a class too small to split."""


class PluginError(CouplerError):
    """A plugin could not be loaded or registered."""


def closest(name: str, candidates: Iterable[str]) -> str | None:
    """The candidate most like ``name``, or None when nothing is close."""
    matches = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.5)
    return matches[0] if matches else None


def did_you_mean(name: str, candidates: Iterable[str]) -> str:
    """`` Did you mean 'x'?`` when a candidate is close to ``name``, else an empty string."""
    match = closest(name, candidates)
    return f" Did you mean {match!r}?" if match else ""
