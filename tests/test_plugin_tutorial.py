"""docs/plugins.md works as written: its ``file=`` blocks make two packages, which pip installs, which train,
pass their own tests and the conformance kit; its example of each kind is the scaffold's template, which it
links. The packages go into a pip ``--target`` directory on PYTHONPATH, so they never leak into the environment
of the other tests."""

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

pytest_plugins = ["pytester"]  # the tutorial's own tests run in this process

TUTORIAL = Path(__file__).parents[1] / "docs" / "plugins.md"
BLOCK = re.compile(r"^```\w+ file=(\S+)\n(.*?)^```$", re.MULTILINE | re.DOTALL)


def tutorial_files() -> dict[str, str]:
    return {path: text for path, text in BLOCK.findall(TUTORIAL.read_text())}


def test_the_tutorial_shows_both_packages_whole():
    files = tutorial_files()
    assert {p.split("/")[0] for p in files} == {"coupler-least-squares", "coupler-examples"}
    for package in ("coupler-least-squares", "coupler-examples"):
        assert f"{package}/pyproject.toml" in files


def with_site(site: Path) -> dict:
    """The environment of a process that sees the tutorial's packages (and the Coupler under test first)."""
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, (str(site), os.environ.get("PYTHONPATH"))))}


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    source = tmp_path_factory.mktemp("tutorial")
    for path, text in tutorial_files().items():
        (source / path).parent.mkdir(parents=True, exist_ok=True)
        (source / path).write_text(text)
    target = tmp_path_factory.mktemp("site")
    for package in ("coupler-least-squares", "coupler-examples"):
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                        "--disable-pip-version-check", "--target", str(target), str(source / package)],
                       check=True, capture_output=True, cwd=source)
    shutil.copytree(source / "coupler-least-squares" / "tests", target.parent / "least_squares_tests")
    return target


def test_the_tutorials_plugins_are_listed_with_their_components(site, tmp_path):
    listed = {p["name"]: p for p in json.loads(coupler_process("plugins", "--json", cwd=tmp_path,
                                                               env=with_site(site)).out)}
    assert listed["least_squares"]["status"] == "ok"
    assert listed["least_squares"]["components"] == {"model": ["least_squares"]}
    assert listed["examples"]["components"] == {"optimizer": ["sign_descent"], "scheduler": ["halving"]}


def test_the_tutorials_model_trains_in_a_fresh_interpreter(site, tmp_path):
    result = coupler_process("train", "data=diabetes", "model=least_squares", "model.alpha=0.1", "hydra.run.dir=run",
                             cwd=tmp_path, env=with_site(site))
    assert result.rc == 0, result.err
    assert read_metrics(tmp_path / "run")["test"]["rmse"] < 70


def test_the_tutorials_own_tests_pass(site, run_tests_here):
    result = run_tests_here(site, str(site.parent / "least_squares_tests"))
    assert result.ret == 0, "\n".join(result.outlines)[-6000:] + "\n".join(result.errlines)[-2000:]
    result.assert_outcomes(passed=3)


def test_the_examples_pass_the_conformance_kit(site, libraries_loaded, monkeypatch):
    from coupler.plugin_manager import get_plugin_manager
    from coupler.testing import check_plugin

    monkeypatch.syspath_prepend(str(site))
    get_plugin_manager.cache_clear()  # loaded again with the tutorial's packages installed
    try:
        passed = check_plugin("examples")
    finally:
        get_plugin_manager.cache_clear()
    assert "optimizer:sign_descent:contract" in passed or any("sign_descent" in p for p in passed), passed


@pytest.mark.parametrize(("overrides", "message"), [
    (["model=least_squares", "model.alpha=-1"], "model.alpha=-1 is not allowed: a number >= 0 (the ridge penalty"),
    (["model=mlp", "optimizer=sign_descent", "optimizer.lr=0"], "optimizer.lr=0 is not allowed: a number > 0"),
], ids=["schema", "derived from the signature"])
def test_the_tutorials_parameters_are_checked_in_one_line_before_any_data_is_read(site, tmp_path, overrides,
                                                                                   message):
    result = coupler_process("train", "data=iris", *overrides, cwd=tmp_path, env=with_site(site))
    assert result.rc == 2 and len(result.error_lines) == 1, result.err
    assert message in result.err


def test_the_example_of_each_kind_is_the_scaffolds_template_which_the_docs_link():
    from coupler.scaffold import KINDS, PACKAGE_FILES, template

    root = TUTORIAL.parents[1]
    linked = set(re.findall(r"\]\(\.\./(core/src/coupler/templates/[^)]+)\)", TUTORIAL.read_text()))
    assert linked and not [path for path in linked if not (root / path).is_file()]
    shipped = {p.relative_to(root).as_posix() for p in (root / "core/src/coupler/templates").rglob("*.tmpl")}
    kinds_with_files = {p.parent.name for p in (root / "core/src/coupler/templates").glob("*/*.py.tmpl")}
    scaffolded = {kind for kind in KINDS if kind in kinds_with_files and
                  KINDS[kind].component == template(f"{kind}/{kind}.py")}
    assert scaffolded >= {"model", "data", "callback", "metric", "exporter"}
    expected = {path for path in shipped if path.split("/")[4] in scaffolded or path.split("/")[4] == "package"}
    assert linked == expected
    assert {f"core/src/coupler/templates/{t}.tmpl" for t in PACKAGE_FILES.values()} <= linked
