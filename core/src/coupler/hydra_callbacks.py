"""Coupler's Hydra callbacks (Hydra's public ``hydra.experimental.callback.Callback``), named in the primary
config's ``hydra.callbacks``.

``RunDirectoryCheck`` refuses, in one line, a run or sweep directory that cannot be created (a file on its
path, a read-only parent) before Hydra tries to create it: Hydra would report the ``OSError`` with a
traceback.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from hydra.experimental.callback import Callback

from coupler.cli import EXIT_USAGE


class RunDirectoryCheck(Callback):
    def on_run_start(self, config, **kwargs) -> None:
        _check_creatable(config.hydra.run.dir, "hydra.run.dir")

    def on_multirun_start(self, config, **kwargs) -> None:
        _check_creatable(config.hydra.sweep.dir, "hydra.sweep.dir")


def creatable_problem(directory: str) -> str | None:
    """Why ``directory`` cannot be created or written in, or None. Only looks: creates nothing."""
    path = Path(directory).absolute()
    for existing in (path, *path.parents):
        if existing.is_dir():
            break
        if existing.exists() or existing.is_symlink():
            return f"{existing} is a file, not a directory"
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"{existing} is read-only (no permission to create or write in it)"
    return None


def _check_creatable(directory: str, key: str) -> None:
    problem = creatable_problem(str(directory))
    if problem:
        print(f"coupler: error: {key}={directory}: cannot create the run directory: {problem}. Choose another "
              f"{key}=...", file=sys.stderr)
        raise SystemExit(EXIT_USAGE)  # Hydra reports any Exception with a traceback; SystemExit passes through
