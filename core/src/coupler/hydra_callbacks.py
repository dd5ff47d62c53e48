"""Coupler's Hydra callbacks (Hydra's public ``hydra.experimental.callback.Callback``), named in the primary
config's ``hydra.callbacks``.

``RunDirectoryCheck`` refuses, in one line, a run or sweep directory that cannot be created (a file on its
path, a read-only parent) before Hydra tries to create it: Hydra would report the ``OSError`` with a
traceback.

``SweepOutcomes`` checks a sweeper's search space (``hydra.sweeper.params``) before the first job, and collects
the jobs' outcomes into the sweep's summary after the last (``sweep_summary``: jobs grouped by their overrides other
than ``seed``, ranked by validation, with the direction each metric's ``greater_is_better`` gives). A launcher may
run the jobs in other processes (joblib) or on other machines (submitit), so each job writes its outcome to a file
(``record_outcome``), and the callback, in the process that started the sweep, reads them.
"""

from __future__ import annotations

import json
import os
import shutil
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


#: where each job of a sweep records its outcome, inside the sweep directory, until the summary is written
OUTCOMES = ".outcomes"


class SweepOutcomes(Callback):
    #: the sweep directory, its jobs' outcomes (``sweep_summary.JobOutcome``) and their ``sweep_summary.Summary``,
    #: set in the starting process
    directory: Path | None = None
    outcomes: list = []
    summary = None

    def on_multirun_start(self, config, **kwargs) -> None:
        from omegaconf import OmegaConf

        from coupler.config import check_overrides
        from coupler.errors import CouplerError
        from coupler.plugin_manager import get_plugin_manager

        type(self).directory, type(self).outcomes = Path(str(config.hydra.sweep.dir)).absolute(), []
        type(self).summary = None
        params = OmegaConf.select(config, "hydra.sweeper.params")
        if not params:
            return
        space = [f"{key}={value}" for key, value in OmegaConf.to_container(params).items()]
        try:  # every job the search may run: its components exist, its keys are listed
            check_overrides([*config.hydra.overrides.task, *space], get_plugin_manager(),
                            own_primary=config.hydra.job.config_name == "coupler")
        except CouplerError as exc:
            print(f"coupler: error: hydra.sweeper.params: {exc}", file=sys.stderr)
            raise SystemExit(exc.exit_status) from None

    def on_multirun_end(self, config, **kwargs) -> None:
        from coupler.plugin_manager import get_plugin_manager
        from coupler.sweep_summary import JobOutcome, metric_direction, summarize, write_summary

        directory = type(self).directory
        if directory is None or not (directory / OUTCOMES).is_dir():
            return
        outcomes = []
        for path in sorted((directory / OUTCOMES).glob("*.json")):
            record = json.loads(path.read_text())
            outcomes.append(JobOutcome(record["number"], Path(record["directory"]), directory, record["overrides"],
                                       record["results"], record["error"]))
        type(self).outcomes = sorted(outcomes, key=lambda outcome: outcome.number)
        if outcomes:
            type(self).summary = summarize(outcomes, metric_direction(get_plugin_manager().registry))
            write_summary(type(self).summary, directory)
        shutil.rmtree(directory / OUTCOMES, ignore_errors=True)


def record_outcome(hydra_config, run_dir: Path, results: dict | None = None, error: str | None = None) -> None:
    """Write one job's outcome for ``SweepOutcomes`` (called in the job's own process)."""
    from coupler.run_directory import atomic_write_text

    # relative to where the sweep was started: with hydra.job.chdir=true the job runs inside its own directory
    directory = Path(hydra_config.runtime.cwd, hydra_config.sweep.dir).resolve() / OUTCOMES
    directory.mkdir(parents=True, exist_ok=True)
    record = {"number": hydra_config.job.num, "directory": str(run_dir), "overrides": list(hydra_config.overrides.task),
              "results": results, "error": error}
    atomic_write_text(directory / f"{hydra_config.job.num}.json", json.dumps(record))
