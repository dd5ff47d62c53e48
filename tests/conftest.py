"""Shared fixtures. ``coupler_cli`` (in-process CLI) comes from ``coupler.testing``; ``coupler_process`` runs
the CLI in a fresh interpreter, for anything that depends on what a process imports or on environment
variables read when plugins load."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from coupler.testing import CliResult


def coupler_process(*args: str, cwd: Path, env: dict | None = None, timeout: int = 180) -> CliResult:
    """Run ``coupler ARGS`` in a new interpreter."""
    full_env = {**os.environ, **(env or {})}
    proc = subprocess.run([sys.executable, "-m", "coupler.cli", *args], cwd=cwd, env=full_env,
                          capture_output=True, text=True, timeout=timeout)
    return CliResult(proc.returncode, proc.stdout, proc.stderr)


@pytest.fixture(scope="session")
def libraries_loaded():
    """The libraries every run loads, imported before any ``pytester`` exists: pytester forgets, after each test, the
    modules first imported during it, and an extension module (numpy's) loads only once per process."""
    import importlib

    for module in ("numpy", "pandas", "scipy.stats", "sklearn.base"):
        importlib.import_module(module)


@pytest.fixture
def run_tests_here(libraries_loaded, pytester, monkeypatch):
    """``run_tests_here(site, *args)``: ``pytest ARGS`` in this process (pytester's in-process run, which restores
    sys.path and sys.modules after), with the packages that pip installed into ``site`` importable and their plugins
    loaded (by their entry points on sys.path, as a new interpreter finds them): a new interpreter would import
    scikit-learn, torch and Lightning again. A module using it sets ``pytest_plugins = ["pytester"]``."""
    from coupler.plugin_manager import get_plugin_manager

    def run(site: Path, *args: str):
        monkeypatch.syspath_prepend(str(site))
        get_plugin_manager.cache_clear()  # the process's plugin manager, loaded again with the packages installed
        try:
            return pytester.runpytest_inprocess("-q", "-rA", "-p", "no:cacheprovider", "-p", "no:xdist", *args)
        finally:
            get_plugin_manager.cache_clear()

    yield run
    get_plugin_manager.cache_clear()  # the packages leave sys.path: so do their plugins


@pytest.fixture(scope="session")
def iris_run(tmp_path_factory) -> Path:
    """One finished default run (logistic regression on iris), shared by the tests that only read it: ``coupler
    train hydra.run.dir=run`` in this process (as ``coupler_cli`` runs it; no interpreter to start)."""
    from coupler import train_app

    cwd = tmp_path_factory.mktemp("iris_run")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(cwd)
        patch.setattr(sys, "argv", ["coupler-train", "hydra.run.dir=run"])
        assert train_app.run() == 0
    return cwd / "run"



# tests/plugins/* are distributions the tests install with pip; their own tests run there (test_third_party_plugins)
collect_ignore_glob = ["plugins/*"]
