"""The conformance kit: checks every component a plugin registers against the contract of its kind.

Like scikit-learn's ``check_estimator``, it tells a plugin author exactly what is wrong: each failure names
the component, the rule it breaks, what happened, and the fix. Use it from a plugin's own tests::

    from coupler.testing import check_plugin

    def test_my_plugin_conforms():
        check_plugin("my_plugin")          # raises ConformanceError listing every broken rule

or one pytest test per check::

    @pytest.mark.parametrize("check", plugin_checks("my_plugin"), ids=str)
    def test_conformance(check):
        check()

What is checked, per kind (a check that cannot run, e.g. a data loader whose config needs a path, is
skipped with the reason; pass the missing values with ``overrides={"COMPONENT": ["data.path=..."]}``):

- every component: its name (lowercase letters, digits, ``_``) and description; its config composes
  (``group=NAME``) with ``name: NAME``; its factory builds from that config and returns the kind's type; each
  default of its schema (``coupler.schema``; derived from the factory's signature when it registers none) passes
  the schema's own check. A component registered with ``schema=``: its factory builds from the schema's defaults
  alone (and the values it requires), and no config file ``GROUP/NAME.yaml`` configures it too (two sources of
  one node). The kit has no warning level: a factory parameter without an annotation is not reported.
- the plugin: it loaded, it declares the plugin API range it supports (``COUPLER_API``), and each config file
  it contributes belongs to a registered component. With ``wheel=True`` (opt-in: it builds a wheel, a few
  seconds), its built wheel ships every one of those config files.
- ``model``: for each task it accepts (its factory raises ``CouplerError`` for a task it refuses), a real run
  on a generated data set of that task (14 numeric columns and one categorical, 200 rows) trains, is saved,
  reloads, and reproduces the run's metrics (within the model's ``reload_tolerance``, a class attribute:
  default ``RELOAD_TOLERANCE``, relative) and test predictions; predictions are class codes (or
  numbers), probabilities are rows summing to 1. A model that reads text (input format ``tokens`` or
  ``text``) does the same on a generated binary text set; a model that reads no table skips the tables.
- ``data``: the ``Dataset`` has rows, distinct string column names, a usable target, and loads the same
  twice.
- a kind a plugin declares (``register_kinds``): the rules it declares with it (``Kind.checks``); the torch
  engine's optimizers and schedulers are checked so, by ``coupler_torch.testing``.
- ``callback``: its hook implementations name real lifecycle hooks, each of them is called during a run with
  the kit's iterative model, the run still verifies afterwards (``on_run_end`` wrote nothing into the sealed
  run), and a ``state_dict`` holds plain containers (an engine stores it with its progress).
- ``metric``: a ``Metric`` for known tasks, whose value on known inputs is a finite number, the same twice,
  leaves its inputs alone, and scores perfect predictions at least as well as poor ones; exact expected
  values with ``metric_cases``.
- ``exporter``: in a run, ``export`` returns the files it wrote, inside the directory it was given, not
  empty, readable in their format (JSON, CSV, YAML, text), and ``load(paths)`` reads them back when the
  exporter has one.

Heavy libraries (NumPy, pandas, Hydra) are imported when a check runs, never at import time: pytest
loads ``coupler.testing`` in every session.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
import shutil
import sys
import tempfile
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from coupler.errors import CouplerError
from coupler.hookspecs import hookimpl

NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]*$")
KIT_PLUGIN = "conformance_kit"
#: the kit's generated data sets, one per task, and its own iterative model (for callbacks and exporters)
KIT_DATA = {"binary": "conformance_binary", "multiclass": "conformance_multiclass",
            "regression": "conformance_regression"}
KIT_TEXT = "conformance_text"
KIT_MODEL = "conformance_iterative"
KIT_ROWS = 200
#: the epochs of the kit's iterative model (an engine's settings groups shorten its runs: ``test_overrides``)
KIT_EPOCHS = 3
#: how far a reloaded model's metrics may differ from the run's, unless the model declares ``reload_tolerance``:
#: the last bits of a double (a sum taken in another order), relative to the metric's size
RELOAD_TOLERANCE = 1e-12
#: below this, a reload's difference is floating-point noise, not a state that save() lost
NOISE = 1e-6


@dataclass
class Failure:
    """One broken rule: which component, which rule, what happened, and how to fix it."""

    component: str
    rule: str
    problem: str
    fix: str

    def __str__(self) -> str:
        return f"{self.component} breaks the rule '{self.rule}': {self.problem}\n    fix: {self.fix}"


class ConformanceError(AssertionError):
    """A plugin's components break their contracts; ``failures`` lists each broken rule."""

    def __init__(self, failures: list[Failure]):
        self.failures = failures
        listing = "\n".join(f"{i}. {failure}" for i, failure in enumerate(failures, 1))
        super().__init__(f"{len(failures)} conformance rule(s) broken:\n{listing}")


class Skipped(Exception):
    """A check that cannot run here (the reason says what it needs)."""


class _Broken(Exception):
    def __init__(self, problem: str, fix: str):
        super().__init__(problem)
        self.problem, self.fix = problem, fix


class RuleBroken(_Broken):
    """``RuleBroken(problem, fix)``: raised by a rule a plugin declares with its kind (``Kind.checks``)."""


def _fail(problem: str, fix: str):
    raise _Broken(problem, fix)


def _where(exc: BaseException) -> str:
    """The innermost frame of a traceback outside the kit and the core: usually the plugin's own line."""
    frames = traceback.extract_tb(exc.__traceback__)
    own = Path(__file__).parent
    outside = [f for f in frames if not Path(f.filename).is_relative_to(own)]
    frame = (outside or frames or [None])[-1]
    return f" (at {frame.filename}:{frame.lineno})" if frame else ""


@contextlib.contextmanager
def _step(doing: str, fix: str) -> Iterator[None]:
    """Turn an exception raised while ``doing`` into a failure with ``fix``."""
    try:
        yield
    except (_Broken, Skipped):
        raise
    except Exception as exc:
        _fail(f"{doing} raised {type(exc).__name__}: {exc}{_where(exc)}", fix)


@dataclass
class Check:
    """One rule for one component. ``check()`` raises ``ConformanceError`` when the rule is broken, and skips
    (``pytest.skip`` under pytest) when it cannot run; ``str(check)`` is a test id."""

    plugin: str
    kind: str
    name: str
    rule: str
    body: Callable[[Path], None]

    def __str__(self) -> str:
        return f"{self.kind}:{self.name}:{self.rule.replace(' ', '_')}"

    @property
    def component(self) -> str:
        if self.kind == "plugin":
            return f"plugin {self.plugin!r}"
        return f"{self.kind} {self.name!r} (plugin {self.plugin!r})"

    def run(self) -> Failure | str | None:
        """None when the rule holds, a ``Failure`` when it is broken, the reason (a string) when skipped."""
        directory = Path(tempfile.mkdtemp(prefix="coupler-conformance-"))
        try:
            self.body(directory)
        except Skipped as exc:
            return str(exc)
        except _Broken as exc:
            return Failure(self.component, self.rule, exc.problem, exc.fix)
        except Exception as exc:  # a step without a _step: still the plugin's problem, with where it happened
            return Failure(self.component, self.rule, f"{type(exc).__name__}: {exc}{_where(exc)}",
                           "see the error; the rule's contract is in coupler.conformance")
        finally:
            shutil.rmtree(directory, ignore_errors=True)
        return None

    def __call__(self) -> None:
        outcome = self.run()
        if isinstance(outcome, Failure):
            raise ConformanceError([outcome])
        if isinstance(outcome, str) and "pytest" in sys.modules:
            import pytest

            pytest.skip(outcome)


def check_plugin(plugin: str, *, overrides: dict[str, Sequence[str]] | None = None, manager=None,
                 metric_cases: dict[str, list[dict]] | None = None, wheel: bool | str | Path = False) -> list[str]:
    """Run every check of ``plugin`` (its entry-point name); return the ids of the checks that passed or were
    skipped (skips say why), or raise ``ConformanceError`` listing every broken rule.

    ``overrides``: Hydra overrides per component name, for values its config cannot default
    (``{"image_folder": ["data.path=/tmp/images"], "cnn": ["model.width=8"]}``).
    ``manager``: a ``coupler.plugin_manager.PluginManager`` holding the plugin (default: a fresh one with the
    built-ins and every installed entry point). ``metric_cases``: exact values per metric, as dicts with
    ``y_true``, ``y_pred``, ``y_proba`` (or None), ``n_classes`` and ``expected``. ``wheel``: also build the
    plugin's wheel (``pip wheel``, a few seconds, no network) and check that it ships every config file the
    plugin registers: True for the project of the plugin's editable install (``pip install -e .`` hides a
    file that package-data leaves out), or the project's directory.
    """
    failures, done = [], []
    for check in plugin_checks(plugin, overrides=overrides, manager=manager, metric_cases=metric_cases,
                               wheel=wheel):
        outcome = check.run()
        if isinstance(outcome, Failure):
            failures.append(outcome)
        else:
            done.append(f"{check} (skipped: {outcome})" if outcome else str(check))
    if failures:
        raise ConformanceError(failures)
    return done


def plugin_checks(plugin: str, *, overrides: dict[str, Sequence[str]] | None = None, manager=None,
                  metric_cases: dict[str, list[dict]] | None = None, wheel: bool | str | Path = False) -> list[Check]:
    """The checks of ``plugin``, one ``Check`` per rule and component (see ``check_plugin``)."""
    kit = _Kit(plugin, manager, overrides or {}, metric_cases or {})
    checks = kit.checks()
    if wheel is not False and len(checks) > 1:  # the plugin loaded
        project = None if wheel is True else Path(wheel)
        checks.insert(3, Check(plugin, "plugin", plugin, "wheel ships its config files",
                               lambda directory: check_wheel(kit.manager, plugin, directory, project)))
    return checks


# --- the wheel ---------------------------------------------------------------------------------------------


def check_wheel(manager, plugin: str, directory: Path, project: Path | None = None) -> None:
    """Build ``plugin``'s wheel from ``project`` (default: its editable install's) and fail naming each config
    file the plugin registers that the wheel lacks: an editable install reads them from the source tree, so
    nothing else shows that ``package-data`` leaves them out."""
    import zipfile

    config_files = _config_files(manager, plugin)
    if not config_files:
        raise Skipped("the plugin registers no config file")
    project = project or _editable_project(manager, plugin)
    shipped = set(zipfile.ZipFile(_build_wheel(project, directory)).namelist())
    missing = [relative for relative in config_files if relative not in shipped]
    if missing:
        top = missing[0].split("/")[0]
        _fail(f"the wheel built from {project} lacks {len(missing)} config file(s) the plugin registers: "
              f"{', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}; an editable install hides this, and "
              f"a user of the published plugin gets 'unknown' choices",
              f"ship them as package data, in pyproject.toml: [tool.setuptools.package-data] "
              f"{top} = [\"conf/**/*.yaml\"]")


def _config_files(manager, plugin: str) -> list[str]:
    """The YAML files under ``plugin``'s config directories, by their path inside a wheel (from the directory
    above the plugin module's top-level package)."""
    module = manager.hooks.get_plugin(plugin)
    top = sys.modules.get(getattr(module, "__name__", "").split(".")[0])
    if top is None or not getattr(top, "__file__", None):
        raise Skipped("the plugin is no module of an installed package")
    root = Path(top.__file__).resolve().parent.parent
    files = []
    for config_dir in manager.plugins[plugin].config_dirs:
        for path in sorted(Path(config_dir).rglob("*.yaml")):
            if path.resolve().is_relative_to(root):
                files.append(path.resolve().relative_to(root).as_posix())
    return files


def _editable_project(manager, plugin: str) -> Path:
    """The project directory of ``plugin``'s editable install (``direct_url.json``, PEP 610)."""
    from urllib.parse import unquote, urlparse

    dist = manager.distributions.get(plugin)
    text = dist.read_text("direct_url.json") if dist is not None else None
    origin = json.loads(text) if text else {}
    if not origin.get("dir_info", {}).get("editable"):
        raise Skipped("the plugin is not installed in editable mode (pip install -e), so its installed files are "
                      "what its wheel ships; give check_plugin(wheel=PROJECT_DIR) to build one")
    return Path(unquote(urlparse(origin["url"]).path))


def _build_wheel(project: Path, directory: Path) -> Path:
    """``pip wheel`` of a copy of ``project`` (pip builds in the tree it is given), without dependencies or
    network; the path of the wheel."""
    import subprocess

    source, out = directory / "project", directory / "wheel"

    def outputs(folder: str, names: list[str]) -> set[str]:
        """What an earlier build or a virtual environment left at the project's top; kept: .git (setuptools-scm)."""
        top = Path(folder) == Path(project)
        return {n for n in names if n == "__pycache__" or n.endswith(".egg-info")
                or (top and n in (".venv", "build", "dist", ".pytest_cache", ".tox"))}

    shutil.copytree(project, source, ignore=outputs)
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
               "--disable-pip-version-check", "--quiet", "--wheel-dir", str(out), str(source)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    wheels = sorted(out.glob("*.whl"))
    if done.returncode != 0 or not wheels:
        reason = (done.stderr.strip().splitlines() or ["no wheel was written"])[-1]
        _fail(f"building its wheel failed: {reason}", f"make `pip wheel {project}` work")
    return wheels[0]


# --- the kit -------------------------------------------------------------------------------------------------


class _Kit:
    def __init__(self, plugin: str, manager, overrides: dict, metric_cases: dict):
        from coupler.plugin_manager import PluginManager

        if manager is None:
            manager = PluginManager()
            manager.load_builtins()
            manager.load_entry_points()
        if KIT_PLUGIN not in manager.plugins:
            manager.load_object(KIT_PLUGIN, _KitPlugin(), distribution="coupler (conformance kit)")
        self.plugin, self.manager, self.overrides, self.metric_cases = plugin, manager, overrides, metric_cases
        #: (kind, name) -> the node its config composed to (``config_node``)
        self.nodes: dict[tuple[str, str], dict] = {}

    def checks(self) -> list[Check]:
        info = self.manager.plugins.get(self.plugin)
        checks = [Check(self.plugin, "plugin", self.plugin, "loads", self.check_loads)]
        if info is None or info.status != "ok":
            return checks
        checks.append(Check(self.plugin, "plugin", self.plugin, "declares its API range", self.check_api))
        checks.append(Check(self.plugin, "plugin", self.plugin, "config files belong to components",
                            self.check_config_files))
        kinds = {"model": self.model_checks, "data": self.data_checks, "callback": self.callback_checks,
                 "metric": self.metric_checks, "exporter": self.exporter_checks}
        for kind, names in info.components.items():
            for name in sorted(names):
                checks.append(self.check(kind, name, "name and description", self.check_name))
                checks.append(self.check(kind, name, "config composes", self.check_config))
                checks.append(self.check(kind, name, "factory builds", self.check_builds))
                checks.extend(self.schema_checks(kind, name))
                checks.extend(kinds[kind](name) if kind in kinds else self.declared_checks(kind, name))
        return checks

    def declared_checks(self, kind: str, name: str) -> list[Check]:
        """The rules a plugin declared with its kind (``register_kinds(..., checks={rule: check})``)."""
        declared = self.manager.registry.kinds[kind].checks
        return [self.check(kind, name, rule, lambda kind, name, directory, rule_check=rule_check:
                           rule_check(self.build(kind, name))) for rule, rule_check in declared.items()]

    def check(self, kind: str, name: str, rule: str, method) -> Check:
        return Check(self.plugin, kind, name, rule, lambda directory: method(kind, name, directory))

    # --- the plugin ---

    def check_loads(self, directory: Path) -> None:
        info = self.manager.plugins.get(self.plugin)
        if info is None:
            installed = ", ".join(sorted(n for n in self.manager.plugins if n != KIT_PLUGIN))
            _fail(f"no plugin named {self.plugin!r} is installed (installed: {installed})",
                  "pip install your distribution (pip install -e .), and name the plugin as its entry point in "
                  "[project.entry-points.coupler] NAME = \"module\"")
        if info.status != "ok":
            _fail(f"it is {info.status}: {info.error or 'disabled by COUPLER_DISABLE_PLUGINS or COUPLER_PLUGINS_ONLY'}",
                  "make the module import and its register_* hooks run without error (the message says where)")
        if not any(info.components.values()):
            _fail("it registers no component", "call register(name, factory, description=...) in a register_* hook")

    def check_api(self, directory: Path) -> None:
        from coupler.hookspecs import API_RANGE

        declared = getattr(self.manager.hooks.get_plugin(self.plugin), "COUPLER_API", None)
        if declared is None:
            _fail("its module does not say which plugin API versions it supports",
                  f"add COUPLER_API = \"{API_RANGE}\" to the plugin module "
                  f"(the one its entry point names)")

    def check_config_files(self, directory: Path) -> None:
        info = self.manager.plugins[self.plugin]
        for config_dir in info.config_dirs:
            for path in sorted(Path(config_dir).glob("*/*.yaml")):
                kind = self.manager.registry.kind_of_group.get(path.parent.name)
                if kind is None:
                    continue  # a group of the plugin's own (Hydra allows any)
                if path.stem not in self.manager.registry.names(kind):
                    _fail(f"{path} configures {kind} {path.stem!r}, which no plugin registers",
                          f"register a {kind} named {path.stem!r}, or rename or remove the file")

    # --- every component ---

    def component_overrides(self, name: str) -> list[str]:
        return list(self.overrides.get(name, ()))

    def check_name(self, kind: str, name: str, directory: Path) -> None:
        if not NAME_PATTERN.match(name):
            _fail(f"the name {name!r} is not lowercase letters, digits and underscores",
                  "register it as e.g. 'my_model': users type it on the command line (model=my_model)")
        component = self.manager.registry.get(kind, name)
        if not component.description.strip():
            _fail("it has no description", "register(name, factory, description='one line') : coupler plugins "
                                           "shows it")

    def compose(self, overrides: list[str], name: str | None = None) -> dict:
        from coupler.config import compose
        from coupler.errors import ConfigError

        try:
            return compose(overrides, self.manager)
        except ConfigError as exc:
            if exc.value != "???":
                raise
            raise Skipped(f"{exc.key} has no default; give the kit one with "
                          f"overrides={{{name!r}: ['{exc.key}=...']}}") from None

    def config_node(self, kind: str, name: str) -> dict:
        """The node ``group=NAME`` (with the component's overrides) composes to; composed once per component, as
        Hydra takes a second or so each time, and handed out as a copy."""
        import copy

        if (kind, name) not in self.nodes:
            self.nodes[(kind, name)] = self.composed_node(kind, name)
        return copy.deepcopy(self.nodes[(kind, name)])

    def composed_node(self, kind: str, name: str) -> dict:
        registry = self.manager.registry
        group, many = registry.group(kind), registry.kinds[kind].many
        selection = f"{group}=[{name}]" if many else f"{group}={name}"
        with _step(f"composing {selection}", f"make {group}/{name}.yaml valid YAML whose keys are the factory's "
                                              f"parameters, in a directory given to register_config_dirs"):
            config = self.compose([selection, *self.component_overrides(name)], name)
        if many and name not in (config.get(group) or {}):
            _fail(f"{selection} composes to {group}={config.get(group)!r}, whose keys are not under {group}.{name}",
                  f"start {group}/{name}.yaml with the line '# @package {group}.{name}'")
        node = config[group][name] if many else config[group]
        if node.get("name") != name:
            _fail(f"{selection} composes to a node whose name is {node.get('name')!r}",
                  f"start {group}/{name}.yaml with 'name: {name}'")
        return node

    def check_config(self, kind: str, name: str, directory: Path) -> None:
        self.config_node(kind, name)

    def build(self, kind: str, name: str, node: dict | None = None):
        """The component built from ``node`` (default: the config ``group=NAME`` composes to), as a run builds it;
        a model for the first task it accepts."""
        node = self.config_node(kind, name) if node is None else node
        component = self.manager.registry.get(kind, name)
        fix = ("make the factory accept every key of its config file (and task, seed for a model), and raise "
               "coupler.errors.ConfigError(key, value, allowed) for a bad value")
        if kind != "model":
            with _step(f"calling the factory with the config of {name!r}", fix):
                return component.build(self.manager.registry.group(kind), node)
        refusals = []
        for task in KIT_DATA:  # a model may refuse a task it cannot do, with a CouplerError
            try:
                return component.build("model", node, task=task, seed=0)
            except CouplerError as exc:
                refusals.append(f"{task}: {exc}")
            except Exception as exc:
                _fail(f"calling the factory for task={task} raised {type(exc).__name__}: {exc}{_where(exc)}", fix)
        _fail(f"the factory refuses every task ({'; '.join(refusals)})", fix)

    def check_builds(self, kind: str, name: str, directory: Path) -> None:
        from coupler.components import Exporter, Metric, Model
        from coupler.dataset import Dataset

        built = self.build(kind, name)
        expected = {
            "model": (lambda o: isinstance(o, Model) or all(hasattr(o, m) for m in ("fit", "predict", "save", "load")),
                      "a coupler.components.Model (fit, predict, save, load)"),
            "data": (lambda o: isinstance(o, Dataset), "a coupler.dataset.Dataset"),
            "callback": (lambda o: o is not None, "an object with lifecycle hook implementations"),
            "metric": (lambda o: isinstance(o, Metric), "a coupler.components.Metric"),
            "exporter": (lambda o: isinstance(o, Exporter) or hasattr(o, "export"),
                         "a coupler.components.Exporter (export(model, run, directory) -> paths)"),
        }
        accepts, what = expected.get(kind, (lambda o: o is not None, self.manager.registry.kinds[kind].contract
                                            or f"what the {kind} kind's plugin documents"))
        if not accepts(built):
            _fail(f"the factory returned {type(built).__name__}", f"return {what}")

    # --- the schema (coupler.schema) ---

    def schema_checks(self, kind: str, name: str) -> list[Check]:
        """Every component's schema (registered, or derived from its factory) gives defaults it allows itself; a
        registered schema is the component's one source: its defaults alone build it, and no config file
        configures the same node."""
        checks = [self.check(kind, name, "schema defaults pass its check", self.check_schema_defaults)]
        if self.manager.registry.get(kind, name).schema is not None:
            checks.append(self.check(kind, name, "factory builds from schema defaults", self.check_schema_builds))
            checks.append(self.check(kind, name, "one source of its config", self.check_one_source))
        return checks

    def node_key(self, kind: str, name: str) -> str:
        """Where the component's node sits in a run's config: ``model``, or ``callbacks.NAME`` in a list group."""
        group = self.manager.registry.group(kind)
        return f"{group}.{name}" if self.manager.registry.kinds[kind].many else group

    def check_schema_defaults(self, kind: str, name: str, directory: Path) -> None:
        from coupler.errors import ConfigError

        component = self.manager.registry.get(kind, name)
        schema = component.parameters
        source = (f"its schema {schema.__name__}" if component.schema is not None
                  else "its factory's signature (the schema derived from it)")
        for key, value, refusal in _refused_defaults(schema, self.node_key(kind, name)):
            if isinstance(refusal, ConfigError):
                _fail(f"{source} gives {key} the default {value!r}, which the schema itself refuses: {refusal}",
                      "give the field a default its type and rule allow, or widen the type (e.g. `int | None` for "
                      "a default of None) or the rule: a user who sets nothing gets this default, and the run "
                      "refuses it")
            _fail(f"checking the default {key}={value!r} against {source} raised {type(refusal).__name__}: "
                  f"{refusal}", "give the field a type coupler.schema can check (int, float, bool, str, "
                                "X | None, Literal, list[X], dict, a nested dataclass, Any)")

    def check_schema_builds(self, kind: str, name: str, directory: Path) -> None:
        import dataclasses

        from coupler.schema import default_of

        component = self.manager.registry.get(kind, name)
        composed = self.config_node(kind, name)
        required = [f.name for f in dataclasses.fields(component.schema) if default_of(f) is dataclasses.MISSING]
        alone = {"name": name, **{key: composed[key] for key in required if key in composed}}
        if component.node(alone) == component.node(composed):
            return  # the very node 'factory builds' built
        changed = sorted(key for key, value in component.node(composed).items()
                         if component.node(alone).get(key) != value)
        with _refusal_as(f"built with its schema's defaults alone (the config the kit composed for it differs "
                         f"in {', '.join(changed)}), ",
                         f"make {component.schema.__name__}'s defaults a configuration that builds: a user who "
                         f"sets nothing gets them"):
            self.build(kind, name, alone)

    def check_one_source(self, kind: str, name: str, directory: Path) -> None:
        from coupler.config import config_directories

        component = self.manager.registry.get(kind, name)
        group = self.manager.registry.group(kind)
        for provider, config_dir in config_directories(self.manager):
            path = Path(config_dir) / group / f"{name}.yaml"
            if path.is_file():
                _fail(f"it registers schema={component.schema.__name__} and the config file {path} (from "
                      f"{provider!r}) configures {group}={name} too: Hydra reads the file instead of the schema's "
                      f"node, so the two sources of one node can disagree on keys and defaults",
                      f"delete {path}: the schema is the node's one source (defaults, types, help); or register "
                      f"{name!r} without schema= and keep the file")

    # --- models ---

    def model_checks(self, name: str) -> list[Check]:
        checks = [Check(self.plugin, "model", name, f"round trip {task}",
                        lambda directory, task=task: self.check_model_round_trip(name, task, directory))
                  for task in KIT_DATA]
        checks.append(Check(self.plugin, "model", name, "round trip text",
                            lambda directory: self.check_model_round_trip(name, "binary", directory, text=True)))
        return checks

    def run(self, overrides: list[str], directory: Path, doing: str, fix: str, engine: str | None = None
            ) -> tuple[dict, Path]:
        """Train ``overrides`` into ``directory/run``, made short by the ``test_overrides`` of the settings groups
        that a model of ``engine`` reads (``SettingGroup.engines``)."""
        from coupler.training import train

        shorter = [o for group in self.manager.registry.setting_groups.values()
                   if not group.engines or engine in group.engines for o in group.test_overrides]
        config = self.compose([*overrides, *shorter])
        run_dir = directory / "run"
        with _step(doing, fix):
            return train(config, run_dir, self.manager), run_dir

    def check_model_round_trip(self, name: str, task: str, directory: Path, text: bool = False) -> None:
        model = self.model_for(name, task, text)
        data = KIT_TEXT if text else KIT_DATA[task]
        results, run_dir = self.run(
            [f"data={data}", f"model={name}", *self.component_overrides(name)], directory,
            f"training it on the kit's {'text' if text else task} data (coupler train data={data} model={name})",
            "fit(train, val, run) must train on train.X (the model's input_format) and train.y (class codes 0..K-1, "
            "or floats for regression); save(directory) must write its state there", engine=getattr(model, "engine", None))
        for split in ("val", "test"):
            bad = {k: v for k, v in results[split].items() if v is not None and not math.isfinite(v)}
            if bad:
                _fail(f"the {split} metrics are not finite: {bad}", "predict finite numbers, and finite probabilities")
        finished = self.reloaded(run_dir, results, reload_tolerance(model))
        self.check_predictions(finished, run_dir, data, task)

    def model_for(self, name: str, task: str, text: bool):
        """The model built for ``task``; skipped when it refuses the task or reads no input of this kind."""
        node = self.config_node("model", name)
        component = self.manager.registry.get("model", name)
        try:
            model = component.build("model", node, task=task, seed=0)
        except CouplerError as exc:
            raise Skipped(f"the model refuses the {task} task: {exc}") from None
        except Exception as exc:
            _fail(f"building it for task={task} raised {type(exc).__name__}: {exc}{_where(exc)}",
                  "raise coupler.errors.CouplerError naming the task when the model cannot do it")
        formats = set(getattr(model, "input_formats", None) or (getattr(model, "input_format", "matrix"),))
        wanted = {"tokens", "text"} if text else {"matrix", "frame"}
        if not formats & wanted:
            raise Skipped(f"the model reads {' or '.join(sorted(formats))}, no {'text' if text else 'table'}")
        return model

    def reloaded(self, run_dir: Path, results: dict, tolerance: float):
        """The finished run, reloaded, after checking that it measures what the run measured (within the model's
        ``reload_tolerance``)."""
        from coupler.finished_run import FinishedRun

        with _step("reloading the run (coupler evaluate)", "load(directory) must restore what save(directory) wrote "
                                                           "into a model freshly built by the factory"):
            finished = FinishedRun(run_dir, self.manager)
            again = finished.evaluate()
        difference = reload_difference(results, again)
        if difference is None or difference[0] <= tolerance:
            return finished
        size, where = difference
        declared = f"its reload_tolerance {tolerance:g}" if tolerance else "exact equality (reload_tolerance 0)"
        if size < NOISE:
            _fail(f"the reloaded model measures {where}: they differ by {size:.3g}, more than {declared}",
                  f"a difference this small is floating-point noise (threads or a GPU adding in another order, e.g. "
                  f"n_jobs=-1): declare it on the model class, reload_tolerance = {_ceiling(size):g}; or make "
                  f"prediction deterministic")
        _fail(f"the reloaded model measures {where} (a difference of {size:.3g}, more than {declared})",
              "save every fitted attribute in save() and restore it in load(), losslessly (JSON floats, "
              "safetensors, the library's own format)")

    def check_predictions(self, finished, run_dir: Path, data: str, task: str) -> None:
        """The reloaded model's predictions on the run's test rows: one class code (or number) per row,
        probabilities that are rows summing to 1, the same twice."""
        import numpy as np
        import pandas as pd

        test = pd.read_csv(run_dir / "predictions_test.csv")
        rows = test["row"] if "row" in test else test.iloc[:, 0]
        dataset = self.manager.registry.get("data", data).build("data", {})
        X = finished.preprocessor.transform(dataset.X.loc[rows.to_numpy()], finished.input_format)
        model, n = finished.model, len(rows)
        with _step("predict on the reloaded model", "predict(X) must accept the input_format it declares"):
            predicted = np.asarray(model.predict(X))
        if predicted.shape != (n,):
            _fail(f"predict returned shape {predicted.shape} for {n} rows", f"return one value per row: shape ({n},)")
        if task != "regression":
            _check_classes(model, X, predicted, len(finished.classes), finished.task)
        if not np.array_equal(predicted, np.asarray(model.predict(X))):
            _fail("predict gave other values for the same rows the second time", "make predict deterministic")

    # --- data ---

    def data_checks(self, name: str) -> list[Check]:
        return [self.check("data", name, "loads a usable table", self.check_data)]

    def check_data(self, kind: str, name: str, directory: Path) -> None:
        from coupler.dataset import infer_task

        dataset = self.build("data", name)
        if len(dataset.X) != len(dataset.y):
            _fail(f"X has {len(dataset.X)} rows and y {len(dataset.y)}", "give one target value per row")
        columns = list(dataset.X.columns)
        if len(set(columns)) != len(columns) or not all(isinstance(c, str) for c in columns):
            _fail(f"the columns are not distinct strings: {columns[:10]}", "name every feature column with a "
                                                                           "distinct string")
        with _step("inferring the task from the target", "give a target with at least two values"):
            infer_task(dataset.y)
        if dataset.files:
            missing = [p for p in dataset.X.iloc[:, 0].head(20) if not Path(str(p)).exists()]
            if missing:
                _fail(f"files=True but these paths do not exist: {missing[:3]}", "give the paths of existing files")
        if self.build("data", name).fingerprint() != dataset.fingerprint():
            _fail("two loads of the same config gave different data",
                  "seed any randomness (runs, splits and reloads depend on the same rows)")

    # --- callbacks ---

    def callback_checks(self, name: str) -> list[Check]:
        return [self.check("callback", name, "hooks are lifecycle hooks", self.check_callback_hooks),
                self.check("callback", name, "receives events", self.check_callback_events)]

    def check_callback_hooks(self, kind: str, name: str, directory: Path) -> None:
        import pluggy

        from coupler import hookspecs
        from coupler.errors import did_you_mean

        callback = self.build("callback", name)
        lifecycle = _lifecycle_hooks()
        for attribute in dir(callback):
            if not attribute.startswith("on_") or not callable(getattr(callback, attribute)):
                continue
            if attribute not in lifecycle:
                _fail(f"it has a method {attribute!r}, which is no lifecycle hook.{did_you_mean(attribute, lifecycle)}",
                      f"name hook implementations after the hooks: {', '.join(lifecycle)}")
            if attribute not in _implemented_hooks(callback):
                _fail(f"its method {attribute!r} is not marked as a hook implementation, so it is never called",
                      "decorate it with @coupler.hookimpl")
        manager = pluggy.PluginManager(hookspecs.PROJECT)
        manager.add_hookspecs(hookspecs)
        with _step("registering it with Coupler's hook specifications",
                   "give each hook method only argument names the hook passes (see coupler.hookspecs)"):
            manager.register(callback)
            manager.check_pending()
        state = getattr(callback, "state_dict", None)
        if callable(state):
            with _step("state_dict()", "state_dict() must return the callback's state"):
                value = state()
            if not _plain(value):
                _fail(f"state_dict() returned {value!r}, which is not plain containers",
                      "return dicts, lists, strings, numbers, booleans, None (or tensors): an engine stores it as "
                      "plain data with its progress")
            with _step("load_state_dict(state_dict())", "load_state_dict must accept what state_dict returns"):
                callback.load_state_dict(value)

    def check_callback_events(self, kind: str, name: str, directory: Path) -> None:
        callback = self.build("callback", name)
        wanted = _implemented_hooks(callback)
        overrides = self.component_overrides(name)
        model, engine = self.callback_model(name, callback, overrides)
        named = {id(self.manager.hooks.get_plugin(n)) for n in self.manager.plugins}
        fired: set[str] = set()
        received: set[str] = set()

        def before(hook_name, implementations, kwargs):
            fired.add(hook_name)
            # the run registers its callbacks without a plugin name of their own
            if any(id(impl.plugin) not in named for impl in implementations):
                received.add(hook_name)

        undo = self.manager.hooks.add_hookcall_monitoring(before, lambda *args: None)
        try:
            _, run_dir = self.run([f"data={KIT_DATA['binary']}", *([] if model else [f"model={KIT_MODEL}"]),
                                   f"callbacks=[{name}]", *overrides], directory,
                                  f"a run with callbacks=[{name}] and {f'model={model}' if model else 'the kit model'}",
                                  "the callback's hooks must not raise during a normal run", engine=engine)
        finally:
            undo()
        missed = sorted((wanted & fired) - received)
        if missed:
            _fail(f"its hooks {missed} were not called in a run that fired them",
                  "return the object whose methods carry @coupler.hookimpl from the factory")
        _check_still_sealed(run_dir)

    def callback_model(self, name: str, callback, overrides: list[str]) -> tuple[str | None, str | None]:
        """The model a callback's run uses: the kit's iterative one, or the ``model=`` its overrides name (with its
        declared engine). A callback that acts only inside some engines (``Callback.engines``) needs the latter."""
        from coupler.components import declared_model

        model = next((o.split("=", 1)[1] for o in overrides if o.startswith("model=")), None)
        engines = getattr(callback, "engines", None)
        if model is None and engines:
            raise Skipped(f"it acts only inside the {'/'.join(engines)} engine, and the kit's model names none: pass "
                          f"overrides={{{name!r}: ['model=NAME']}} with a {'/'.join(engines)} model")
        declared = declared_model(self.manager.registry.get("model", model).factory) if model else None
        return model, getattr(declared, "engine", None)

    # --- metrics ---

    def metric_checks(self, name: str) -> list[Check]:
        return [self.check("metric", name, "values on known inputs", self.check_metric)]

    def check_metric(self, kind: str, name: str, directory: Path) -> None:
        import numpy as np

        from coupler.components import TASKS

        metric = self.build("metric", name)
        unknown = [t for t in metric.tasks if t not in TASKS]
        if unknown or not metric.tasks:
            _fail(f"its tasks are {list(metric.tasks)}", f"give tasks from {', '.join(TASKS)}")
        for task in metric.tasks:
            cases = _metric_inputs(task)
            if metric.needs_proba and task == "regression":
                _fail("needs_proba=True for the regression task", "regressors have no probabilities: drop the task")
            values = {}
            for quality, (y_true, y_pred, y_proba, k) in cases.items():
                copies = [None if a is None else a.copy() for a in (y_true, y_pred, y_proba)]
                with _step(f"computing it on {quality} {task} predictions",
                           "fn(y_true, y_pred, y_proba, n_classes) must accept class codes (or floats) and "
                           "probabilities of shape (rows, n_classes)"):
                    value = metric(y_true, y_pred, y_proba, k)
                    twice = metric(y_true, y_pred, y_proba, k)
                if any(c is not None and not np.array_equal(c, a) for c, a in zip(copies, (y_true, y_pred, y_proba))):
                    _fail("it changed its input arrays", "work on copies")
                array = np.asarray(value, dtype=float)
                if not np.all(np.isfinite(array)):
                    _fail(f"on {quality} {task} predictions it returned {value!r}", "return a finite number")
                if not np.array_equal(array, np.asarray(twice, dtype=float)):
                    _fail("two calls on the same inputs gave different values", "make it deterministic")
                values[quality] = array
            if values["perfect"].ndim == 0:
                perfect, poor = float(values["perfect"]), float(values["poor"])
                if (perfect < poor) if metric.greater_is_better else (perfect > poor):
                    _fail(f"on {task} data perfect predictions score {perfect:.4g} and poor ones {poor:.4g}, with "
                          f"greater_is_better={metric.greater_is_better}",
                          "fix the formula, or set greater_is_better to match it (early stopping and sweeps read it)")
        for case in self.metric_cases.get(name, []):
            value = metric(np.asarray(case["y_true"]), np.asarray(case["y_pred"]),
                           None if case.get("y_proba") is None else np.asarray(case["y_proba"]), case.get("n_classes", 0))
            if not np.allclose(np.asarray(value, dtype=float), case["expected"], rtol=1e-6, atol=1e-9):
                _fail(f"on the given case {case} it returned {value!r}", "compare its formula with the expected value")

    # --- exporters ---

    def exporter_checks(self, name: str) -> list[Check]:
        return [self.check("exporter", name, "output reloads", self.check_exporter)]

    def check_exporter(self, kind: str, name: str, directory: Path) -> None:
        exporter = self.build("exporter", name)
        written: list = []

        def spy(hook_name, implementations, kwargs):
            if hook_name == "on_export" and kwargs.get("exporter") == name:
                written.extend(kwargs.get("paths") or [])

        undo = self.manager.hooks.add_hookcall_monitoring(spy, lambda *args: None)
        try:
            _, run_dir = self.run([f"data={KIT_DATA['multiclass']}", f"model={KIT_MODEL}", f"exporters=[{name}]",
                                   *self.component_overrides(name)], directory,
                                  f"a run with exporters=[{name}] and the kit's iterative model",
                                  "export(model, run, directory) must write into directory and return the paths")
        finally:
            undo()
        if not written:
            _fail("export returned no paths", "return the list of files written (pathlib.Path)")
        exports = (run_dir / "exports").resolve()
        for path in map(Path, written):
            if not path.resolve().is_relative_to(exports):
                _fail(f"it wrote {path}, outside the directory it was given ({exports})", "write inside directory")
            if not path.is_file() or path.stat().st_size == 0:
                _fail(f"{path.name} is missing or empty", "write the file completely before returning its path")
            with _step(f"reading {path.name} back", "write valid files of the format the extension says"):
                _read_back(path)
        load = getattr(exporter, "load", None)
        if callable(load):
            with _step("load(paths)", "load(paths) must read back what export wrote"):
                load([Path(p) for p in written])


@contextlib.contextmanager
def _refusal_as(doing: str, fix: str) -> Iterator[None]:
    """Restate a failure of the steps inside as one that happened while ``doing`` (the start of a sentence)."""
    try:
        yield
    except _Broken as exc:
        raise _Broken(doing + exc.problem, fix) from None


def _refused_defaults(schema: type, prefix: str) -> Iterator[tuple[str, object, Exception]]:
    """(key, default, the refusal) for each default of ``schema`` (nested schemas included) that its own check
    refuses: a ``ConfigError``, or whatever else the check raised on a type it cannot read."""
    import dataclasses

    from coupler.schema import check_value, default_of, hints, nested_schema, rule_of

    resolved = hints(schema)
    for field in dataclasses.fields(schema):
        key, hint, default = f"{prefix}.{field.name}", resolved[field.name], default_of(field)
        if default is dataclasses.MISSING:
            continue
        inner = nested_schema(hint)
        if inner is not None and isinstance(default, dict):
            yield from _refused_defaults(inner, key)
            continue
        try:
            check_value(key, default, hint, rule_of(field, hint))
        except Exception as exc:  # a ConfigError; anything else: a type the check cannot read
            yield key, default, exc


def _lifecycle_hooks() -> list[str]:
    from coupler import hookspecs

    return [n for n in dir(hookspecs) if n.startswith("on_")]


def _implemented_hooks(plugin) -> set[str]:
    """The names of ``plugin``'s methods marked with ``@coupler.hookimpl``."""
    from coupler.hookspecs import PROJECT

    return {n for n in dir(plugin) if getattr(getattr(plugin, n, None), f"{PROJECT}_impl", None) is not None}


def reload_tolerance(model) -> float:
    """How far a reloaded model's metrics may differ from the run's: the model's ``reload_tolerance`` (a class
    attribute, relative to the metric's size, absolute below 1), else ``RELOAD_TOLERANCE``."""
    declared = getattr(model, "reload_tolerance", RELOAD_TOLERANCE)
    if isinstance(declared, bool) or not isinstance(declared, (int, float)) or not 0 <= declared < 1:
        _fail(f"its reload_tolerance is {declared!r}",
              "declare reload_tolerance as a number from 0 (exact) to below 1, e.g. 1e-9")
    return float(declared)


def reload_difference(run: dict, again: dict) -> tuple[float, str] | None:
    """The largest difference between the run's metrics and the reloaded run's (relative to the metric's size,
    absolute below 1), and which metric it is; None when they are equal. A metric missing on one side, or
    undefined on one side only, is an infinite difference."""
    worst: tuple[float, str] | None = None
    for split in sorted(set(run) | set(again)):
        before, after = run.get(split) or {}, again.get(split) or {}
        for metric in sorted(set(before) | set(after)):
            a, b = before.get(metric), after.get(metric)
            if a == b:
                continue
            size = math.inf if a is None or b is None else abs(a - b) / max(abs(a), abs(b), 1.0)
            if worst is None or size > worst[0]:
                worst = (size, f"{split}.{metric}={b!r} and the run measured {a!r}")
    return worst


def _ceiling(size: float) -> float:
    """The power of ten above ``size``, at least 1e-12: a tolerance to suggest."""
    return max(10.0 ** math.ceil(math.log10(size)), 1e-12) if size > 0 else 1e-12


def _check_still_sealed(run_dir: Path) -> None:
    """A run a callback took part in still verifies (``coupler evaluate`` would load it): on_run_end, which
    fires after the run is sealed, wrote nothing into it."""
    from coupler.run_directory import read_manifest

    try:
        read_manifest(run_dir)
    except CouplerError as exc:
        _fail(f"after the run its directory no longer verifies: {exc}",
              "on_run_end fires after the run directory is sealed: write into run.directory in an earlier hook "
              "(on_fit_end, on_evaluate_end), and in on_run_end only outside it")


def _check_classes(model, X, predicted, k: int, task: str) -> None:
    import numpy as np

    from coupler.components import gives_proba

    n = len(predicted)
    if not np.all(np.isin(predicted, np.arange(k))):
        _fail(f"predict returned {sorted(set(predicted.tolist()))[:10]}, not class codes 0..{k - 1}",
              "return class codes 0..K-1 (the order of run.classes), not the labels")
    if gives_proba(model, task):
        with _step("predict_proba", "predict_proba(X) must accept what predict accepts"):
            proba = np.asarray(model.predict_proba(X), dtype=float)
        if proba.shape != (n, k) or not np.allclose(proba.sum(axis=1), 1, atol=1e-5) or (proba < 0).any():
            _fail(f"predict_proba returned shape {proba.shape} whose rows do not all sum to 1",
                  f"return probabilities, shape (rows, {k}), each row summing to 1; or leave {task} out of proba_tasks")


def _plain(value) -> bool:
    if value is None or isinstance(value, (bool, int, float, str)):
        return True
    if isinstance(value, dict):
        return all(isinstance(k, (str, int)) and _plain(v) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return all(_plain(v) for v in value)
    return type(value).__name__ == "Tensor"  # an engine's tensor type (it stores its own)


def _read_back(path: Path) -> None:
    suffix = path.suffix.lower()
    if suffix == ".json":
        json.loads(path.read_text())
    elif suffix == ".csv":
        import pandas as pd

        pd.read_csv(path)
    elif suffix in (".yaml", ".yml"):
        import yaml

        yaml.safe_load(path.read_text())
    elif suffix in (".md", ".txt"):
        path.read_text(encoding="utf-8")
    elif suffix == ".onnx":
        import onnx

        onnx.checker.check_model(str(path))


def _metric_inputs(task: str) -> dict:
    """Perfect and poor predictions of one task: (y_true, y_pred, y_proba, n_classes)."""
    import numpy as np

    if task == "regression":
        y = np.linspace(-2.0, 3.0, 12)
        return {"perfect": (y, y.copy(), None, 0), "poor": (y, y[::-1].copy() + 0.5, None, 0)}
    k = 2 if task == "binary" else 3
    y = np.arange(12) % k
    poor = (y + 1) % k
    poor[::3] = y[::3]

    def proba(pred, confidence):
        p = np.full((len(pred), k), (1 - confidence) / (k - 1))
        p[np.arange(len(pred)), pred] = confidence
        return p

    return {"perfect": (y, y.copy(), proba(y, 0.9), k), "poor": (y, poor, proba(poor, 0.6), k)}


# --- what the kit registers: generated data and an iterative model -------------------------------------------


def _kit_table(task: str):
    """200 rows: 14 numeric columns and one categorical column, a target that depends on them (seeded)."""
    import numpy as np
    import pandas as pd

    from coupler.dataset import Dataset

    rng = np.random.default_rng(7)
    numbers = rng.normal(size=(KIT_ROWS, 14))
    colour = rng.choice(["red", "blue"], size=KIT_ROWS)
    signal = numbers[:, 0] + 0.8 * numbers[:, 1] - 0.5 * numbers[:, 2] + np.where(colour == "red", 0.7, -0.7)
    frame = pd.DataFrame(numbers, columns=[f"x{i:02d}" for i in range(14)])
    frame["colour"] = pd.Categorical(colour)
    if task == "regression":
        target = pd.Series(signal * 10 + rng.normal(scale=1.0, size=KIT_ROWS), name="target")
    elif task == "binary":
        target = pd.Series(np.where(signal > 0, "yes", "no"), name="target")
    else:
        target = pd.Series(np.digitize(signal, np.quantile(signal, [1 / 3, 2 / 3])), name="target")
    return Dataset(frame, target, name=KIT_DATA[task], categorical=["colour"], task=task)


def _kit_text():
    """200 short reviews: positive or negative by the words they use, with neutral words and typos around."""
    import numpy as np
    import pandas as pd

    from coupler.dataset import Dataset

    rng = np.random.default_rng(11)
    positive, negative = ["good", "great", "fine", "lovely"], ["bad", "awful", "poor", "dull"]
    neutral = ["the", "film", "plot", "was", "acting", "and", "a", "very", "story"]
    texts, labels = [], []
    for i in range(KIT_ROWS):
        label = i % 2
        words = list(rng.choice(neutral, size=4)) + list(rng.choice(positive if label else negative, size=2))
        texts.append(" ".join(rng.permutation(words)))
        labels.append("positive" if label else "negative")
    return Dataset(pd.DataFrame({"text": texts}), pd.Series(labels, name="label"), name=KIT_TEXT, text="text",
                   tokenizer={"length": 8, "vocab_size": 64})


class _IterativeModel:
    """Softmax (or linear) regression by gradient descent, one ``run.epoch_end`` per epoch: the kit's engine
    for runs that test callbacks and exporters."""

    input_format = "matrix"

    def __init__(self, task: str, seed: int, lr: float = 0.1):
        self.task, self.seed, self.lr = task, seed, lr
        self.weights = None

    def _scores(self, X):
        import numpy as np

        return np.asarray(X, dtype=float) @ self.weights[:-1] + self.weights[-1]

    def fit(self, train, val, run) -> None:
        import numpy as np

        X = np.asarray(train.X, dtype=float)
        classes = len(run.classes) if self.task != "regression" else 1
        target = np.eye(classes)[train.y] if self.task != "regression" else train.y[:, None]
        self.weights = np.zeros((X.shape[1] + 1, classes))
        for epoch in range(KIT_EPOCHS):
            outputs = self._outputs(X)
            gradient = (outputs - target) / len(X)
            self.weights[:-1] -= self.lr * X.T @ gradient
            self.weights[-1] -= self.lr * gradient.sum(axis=0)
            metrics = {"train_loss": float(np.mean((outputs - target) ** 2))}
            if val is not None:
                metrics["val_loss"] = float(np.mean((self._outputs(val.X) - (
                    np.eye(classes)[val.y] if self.task != "regression" else val.y[:, None])) ** 2))
            if run.epoch_end(epoch, metrics):
                break

    def _outputs(self, X):
        import numpy as np

        scores = self._scores(X)
        if self.task == "regression":
            return scores
        scores = scores - scores.max(axis=1, keepdims=True)
        exp = np.exp(scores)
        return exp / exp.sum(axis=1, keepdims=True)

    @property
    def supports_proba(self) -> bool:
        return self.task != "regression"

    def predict(self, X):
        outputs = self._outputs(X)
        return outputs[:, 0] if self.task == "regression" else outputs.argmax(axis=1)

    def predict_proba(self, X):
        return None if self.task == "regression" else self._outputs(X)

    def save(self, directory: Path) -> None:
        (Path(directory) / "weights.json").write_text(json.dumps(self.weights.tolist()))

    def load(self, directory: Path) -> None:
        import numpy as np

        self.weights = np.array(json.loads((Path(directory) / "weights.json").read_text()))


class _KitPlugin:
    @hookimpl
    def register_data_loaders(self, register):
        for task, name in KIT_DATA.items():
            register(name, lambda task=task: _kit_table(task), description=f"the conformance kit's {task} table")
        register(KIT_TEXT, _kit_text, description="the conformance kit's binary text set")

    @hookimpl
    def register_models(self, register):
        register(KIT_MODEL, _IterativeModel, description="the conformance kit's gradient-descent model")
