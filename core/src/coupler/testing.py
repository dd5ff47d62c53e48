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
- ``cli_in_a_forked_process(*args, cwd=, output=)``: ``coupler ARGS`` in a new process forked from this one, for
  tests that interrupt or kill a run; returns a ``ForkedProcess`` (``pid``, ``poll``, ``wait``, ``send_signal``).
- ``train_run(directory, *overrides)``: compose the overrides and train in-process; returns
  ``(metrics, run_dir)``.
- ``read_metrics(run_dir, timing=False)``: a finished run's ``metrics.json``, without its ``timing`` section
  unless asked (seconds differ between two runs that are otherwise the same, e.g. a resumed and a whole one).
- ``read_history(run_dir, timing=False)``: a run's ``history.csv`` as text, without its ``seconds`` column unless
  asked (the same reason); two identical trainings give identical texts.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from coupler.conformance import ConformanceError, check_plugin, plugin_checks

__all__ = ["CliResult", "ConformanceError", "ForkedProcess", "check_plugin", "cli_in_a_forked_process",
           "cli_in_this_process", "coupler_cli", "plugin_checks", "read_history", "read_metrics", "train_run"]


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
        # argv[0] as the new process would have it: a strategy that starts more processes of the program (DDP)
        # runs ``python ARGV0 ARGS``
        sys.argv = [program[-1] if program else (sys.argv[0] if sys.argv[0].endswith("coupler-train")
                                                  else "coupler-train"), *arguments]
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


class ForkedProcess:
    """A child forked by ``cli_in_a_forked_process``, with the part of ``subprocess.Popen``'s interface a test needs:
    ``returncode`` is the exit status, or minus the signal that ended it."""

    def __init__(self, pid: int):
        self.pid, self.returncode = pid, None

    def poll(self) -> int | None:
        if self.returncode is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        import subprocess
        import time

        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(f"coupler (process {self.pid})", timeout)
            time.sleep(0.02)
        return self.returncode

    def send_signal(self, signum: int) -> None:
        if self.returncode is None:
            os.kill(self.pid, signum)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


def cli_in_a_forked_process(*args: str, cwd: Path | None = None, output: Path, errors: Path | None = None,
                            env: dict | None = None, new_session: bool = False) -> ForkedProcess:
    """``coupler ARGS`` (as ``cli_in_this_process`` runs it) in a child forked from this process, writing stdout to
    the file ``output`` and stderr to ``errors`` (or to ``output`` too), in ``cwd``, with ``env`` added to its
    environment. It is a real process to interrupt (SIGINT, as a terminal's Ctrl-C: the child restores Python's
    handler, which a test session started in the background ignores) or to kill, that starts at once: it inherits
    this process's imports instead of spending seconds importing torch and Lightning again. It computes on one torch
    thread (a forked process must not use the thread pool its parent started). ``new_session``: the child leads a
    process group of its own, so that ``os.killpg(pid, SIGINT)`` reaches the processes it starts too (DDP), as a
    terminal's Ctrl-C does. What it cannot test is the start of a fresh interpreter, nor what runs at an
    interpreter's exit: the child ends with ``os._exit`` (no exit handlers, so processes it started that wait for
    them, such as joblib's workers, outlive it). A test of those runs ``coupler`` with ``subprocess``."""
    output_fd = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    errors_fd = output_fd if errors is None else os.open(errors, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    pid = os.fork()
    if pid:
        os.close(output_fd)
        if errors_fd != output_fd:
            os.close(errors_fd)
        return ForkedProcess(pid)
    status = 1
    try:  # the child: nothing of the parent's runs after this block (no atexit, no pytest teardown)
        if new_session:
            os.setsid()
        _become_a_command(cwd, output_fd, errors_fd, env)
        status = cli_in_this_process(*args)
    except BaseException:  # noqa: BLE001 -- the child reports what ended it and exits
        import traceback

        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status if isinstance(status, int) else 1)


def _become_a_command(cwd: Path | None, output_fd: int, errors_fd: int, env: dict | None) -> None:
    """In a forked child: its own stdout and stderr (at the file descriptors too, for what libraries write there),
    its working directory and environment, Ctrl-C as in a terminal, and one torch thread."""
    import io

    os.dup2(output_fd, 1)
    os.dup2(errors_fd, 2)
    sys.stdout = io.TextIOWrapper(os.fdopen(1, "wb", buffering=0, closefd=False), line_buffering=True)
    sys.stderr = io.TextIOWrapper(os.fdopen(2, "wb", buffering=0, closefd=False), line_buffering=True)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    import types

    # the child is the coupler-train program, not a copy of the test runner: a strategy that starts more processes
    # of it (DDP) runs ``python SCRIPT ARGS`` when ``__main__`` has no module spec, as for a program's script
    sys.modules["__main__"] = types.ModuleType("__main__")
    if cwd is not None:
        os.chdir(cwd)
    os.environ.update(env or {})
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(1)


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
