"""``coupler new-plugin``: a scaffolded package installs, registers its component, trains, and passes its own
tests (Coupler's conformance kit among them); a bad name, kind or target is refused in one line.

The packages are installed with pip into a target directory put on PYTHONPATH, as in
``test_third_party_plugins.py``, so that the test's installs never leak into the environment the other tests
run in."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from coupler import __version__
from coupler.testing import read_metrics
from tests.conftest import coupler_process

pytest_plugins = ["pytester"]  # the generated packages' own tests run in this process

#: kind -> the name each scaffolded plugin gets
NAMES = {"model": "demo_linear", "data": "demo_table", "callback": "demo_events", "metric": "demo_abs_error",
         "exporter": "demo_summary", "optimizer": "demo_sgd"}
GROUPS = {"model": "model", "data": "data", "callback": "callbacks", "metric": "metrics", "exporter": "exporters",
          "optimizer": "optimizer"}
# the Coupler that wrote the package, or newer: the package's tests use that Coupler's helpers
CORE = "coupler>={}.{}".format(*__version__.split(".")[:2])
DEPENDENCIES = {"model": [CORE, "numpy"], "data": [CORE, "numpy", "pandas"], "callback": [CORE],
                "metric": [CORE, "numpy"], "exporter": [CORE], "optimizer": [CORE, "torch"]}


def package_dir(root: Path, kind: str) -> Path:
    return root / f"coupler-{NAMES[kind].replace('_', '-')}"


def with_site(site: Path) -> dict:
    """The environment of a process that sees the installed packages (and the Coupler under test first)."""
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, (str(site), os.environ.get("PYTHONPATH"))))}


@pytest.fixture(scope="module")
def scaffolded(tmp_path_factory) -> Path:
    """One plugin of every kind, written by ``coupler new-plugin --directory`` into one folder."""
    root = tmp_path_factory.mktemp("scaffolded")
    for kind, name in NAMES.items():
        result = coupler_process("new-plugin", name, "--kind", kind, "--directory", str(root), cwd=root.parent)
        assert result.rc == 0, result.err
        assert f"created {package_dir(root, kind)}" in result.out
    return root


@pytest.fixture(scope="module")
def site(scaffolded, tmp_path_factory) -> Path:
    """The scaffolded packages, installed with pip (one call) into a directory of their own."""
    target = tmp_path_factory.mktemp("site")
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                    "--disable-pip-version-check", "--target", str(target),
                    *(str(package_dir(scaffolded, kind)) for kind in NAMES)],
                   check=True, capture_output=True, cwd=tmp_path_factory.getbasetemp())
    return target


def schema_fields(module: ast.Module, schema: str) -> dict[str, list[str]]:
    """``{field: the keywords of its param(...)}`` of the dataclass ``schema`` a module defines."""
    (node,) = [n for n in module.body if isinstance(n, ast.ClassDef) and n.name == schema]
    assert [d.id for d in node.decorator_list] == ["dataclass"], f"{schema} is a dataclass"
    return {f.target.id: [k.arg for k in f.value.keywords] for f in node.body if isinstance(f, ast.AnnAssign)
            and isinstance(f.value, ast.Call) and f.value.func.id == "param"}


@pytest.mark.parametrize("kind", list(NAMES))
def test_each_kind_declares_its_parameters_in_a_schema_and_its_python_compiles(scaffolded, kind):
    name = NAMES[kind]
    root = package_dir(scaffolded, kind)
    package = root / "src" / f"coupler_{name}"
    for path in ("README.md", "pyproject.toml", f"tests/test_{name}.py"):
        assert (root / path).is_file(), path
    for path in ("__init__.py", "plugin.py", f"{kind}.py"):
        assert (package / path).is_file(), path
    assert not (package / "conf").exists(), "the schema is the component's config node: no YAML file"
    for path in [*package.glob("*.py"), *root.glob("tests/*.py")]:
        compile(path.read_text(), str(path), "exec")
    schema = "".join(part.capitalize() for part in name.split("_")) + "Params"
    fields = schema_fields(ast.parse((package / f"{kind}.py").read_text()), schema)
    assert fields and all("help" in keywords for keywords in fields.values()), f"every field has help: {fields}"
    plugin = ast.parse((package / "plugin.py").read_text())
    declared = {t.id: n.value.value for n in plugin.body if isinstance(n, ast.Assign) for t in n.targets}
    from coupler.hookspecs import API_RANGE

    assert declared.get("COUPLER_API") == API_RANGE
    registered = [n for n in ast.walk(plugin) if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "register"]
    assert [k.value.id for call in registered for k in call.keywords if k.arg == "schema"] == [schema]
    tests = (root / "tests" / f"test_{name}.py").read_text()
    assert f'check_plugin("{name}")' in tests and "train_run(" in tests


@pytest.mark.parametrize("kind", list(NAMES))
def test_each_pyproject_declares_the_distribution_entry_point_and_package_data(scaffolded, kind):
    tomllib = pytest.importorskip("tomllib", reason="Python 3.11 reads TOML")
    name = NAMES[kind]
    project = tomllib.loads((package_dir(scaffolded, kind) / "pyproject.toml").read_text())
    assert project["project"]["name"] == f"coupler-{name.replace('_', '-')}"
    assert project["project"]["version"] == "0.1.0"
    assert project["project"]["dependencies"] == DEPENDENCIES[kind]
    assert project["project"]["entry-points"]["coupler"] == {name: f"coupler_{name}.plugin"}
    assert project["project"]["optional-dependencies"]["test"] == ["pytest"]
    assert "package-data" not in project["tool"]["setuptools"], "no config file to ship: the schema is the node"
    assert project["build-system"]["build-backend"] == "setuptools.build_meta"


def test_every_kind_is_listed_ok_by_coupler_plugins_which_imports_no_heavy_library(site, tmp_path):
    result = coupler_process("plugins", "--json", cwd=tmp_path, env=with_site(site))
    plugins = {p["name"]: p for p in json.loads(result.out)}
    for kind, name in NAMES.items():
        assert plugins[name] == {"name": name, "distribution": f"coupler-{name.replace('_', '-')}",
                                 "version": "0.1.0", "builtin": False, "status": "ok", "error": None,
                                 "components": {kind: [name]}, "configs": {}, "declares": []}
    code = ("import sys\nfrom coupler.cli import main\nmain(['plugins'])\n"
            "print('HEAVY', [m for m in ('numpy', 'pandas', 'torch') if m in sys.modules])")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path,
                          env=with_site(site))
    assert "HEAVY []" in proc.stdout, proc.stdout + proc.stderr


def test_the_model_plugin_trains_on_iris_in_a_fresh_interpreter(site, tmp_path):
    name = NAMES["model"]
    result = coupler_process("train", "data=iris", f"model={name}", "hydra.run.dir=run", cwd=tmp_path,
                             env=with_site(site))
    assert result.rc == 0, result.err
    metrics = read_metrics(tmp_path / "run")
    assert metrics["test"]["accuracy"] > 0.8 and metrics["val"]["accuracy"] > 0.8
    assert "roc_auc" in metrics["test"], "the model gives probabilities, so probability metrics are computed"
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["components"]["model"]["distribution"] == f"coupler-{name.replace('_', '-')}"


def test_coupler_train_help_lists_the_parameters_of_the_schemas(site, tmp_path):
    result = coupler_process("train", f"model={NAMES['model']}", f"data={NAMES['data']}",
                             f"metrics=[{NAMES['metric']}]", "--help", cwd=tmp_path, env=with_site(site))
    assert result.rc == 0, result.err
    for line in ("model.alpha = 1.0  a number >= 0: L2 penalty on the weights, not the intercepts (0: none)",
                 "data.rows = 500  a whole number >= 20: rows of the table",
                 f"metrics.{NAMES['metric']}.quantile = 0.5  a number >= 0 and <= 1: 0.5: the median absolute error"):
        assert line in result.out, result.out


def test_the_generated_packages_pass_their_own_tests(scaffolded, site, run_tests_here):
    """Each package's tests: Coupler's conformance kit (check_plugin) and its component's own behaviour. They run
    in this process (pytester's in-process run, which restores sys.path and sys.modules after): a new interpreter
    would import scikit-learn, torch and Lightning again (20 s of CPU), and the installed packages are found the
    same way, by their entry points on sys.path."""
    result = run_tests_here(site, *(str(package_dir(scaffolded, kind) / "tests") for kind in NAMES))
    output = "\n".join(result.outlines)
    assert result.ret == 0, output[-6000:] + "\n".join(result.errlines)[-2000:]
    passed = {line.split("::")[-1] for line in result.outlines if line.startswith("PASSED ")}
    assert {"test_the_plugin_passes_couplers_conformance_kit", "test_it_classifies_iris",
            "test_it_fits_a_regression"} <= passed, output[-3000:]
    conformance = [line for line in result.outlines
                   if line.startswith("PASSED ") and line.endswith("::test_the_plugin_passes_couplers_conformance_kit")]
    assert len(conformance) == len(NAMES), output[-3000:]


def test_an_existing_target_is_refused_in_one_line(coupler_cli, tmp_path):
    assert coupler_cli("new-plugin", "my_model").rc == 0
    readme = (tmp_path / "coupler-my-model" / "README.md").read_text()
    result = coupler_cli("new-plugin", "my_model", "--kind", "data")
    assert result.rc == 2 and result.err.splitlines() == result.error_lines
    assert result.error_lines == ["coupler: error: coupler-my-model already exists; remove it, or choose another "
                                  "name or --directory."]
    assert (tmp_path / "coupler-my-model" / "README.md").read_text() == readme
    assert not (tmp_path / "coupler-my-model" / "src" / "coupler_my_model" / "data.py").exists()


@pytest.mark.parametrize(("name", "allowed"), [("My-Model", "(e.g. my_model)"), ("2fast", "lower-case letter"),
                                               ("", "lower-case letter")])
def test_a_bad_name_is_refused_saying_what_is_allowed(coupler_cli, tmp_path, name, allowed):
    result = coupler_cli("new-plugin", name)
    assert result.rc == 2 and result.err.splitlines() == result.error_lines and len(result.error_lines) == 1
    assert f"plugin name {name!r} is not allowed: use a lower-case letter, then lower-case letters, digits or " \
           f"underscores" in result.err and allowed in result.err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("args", "message"), [
    (["sklearn"], "plugin name 'sklearn' is taken by the installed plugin 'sklearn' (coupler-sklearn 0.1.0); choose "
                  "another name (or pip uninstall coupler-sklearn, to write it again)."),
    (["svm"], "model 'svm' is provided by the installed plugin 'sklearn', and two plugins cannot both register "
              "model 'svm'; choose another name."),
    (["accuracy", "--kind", "metric"], "metric 'accuracy' is provided by the installed plugin 'metrics'"),
])
def test_a_name_an_installed_plugin_holds_is_refused(coupler_cli, tmp_path, args, message):
    # installed beside it, the new package would fail to load: refused before any file is written
    result = coupler_cli("new-plugin", *args)
    assert result.rc == 2 and result.err.splitlines() == result.error_lines and len(result.error_lines) == 1
    assert message in result.err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("version", "requirement"), [("0.1.0", "coupler>=0.1"), ("1.4.2", "coupler>=1.4"),
                                                     ("0.2.0.dev1", "coupler>=0.2.0.dev1")])
def test_the_package_requires_the_coupler_that_wrote_it_or_newer(version, requirement):
    from coupler.scaffold import coupler_requirement

    assert coupler_requirement(version) == requirement


def test_an_unknown_kind_is_refused_listing_the_kinds(coupler_cli, tmp_path):
    result = coupler_cli("new-plugin", "my_model", "--kind", "scheduler")
    assert result.rc == 2 and result.error_lines == [
        "coupler: error: --kind scheduler: unknown kind of plugin; kinds are model, data, callback, metric, "
        "exporter, optimizer."]
    assert result.err.splitlines() == result.error_lines and list(tmp_path.iterdir()) == []


def test_the_scaffold_imports_no_heavy_library():
    probe = ("import sys, coupler.scaffold; "
             "print(sorted(m for m in ('numpy', 'pandas', 'hydra', 'omegaconf', 'torch') if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert proc.stdout.strip() == "[]", proc.stdout + proc.stderr



def test_the_templates_are_package_data_of_the_core():
    """The scaffold reads its templates from the installed package: core/pyproject.toml ships every one."""
    tomllib = pytest.importorskip("tomllib", reason="Python 3.11 reads TOML")
    core = Path(__file__).parents[1] / "core"
    package = core / "src" / "coupler"
    globs = tomllib.loads((core / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["coupler"]
    shipped = {path for pattern in globs for path in package.glob(pattern)}
    templates = set((package / "templates").rglob("*.tmpl"))
    assert len(templates) >= 16 and templates <= shipped
    assert not [p for p in (package / "templates").rglob("*") if p.is_file() and p.suffix != ".tmpl"]
