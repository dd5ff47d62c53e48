"""The bad-input corpus, point 6: plugins cannot hurt the host or each other.

Every case goes through the real CLI and is asserted with ``tests.corpus``: the command still works when
the fault is another plugin's (a warning names it), or it fails with one ``coupler: error:`` line naming the
plugin, its distribution and the fix; no traceback on the terminal; files that existed before, unchanged.

Two families:

- **Installed distributions** (``tests/plugins/coupler-a-forest``, ``-exits``, ``-hangs``, ``-hydra-marker``),
  each pip-installed into its own target directory put first on PYTHONPATH, run through ``coupler_process``
  (what happens while plugins load needs a fresh interpreter).
- **Plugin code that raises during a run** (a lifecycle hook, a callback, a model's ``fit`` / ``predict``):
  the in-process CLI (``coupler_cli``) with a plugin manager that holds the installed plugins plus the
  ``fragile`` plugin below (distribution ``coupler-fragile 0.0.1``).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

from coupler import hookimpl, plugin_manager
from coupler.components import Model
from coupler.errors import CouplerError
from tests.conftest import coupler_process
from tests.corpus import TRACEBACK_MARKS, refused, untouched

PLUGINS = Path(__file__).parent / "plugins"


# --- installed distributions --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sites(tmp_path_factory):
    """``sites[NAME]``: the test distribution NAME pip-installed into a target directory of its own (one per
    distribution, so that a case sees only the plugin it is about), installed the first time it is asked for."""
    installed: dict[str, Path] = {}

    class Sites:
        def __getitem__(self, name: str) -> Path:
            if name not in installed:
                target = tmp_path_factory.mktemp(name)
                subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                                "--disable-pip-version-check", "--target", str(target), str(PLUGINS / name)],
                               check=True, capture_output=True, cwd=tmp_path_factory.getbasetemp())
                installed[name] = target
            return installed[name]

    return Sites()


def with_site(site: Path, **variables: str) -> dict[str, str]:
    """The environment of a command that sees ``site`` first, then this checkout's own sources."""
    return {"PYTHONPATH": os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")])), **variables}


def listed(result) -> dict[str, dict]:
    assert result.rc == 0, result.err
    return {p["name"]: p for p in json.loads(result.out)}


def no_traceback(result) -> None:
    for stream in (result.err, result.out):
        assert not any(mark in stream for mark in TRACEBACK_MARKS), f"a traceback on the terminal:\n{stream}"


def test_clash_a_third_party_random_forest_fails_itself_not_coupler_sklearn(sites, tmp_path):
    # coupler-a-forest comes first on sys.path (entry points are found in its order) and sorts before
    # coupler-sklearn by name: neither order lets it take coupler-sklearn's random_forest
    env = with_site(sites["coupler-a-forest"])
    plugins = listed(coupler_process("plugins", "--json", cwd=tmp_path, env=env))
    assert plugins["sklearn"]["status"] == "ok" and "random_forest" in plugins["sklearn"]["components"]["model"]
    forest = plugins["forest"]
    assert forest["status"] == "failed" and forest["components"] == {}, "all it registered is rolled back"
    for fragment in ("model 'random_forest'", "'sklearn' (coupler-sklearn 0.1.0)", "'forest' (coupler-a-forest 0.0.1)",
                     "COUPLER_DISABLE_PLUGINS=forest"):
        assert fragment in forest["error"]
    with untouched(tmp_path):
        result = coupler_process("train", "model=random_forest", "model.params.n_estimators=5", "hydra.run.dir=run",
                                 cwd=tmp_path, env=env)
    assert result.rc == 0, result.err
    no_traceback(result)
    assert "plugin 'forest' (coupler-a-forest 0.0.1) failed to load" in result.err
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["components"]["model"]["distribution"] == "coupler-sklearn"


def test_clash_under_strict_plugins_is_one_line_naming_both(sites, tmp_path):
    env = with_site(sites["coupler-a-forest"], COUPLER_STRICT_PLUGINS="1")
    with untouched(tmp_path):
        result = coupler_process("plugins", cwd=tmp_path, env=env)
    refused(result, "plugin 'forest' (coupler-a-forest 0.0.1)", "'sklearn' (coupler-sklearn 0.1.0)",
            "COUPLER_DISABLE_PLUGINS=forest", "COUPLER_STRICT_PLUGINS is set")


def test_sys_exit_at_import_is_a_failed_plugin_and_the_command_still_runs(sites, tmp_path):
    (tmp_path / "notes.txt").write_text("kept")
    with untouched(tmp_path):  # composing the job's config runs all of train's start-up, in a fraction of a run
        result = coupler_process("train", "--cfg", "job", cwd=tmp_path, env=with_site(sites["coupler-exits"]))
    assert result.rc == 0, f"exit code {result.rc}\n{result.err}"
    no_traceback(result)
    assert "plugin 'exits' (coupler-exits 0.0.1) failed to load and is skipped: it called sys.exit(3) while loading" \
        in result.err
    assert "model:\n  name: logistic_regression" in result.out


def test_sys_exit_at_import_under_strict_plugins_is_one_line(sites, tmp_path):
    env = with_site(sites["coupler-exits"], COUPLER_STRICT_PLUGINS="1")
    with untouched(tmp_path):
        result = coupler_process("plugins", cwd=tmp_path, env=env)
    refused(result, "plugin 'exits' (coupler-exits 0.0.1)", "sys.exit(3)", "COUPLER_STRICT_PLUGINS is set")


def test_a_hanging_import_is_named_after_a_bounded_wait(sites, tmp_path):
    env = with_site(sites["coupler-hangs"], COUPLER_PLUGIN_IMPORT_TIMEOUT="2")
    started = time.monotonic()
    with untouched(tmp_path):
        result = coupler_process("plugins", "--json", cwd=tmp_path, env=env, timeout=90)
    assert time.monotonic() - started < 60, "the command waited far past the plugin's timeout"
    hangs = listed(result)["hangs"]
    assert hangs["status"] == "failed"
    for fragment in ("did not finish within 2 s", "COUPLER_PLUGIN_IMPORT_TIMEOUT", "COUPLER_DISABLE_PLUGINS=hangs"):
        assert fragment in hangs["error"]
    assert "plugin 'hangs' (coupler-hangs 0.0.1) failed to load" in result.err
    no_traceback(result)


@pytest.mark.parametrize("variables, imported", [
    ({}, True),  # the control: the marker shows the Hydra plugin module ran
    ({"COUPLER_DISABLE_PLUGINS": "hydra_marker"}, False),
    ({"COUPLER_PLUGINS_ONLY": "sklearn"}, False),
], ids=["enabled-control", "disabled", "not-allowed"])
def test_a_disabled_or_not_allowed_distributions_hydra_plugin_is_not_imported(sites, tmp_path, variables, imported):
    marker = tmp_path / "marker"
    env = with_site(sites["coupler-hydra-marker"], COUPLER_TEST_HYDRA_MARKER=str(marker), **variables)
    (tmp_path / "notes.txt").write_text("kept")
    with untouched(tmp_path / "notes.txt"):
        result = coupler_process("train", "--cfg", "job", cwd=tmp_path, env=env)
    assert result.rc == 0, result.err
    no_traceback(result)
    assert marker.exists() == imported, f"hydra_plugins/coupler_hydra_marker imported: {marker.exists()}"


# --- plugin code that raises during a run ------------------------------------------------------------------


class Fragile(Model):
    """A majority-class model that raises where ``fail_in`` says (``fit`` or ``predict``), and reports
    ``epochs`` epochs so that epoch observers run."""

    def __init__(self, task, seed, fail_in="", epochs=0, coupler_error=False):
        self.fail_in, self.epochs, self.coupler_error, self.majority = fail_in, epochs, coupler_error, 0

    def _maybe_fail(self, step):
        if self.fail_in == step:
            if self.coupler_error:
                raise CouplerError(f"the fragile model refuses to {step}: set model.fail_in=none")
            raise ValueError(f"the fragile model broke in {step}")

    def fit(self, train, val, run):
        for epoch in range(self.epochs):
            run.epoch_end(epoch, {"val_loss": 1.0 / (epoch + 1)})
        self._maybe_fail("fit")
        self.majority = int(np.bincount(np.asarray(train.y, dtype=int)).argmax())

    def predict(self, X):
        self._maybe_fail("predict")
        return np.full(len(X), self.majority)

    def save(self, directory):
        (Path(directory) / "majority.json").write_text(json.dumps(self.majority))

    def load(self, directory):
        self.majority = json.loads((Path(directory) / "majority.json").read_text())


class Grumpy:
    """A callback whose epoch observer raises."""

    @hookimpl
    def on_epoch_end(self, run, epoch, metrics):
        raise RuntimeError(f"grumpy at epoch {epoch}")


class FragilePlugin:
    """The plugin ``fragile``: the model and the callback above, and lifecycle hooks that raise when
    ``failing`` names them."""

    failing: str | None = None

    @hookimpl
    def register_models(self, register):
        register("fragile", Fragile)

    @hookimpl
    def register_callbacks(self, register):
        register("grumpy", Grumpy)

    def _maybe_fail(self, hook):
        if self.failing == hook:
            raise KeyError(f"{hook} lost its key")

    @hookimpl
    def on_run_start(self, run):
        self._maybe_fail("on_run_start")

    @hookimpl
    def on_fit_start(self, run, model):
        self._maybe_fail("on_fit_start")

    @hookimpl
    def on_epoch_end(self, run, epoch, metrics):
        self._maybe_fail("on_epoch_end")

    @hookimpl
    def on_fit_end(self, run, model):
        self._maybe_fail("on_fit_end")

    @hookimpl
    def on_evaluate_end(self, run, split, metrics):
        self._maybe_fail("on_evaluate_end")

    @hookimpl
    def on_export(self, run, exporter, paths):
        self._maybe_fail("on_export")

    @hookimpl
    def on_run_end(self, run, metrics):
        self._maybe_fail("on_run_end")


FRAGILE = FragilePlugin()
ORIGIN = "(plugin fragile, coupler-fragile 0.0.1)"


@pytest.fixture(scope="module")
def fragile_manager():
    manager = plugin_manager.PluginManager()
    manager.load_builtins()
    manager.load_entry_points()
    assert manager.load_object("fragile", FRAGILE, "coupler-fragile", "0.0.1").status == "ok"
    return manager


@pytest.fixture
def cli(coupler_cli, monkeypatch, fragile_manager, tmp_path):
    """``coupler_cli`` whose commands see the installed plugins and ``fragile``."""
    monkeypatch.setattr(plugin_manager, "get_plugin_manager", lambda: fragile_manager)
    monkeypatch.setattr(FRAGILE, "failing", None)
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))  # traceback files written outside a run
    return coupler_cli


def traceback_file(line: str) -> Path:
    """The file an error line says holds the traceback."""
    found = re.search(r"the traceback is in (\S+)$", line)
    assert found, f"the error line names no traceback file: {line!r}"
    return Path(found.group(1))


def assert_log_kept(tmp_path: Path, line: str, *fragments: str) -> None:
    """The failed run's directory keeps only its log, and the log holds the traceback the line points at."""
    log = tmp_path / "run" / "train.log"
    assert traceback_file(line) == log.resolve()
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["train.log"]
    text = log.read_text()
    assert "Traceback (most recent call last)" in text
    for fragment in fragments:
        assert fragment in text


@pytest.mark.parametrize("step", ["fit", "predict"])
def test_a_model_raising_in_training_names_model_plugin_and_step(cli, tmp_path, step):
    (tmp_path / "notes.txt").write_text("kept")
    with untouched(tmp_path / "notes.txt"):
        result = cli("train", "model=fragile", f"model.fail_in={step}", "hydra.run.dir=run")
    line = refused(result, f"model 'fragile' {ORIGIN} failed in {step}: ValueError: the fragile model broke in {step}",
                   rc=1)
    assert_log_kept(tmp_path, line, f"ValueError: the fragile model broke in {step}")


@pytest.mark.parametrize("hook", ["on_run_start", "on_fit_start", "on_epoch_end", "on_fit_end", "on_evaluate_end",
                                  "on_export", "on_run_end"])
def test_a_plugins_lifecycle_hook_raising_names_the_plugin_and_the_hook(cli, tmp_path, monkeypatch, hook):
    monkeypatch.setattr(FRAGILE, "failing", hook)
    result = cli("train", "model=fragile", "model.epochs=1", "exporters=[model_card]", "hydra.run.dir=run")
    line = refused(result, f"plugin 'fragile' (coupler-fragile 0.0.1) failed in {hook}: KeyError:",
                   f"{hook} lost its key", rc=1)
    assert_log_kept(tmp_path, line, "KeyError")


def test_a_callback_raising_names_the_callback_and_its_plugin(cli, tmp_path):
    result = cli("train", "model=fragile", "model.epochs=2", "callbacks=[grumpy]", "hydra.run.dir=run")
    line = refused(result, f"callback 'grumpy' {ORIGIN} failed in on_epoch_end: RuntimeError: grumpy at epoch 0", rc=1)
    assert_log_kept(tmp_path, line, "RuntimeError: grumpy at epoch 0")


def test_a_coupler_error_from_plugin_code_passes_through_untouched(cli, tmp_path):
    result = cli("train", "model=fragile", "model.fail_in=fit", "model.coupler_error=true", "hydra.run.dir=run")
    line = refused(result)
    assert line == "coupler: error: the fragile model refuses to fit: set model.fail_in=none"
    assert not (tmp_path / "run").exists()


@pytest.fixture
def fragile_run(cli, tmp_path) -> Path:
    result = cli("train", "model=fragile", "hydra.run.dir=trained")
    assert result.rc == 0, result.err
    return tmp_path / "trained"


@pytest.mark.parametrize("command", ["evaluate", "predict"])
def test_a_model_raising_in_predict_on_a_finished_run_names_model_plugin_and_step(cli, fragile_run, tmp_path,
                                                                                 monkeypatch, command):
    monkeypatch.setattr(Fragile, "load", lambda self, directory: setattr(self, "fail_in", "predict"))
    rows = tmp_path / "rows.csv"
    rows.write_text("sepal length (cm),sepal width (cm),petal length (cm),petal width (cm)\n5.1,3.5,1.4,0.2\n")
    arguments = [str(fragile_run)] + ([str(rows), str(tmp_path / "out.csv")] if command == "predict" else [])
    with untouched(fragile_run, rows):
        result = cli(command, *arguments)
    line = refused(result, f"model 'fragile' {ORIGIN} failed in predict: ValueError: the fragile model broke in predict",
                   rc=1)
    log = traceback_file(line)
    assert "Traceback (most recent call last)" in log.read_text() and log.parent == tmp_path / "tmp"
    assert not (tmp_path / "out.csv").exists()
