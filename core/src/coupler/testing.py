"""Test helpers for Coupler and its plugins, loaded by pytest through the ``pytest11`` entry point.

Fixtures:

- ``coupler_cli``: run the ``coupler`` command in-process, in a temporary working directory::

      def test_trains(coupler_cli):
          result = coupler_cli("train", "model=mymodel", "hydra.run.dir=run")
          assert result.rc == 0, result.err

Functions:

- ``check_plugin(name, overrides=None)``: the conformance kit (``coupler.conformance``): checks every component
  the plugin registers against its kind's contract and raises ``ConformanceError`` naming each broken rule,
  the component and the fix::

      def test_my_plugin_conforms():
          check_plugin("my_plugin")

- ``plugin_checks(name, overrides=None)``: the same checks one by one, for one pytest test per rule::

      @pytest.mark.parametrize("check", plugin_checks("my_plugin"), ids=str)
      def test_conformance(check):
          check()

- ``cli_in_this_process(*args)``: ``coupler ARGS`` in this process (no capture); returns the exit status.
- ``train_run(directory, *overrides)``: compose the overrides and train in-process; returns
  ``(metrics, run_dir)``.
- ``read_metrics(run_dir, timing=False)``: a finished run's ``metrics.json``, without its ``timing`` section
  unless asked (seconds differ between two runs that are otherwise the same, e.g. a resumed and a whole one).
- ``read_history(run_dir, timing=False)``: a run's ``history.csv`` as text, without its ``seconds`` column unless
  asked (the same reason); two identical trainings give identical texts.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from coupler.conformance import ConformanceError, check_plugin, plugin_checks

__all__ = ["CliResult", "ConformanceError", "check_plugin", "cli_in_this_process", "coupler_cli", "plugin_checks",
           "read_history", "read_metrics", "train_run"]


@dataclass
class CliResult:
    rc: int
    out: str
    err: str

    @property
    def error_lines(self) -> list[str]:
        return [line for line in self.err.splitlines() if line.startswith("coupler: error:")]


@pytest.fixture
def coupler_cli(capsys, tmp_path, monkeypatch):
    """``coupler_cli("train", "model=knn")`` runs the CLI in-process with the working directory in
    ``tmp_path`` and returns a ``CliResult`` (exit code, stdout, stderr)."""
    monkeypatch.chdir(tmp_path)

    def run(*args: str) -> CliResult:
        capsys.readouterr()
        rc = cli_in_this_process(*args)
        captured = capsys.readouterr()
        return CliResult(rc, captured.out, captured.err)

    return run


def cli_in_this_process(*args: str) -> int:
    """``coupler ARGS`` in this process, as ``coupler_cli`` runs it, and its exit status (the output goes to this
    process's stdout and stderr). ``coupler train ARGS`` (and ``resume=RUN_DIR``, which starts the program again with
    the run's own overrides) replaces its process with ``coupler-train ARGS``; here that program runs in this
    process instead, with ``sys.argv`` as the new process would have it."""
    import logging
    import sys

    from coupler import train_app
    from coupler.cli import main

    restart, argv = train_app.restart, sys.argv
    root = logging.getLogger()
    handlers = list(root.handlers)  # ``main`` logs to this process's stderr of the moment (pytest's capture)

    def in_this_process(arguments: list[str], program=None) -> int:
        sys.argv = ["coupler-train", *arguments]
        return train_app.run()

    train_app.restart = in_this_process
    try:
        return main(list(args))
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 1
    finally:
        train_app.restart, sys.argv = restart, argv
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in handlers:
            root.addHandler(handler)


def train_run(directory: Path, *overrides: str, name: str = "run", manager=None) -> tuple[dict, Path]:
    """Train ``overrides`` in-process into ``directory / name``; return the metrics and the run directory.
    ``manager``: a ``PluginManager`` of the test's own (e.g. with a plugin object loaded); the installed
    plugins' by default."""
    from coupler.config import compose
    from coupler.plugin_manager import get_plugin_manager
    from coupler.training import train

    manager = manager or get_plugin_manager()
    run_dir = Path(directory) / name
    return train(compose(list(overrides), manager), run_dir, manager), run_dir


def read_metrics(run_dir: Path, timing: bool = False) -> dict:
    metrics = json.loads((Path(run_dir) / "metrics.json").read_text())
    if not timing:
        metrics.pop("timing", None)
    return metrics


def read_history(run_dir: Path, timing: bool = False) -> str:
    import csv
    import io

    text = (Path(run_dir) / "history.csv").read_text()
    if timing:
        return text
    rows = list(csv.reader(io.StringIO(text)))
    kept = [i for i, name in enumerate(rows[0] if rows else []) if name != "seconds"]
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows([[row[i] for i in kept] for row in rows])
    return out.getvalue()
