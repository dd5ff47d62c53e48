"""Discovery as a user lives it: ``pip install`` a plugin distribution, and its model appears and trains;
a broken one is reported as failed while everything else runs.

The plugins are installed with pip into a target directory put on PYTHONPATH, so that the test's installs
never leak into the environment the other tests run in."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from coupler.testing import read_metrics
from tests.conftest import coupler_process

pytest_plugins = ["pytester"]  # the plugin's own tests run in this process

PLUGINS = Path(__file__).parent / "plugins"


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    target = tmp_path_factory.mktemp("site")
    for name in ("coupler-nearest-centroid", "coupler-broken"):
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                        "--disable-pip-version-check", "--target", str(target), str(PLUGINS / name)],
                       check=True, capture_output=True, cwd=tmp_path_factory.getbasetemp())
    return target


def test_an_installed_plugin_appears_in_coupler_plugins_and_a_broken_one_is_reported(site, tmp_path):
    result = coupler_process("plugins", "--json", cwd=tmp_path, env={"PYTHONPATH": str(site)})
    plugins = {p["name"]: p for p in json.loads(result.out)}
    assert plugins["nearest_centroid"] == {
        "name": "nearest_centroid", "distribution": "coupler-nearest-centroid", "version": "0.2.0",
        "builtin": False, "status": "ok", "error": None, "components": {"model": ["nearest_centroid"]},
        "declares": [], "configs": {"model": ["nearest_centroid"]},
    }
    broken = plugins["broken"]
    assert broken["status"] == "failed" and broken["distribution"] == "coupler-broken"
    assert "coupler_dependency_that_does_not_exist" in broken["error"]
    assert plugins["sklearn"]["status"] == "ok"
    assert "plugin 'broken' (coupler-broken 0.0.1) failed to load and is skipped" in result.err
    table = coupler_process("plugins", cwd=tmp_path, env={"PYTHONPATH": str(site)}).out
    assert "failed: ModuleNotFoundError" in table


def test_the_installed_model_trains_evaluates_and_predicts_while_the_broken_plugin_is_skipped(site, tmp_path):
    env = {"PYTHONPATH": str(site)}
    result = coupler_process("train", "data=wine", "model=nearest_centroid", "model.metric=manhattan",
                             "hydra.run.dir=run", cwd=tmp_path, env=env)
    assert result.rc == 0, result.err
    metrics = read_metrics(tmp_path / "run")
    assert metrics["test"]["accuracy"] > 0.85
    assert "roc_auc" not in metrics["test"], "a model without probabilities gets no probability metrics"
    evaluated = coupler_process("evaluate", "run", "--json", cwd=tmp_path, env=env)
    assert json.loads(evaluated.out) == metrics


def test_strict_mode_fails_on_the_broken_plugin(site, tmp_path):
    result = coupler_process("plugins", cwd=tmp_path, env={"PYTHONPATH": str(site), "COUPLER_STRICT_PLUGINS": "1"})
    assert result.rc == 2 and "COUPLER_STRICT_PLUGINS is set" in result.err and "Traceback" not in result.err


def test_the_third_party_plugins_own_tests_run_the_conformance_kit_green(site, tmp_path, run_tests_here):
    # a copy, as a plugin author runs them: outside this repository's pytest configuration
    tests = shutil.copytree(PLUGINS / "coupler-nearest-centroid" / "tests", tmp_path / "tests")
    result = run_tests_here(site, str(tests))
    assert result.ret == 0, "\n".join(result.outlines)[-6000:] + "\n".join(result.errlines)[-2000:]
    result.assert_outcomes(passed=1)


def test_a_plugin_outside_coupler_plugins_only_is_listed_as_blocked_and_never_imported(site, tmp_path):
    env = {"PYTHONPATH": str(site), "COUPLER_PLUGINS_ONLY": "sklearn"}
    listed = {p["name"]: p for p in json.loads(coupler_process("plugins", "--json", cwd=tmp_path, env=env).out)}
    assert listed["nearest_centroid"]["status"] == "blocked" and listed["broken"]["status"] == "blocked"
    assert listed["sklearn"]["status"] == "ok" and listed["datasets"]["status"] == "ok", "built-ins always load"
    probe = ("import sys; from coupler.plugin_manager import get_plugin_manager; get_plugin_manager(); "
             "print(sorted(m for m in sys.modules if m.startswith(('coupler_nearest', 'coupler_broken'))))")
    proc = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, env={**os.environ, **env}, capture_output=True,
                          text=True, timeout=120)
    assert proc.stdout.strip() == "[]", proc.stdout + proc.stderr
    refused = coupler_process("train", "model=nearest_centroid", "hydra.run.dir=run", cwd=tmp_path, env=env)
    assert refused.rc == 2
    blocked = re.search(r"Plugins not allowed by COUPLER_PLUGINS_ONLY, whose components are not listed: ([^.]*)\.",
                        refused.err)
    assert blocked and {"broken", "cnn", "nearest_centroid"} <= set(blocked.group(1).split(", ")), refused.err
