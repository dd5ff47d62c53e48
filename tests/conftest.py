"""Shared fixtures: run the ``coupler`` CLI in-process (fast) or in a fresh interpreter (for anything that
depends on what a process imports or on environment variables read at plugin loading)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from coupler.cli import main


@dataclass
class Result:
    rc: int
    out: str
    err: str

    @property
    def error_lines(self) -> list[str]:
        return [line for line in self.err.splitlines() if line.startswith("coupler: error:")]


@pytest.fixture
def cli(capsys, tmp_path, monkeypatch):
    """``cli("train", "model=knn")`` runs the CLI in-process with the working directory in ``tmp_path``."""
    monkeypatch.chdir(tmp_path)

    def run(*args: str) -> Result:
        capsys.readouterr()
        try:
            rc = main(list(args))
        except SystemExit as exc:
            rc = exc.code if isinstance(exc.code, int) else 1
        captured = capsys.readouterr()
        return Result(rc, captured.out, captured.err)

    return run


def coupler_process(*args: str, cwd: Path, env: dict | None = None, timeout: int = 180) -> Result:
    """Run ``coupler ARGS`` in a new interpreter."""
    full_env = {**os.environ, **(env or {})}
    proc = subprocess.run([sys.executable, "-m", "coupler.cli", *args], cwd=cwd, env=full_env,
                          capture_output=True, text=True, timeout=timeout)
    return Result(proc.returncode, proc.stdout, proc.stderr)


@pytest.fixture(scope="session")
def iris_run(tmp_path_factory) -> Path:
    """One finished default run (logistic regression on iris), shared by the tests that only read it."""
    cwd = tmp_path_factory.mktemp("iris_run")
    result = coupler_process("train", "hydra.run.dir=run", cwd=cwd)
    assert result.rc == 0, result.err
    return cwd / "run"


def read_metrics(run_dir: Path) -> dict:
    return json.loads((Path(run_dir) / "metrics.json").read_text())
