"""The conformance kit (``coupler.testing.check_plugin``): the built-in plugins pass it, and a sloppy plugin gets
one failure per broken rule, each naming the component, the rule and the fix. Plugin API ranges: an
incompatible plugin is skipped and says which versions it needs."""

from __future__ import annotations

import logging
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from coupler import hookimpl, hookspecs
from coupler.callback import Callback
from coupler.components import Exporter, Metric, Model
from coupler.conformance import Check, ConformanceError, Failure, check_plugin, plugin_checks
from coupler.errors import CouplerError, PluginError
from coupler.plugin_manager import PluginManager
from coupler.schema import param


def test_the_builtin_plugins_conform(tmp_path):
    from sklearn.datasets import load_wine

    frame = load_wine(as_frame=True).frame
    frame.to_csv(tmp_path / "wine.csv", index=False)
    frame.to_parquet(tmp_path / "wine.parquet")
    table = {"csv": [f"data.path={tmp_path / 'wine.csv'}", "data.target=target"],
             "parquet": [f"data.path={tmp_path / 'wine.parquet'}", "data.target=target"],
             "onnx": ["model=logistic_regression"]}  # the kit's own model declares no export format
    for plugin in ("datasets", "metrics", "callbacks", "exporters"):
        passed = check_plugin(plugin, overrides=table)
        assert not [check for check in passed if "skipped" in check], passed


def test_checks_are_one_per_rule_with_test_ids():
    checks = plugin_checks("callbacks")
    assert all(isinstance(check, Check) for check in checks)
    assert {str(check) for check in checks} >= {"plugin:callbacks:loads", "callback:early_stopping:receives_events",
                                                "callback:early_stopping:config_composes"}
    for check in checks:
        check()


# --- a sloppy plugin: every component breaks one rule -------------------------------------------------------------


class Forgetful(Model):
    """Fits a mean, saves nothing: a reloaded run cannot predict."""

    def __init__(self, task, seed):
        if task != "regression":
            raise CouplerError(f"model=forgetful cannot do a {task} task")
        self.mean = None

    def fit(self, train, val, run):
        self.mean = float(train.y.mean())

    def predict(self, X):
        import numpy as np

        return np.full(len(X), self.mean)

    def save(self, directory):
        (Path(directory) / "nothing.txt").write_text("")

    def load(self, directory):
        pass


class Typo:
    @hookimpl
    def on_epoch_ended(self, run, epoch, metrics):
        pass


class Undecorated:
    def on_epoch_end(self, run, epoch, metrics):
        pass


class Uphill(torch.optim.Optimizer):
    def __init__(self, params):
        super().__init__(params, {"lr": 0.1})

    def step(self, closure=None):
        for group in self.param_groups:
            for p in group["params"]:
                p.data.add_(p.grad, alpha=group["lr"])  # the wrong sign


class Outside(Exporter):
    def export(self, model, run, directory):
        path = Path(run.directory) / "beside.json"
        path.write_text("{}")
        return [path]


class Sloppy:  # no COUPLER_API
    @hookimpl
    def register_models(self, register):
        register("forgetful", Forgetful, description="a model that saves nothing")
        register("BadName", Forgetful)

    @hookimpl
    def register_metrics(self, register):
        from sklearn.metrics import accuracy_score

        register("upside_down", lambda: Metric("upside_down", lambda t, p, pr, k: accuracy_score(t, p),
                                               tasks=("binary",), greater_is_better=False),
                 description="accuracy, marked as lower-is-better")

    @hookimpl
    def register_callbacks(self, register):
        register("typo", Typo, description="a hook name with a typo")
        register("undecorated", Undecorated, description="a hook without @hookimpl")

    @hookimpl
    def register_optimizers(self, register):
        register("uphill", lambda: (lambda params: Uphill(params)), description="steps with the gradient")

    @hookimpl
    def register_exporters(self, register):
        register("outside", Outside, description="writes beside its directory")


@pytest.fixture(scope="module")
def sloppy_failures() -> dict[tuple[str, str], str]:
    manager = PluginManager()
    manager.load_builtins()
    manager.load_entry_points()
    manager.load_object("sloppy", Sloppy())
    with pytest.raises(ConformanceError) as raised:
        check_plugin("sloppy", manager=manager)
    assert str(raised.value).startswith(f"{len(raised.value.failures)} conformance rule(s) broken:")
    return {(failure.component, failure.rule): str(failure) for failure in raised.value.failures}


@pytest.mark.parametrize("component, rule, fragments", [
    ("plugin 'sloppy'", "declares its API range", [f"COUPLER_API = \"{hookspecs.API_RANGE}\""]),
    ("model 'BadName' (plugin 'sloppy')", "name and description", ["not lowercase letters", "model=my_model"]),
    ("model 'forgetful' (plugin 'sloppy')", "round trip regression",
     ["reloading the run (coupler evaluate) raised", "load(directory) must restore what save(directory) wrote"]),
    ("metric 'upside_down' (plugin 'sloppy')", "values on known inputs",
     ["perfect predictions score 1 and poor ones 0.3333", "greater_is_better=False", "set greater_is_better"]),
    ("callback 'typo' (plugin 'sloppy')", "hooks are lifecycle hooks",
     ["'on_epoch_ended', which is no lifecycle hook. Did you mean 'on_epoch_end'?"]),
    ("callback 'undecorated' (plugin 'sloppy')", "hooks are lifecycle hooks",
     ["'on_epoch_end' is not marked as a hook implementation", "@coupler.hookimpl"]),
    ("optimizer 'uphill' (plugin 'sloppy')", "steps downhill", ["went from 14 to", "step against the gradient"]),
    ("exporter 'outside' (plugin 'sloppy')", "output reloads", ["beside.json, outside the directory",
                                                                "write inside directory"]),
])
def test_a_sloppy_plugin_gets_each_broken_rule_with_the_component_and_the_fix(sloppy_failures, component, rule,
                                                                              fragments):
    message = sloppy_failures.get((component, rule))
    assert message is not None, f"no failure for {component} / {rule}; got {sorted(sloppy_failures)}"
    assert "\n    fix: " in message
    for fragment in fragments:
        assert fragment in message


def test_the_sloppy_plugins_model_refusing_a_task_is_a_skip_not_a_failure(sloppy_failures):
    assert not [key for key in sloppy_failures if key[0].startswith("model 'forgetful'") and "binary" in key[1]]


def test_a_plugin_that_is_not_installed_is_one_failure_listing_the_installed_ones():
    with pytest.raises(ConformanceError, match=r"no plugin named 'nowhere' is installed \(installed: .*datasets"):
        check_plugin("nowhere")


# --- plugin API versions ---------------------------------------------------------------------------------------


class Future:
    COUPLER_API = ">=2.0"

    @hookimpl
    def register_models(self, register):
        register("from_the_future", Forgetful, description="needs API 2")


def test_an_incompatible_plugin_is_skipped_and_says_which_api_it_needs(caplog):
    manager = PluginManager()
    with caplog.at_level(logging.WARNING, logger="coupler"):
        info = manager.load_object("future", Future())
    assert info.status == "incompatible"
    assert f"needs Coupler plugin API >=2.0, and this Coupler provides API {hookspecs.API_VERSION}" in info.error
    assert "from_the_future" not in manager.registry.names("model")
    assert "plugin 'future' ((in-process) ) is incompatible and is skipped" in caplog.text
    strict = PluginManager(strict=True)
    with pytest.raises(PluginError, match="is incompatible: it needs Coupler plugin API >=2.0"):
        strict.load_object("future", Future())


def test_a_range_that_is_no_version_range_fails_the_plugin_with_an_example():
    class Garbled:
        COUPLER_API = "version one"

    info = PluginManager().load_object("garbled", Garbled())
    assert info.status == "incompatible" and f"is not a version range; write it like \"{hookspecs.API_RANGE}\"" in info.error


def test_a_compatible_range_loads():
    class Current:
        COUPLER_API = f">={hookspecs.API_VERSION},<{int(hookspecs.API_VERSION.split('.')[0]) + 1}"

        @hookimpl
        def register_models(self, register):
            register("current", Forgetful, description="API 1")

    manager = PluginManager()
    assert manager.load_object("current", Current()).status == "ok"
    assert "current" in manager.registry.names("model")


def test_every_plugin_in_the_repository_declares_the_api_range_it_supports():
    root = Path(__file__).parents[1]
    modules = [*root.glob("core/src/coupler/builtin/[!_]*.py"), *root.glob("plugins/*/src/*/plugin.py"),
               root / "tests/plugins/coupler-nearest-centroid/src/coupler_nearest_centroid/__init__.py"]
    assert len(modules) >= 9
    assert not [str(m) for m in modules if "\nCOUPLER_API = " not in m.read_text()]


# --- the wheel of a plugin ships its config files (opt-in: check_plugin(..., wheel=...)) --------------------------


WHEELLESS_PLUGIN = '''\
from pathlib import Path

from coupler import hookimpl
from coupler.components import Metric

COUPLER_API = ">=1.0,<2"


@hookimpl
def register_metrics(register):
    register("wheelless", lambda: Metric("wheelless", lambda t, p, pr, k: 0.0, tasks=("regression",)),
             description="a metric whose config file the wheel leaves out")


@hookimpl
def register_config_dirs(register):
    register(Path(__file__).parent / "conf")
'''


def wheelless_project(root: Path) -> Path:
    """A plugin project whose pyproject has no package-data: its wheel lacks the metric's config file."""
    project = root / "wheelless"
    package = project / "src" / "coupler_wheelless"
    (package / "conf" / "metrics").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "plugin.py").write_text(WHEELLESS_PLUGIN)
    (package / "conf" / "metrics" / "wheelless.yaml").write_text("# @package metrics.wheelless\nname: wheelless\n")
    (project / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools>=64"]\nbuild-backend = "setuptools.build_meta"\n\n'
        '[project]\nname = "coupler-wheelless"\nversion = "0.1.0"\n\n'
        '[tool.setuptools.packages.find]\nwhere = ["src"]\n')
    return project


def wheel_check(project: Path, monkeypatch) -> Check:
    import importlib

    monkeypatch.syspath_prepend(str(project / "src"))
    for name in [m for m in sys.modules if m.startswith("coupler_wheelless")]:
        monkeypatch.delitem(sys.modules, name)
    manager = PluginManager()
    manager.load_builtins()
    manager.load_object("wheelless", importlib.import_module("coupler_wheelless.plugin"))
    checks = {str(c): c for c in plugin_checks("wheelless", manager=manager, wheel=project)}
    return checks["plugin:wheelless:wheel_ships_its_config_files"]


def test_the_wheel_rule_names_the_config_file_package_data_leaves_out_and_the_fix(tmp_path, monkeypatch):
    outcome = wheel_check(wheelless_project(tmp_path), monkeypatch).run()
    assert outcome is not None and not isinstance(outcome, str), outcome
    assert "lacks 1 config file(s) the plugin registers: coupler_wheelless/conf/metrics/wheelless.yaml" in outcome.problem
    assert outcome.fix == ('ship them as package data, in pyproject.toml: [tool.setuptools.package-data] '
                           'coupler_wheelless = ["conf/**/*.yaml"]')
    assert not (tmp_path / "wheelless" / "build").exists(), "the wheel is built from a copy of the project"


# --- the reload rule: exact by default, within a tolerance a model declares ---------------------------------------


class Drifting(Model):
    """Least squares whose ``load`` scales the weights by ``DRIFT``: a reload that measures slightly (or, with a
    large drift, very) differently."""

    DRIFT = 1 + 1e-9

    def __init__(self, task, seed):
        if task != "regression":
            raise CouplerError(f"model=drifting cannot do a {task} task")
        self.weights = None

    def fit(self, train, val, run):
        import numpy as np

        X = np.hstack([train.X, np.ones((len(train.X), 1))])
        self.weights = np.linalg.lstsq(X, train.y, rcond=None)[0]

    def predict(self, X):
        import numpy as np

        return np.hstack([X, np.ones((len(X), 1))]) @ self.weights

    def save(self, directory):
        import numpy as np

        np.save(Path(directory) / "weights.npy", self.weights)

    def load(self, directory):
        import numpy as np

        self.weights = np.load(Path(directory) / "weights.npy") * self.DRIFT


class Declared(Drifting):
    reload_tolerance = 1e-6


class Broken(Declared):
    DRIFT = 1.5


class Drifters:
    COUPLER_API = ">=1.0,<2"

    @hookimpl
    def register_models(self, register):
        for model in (Drifting, Declared, Broken):
            register(model.__name__.lower(), model, description="least squares reloaded with drifted weights")


@pytest.fixture(scope="module")
def drifters() -> PluginManager:
    manager = PluginManager()
    manager.load_builtins()
    manager.load_entry_points()
    manager.load_object("drifters", Drifters())
    return manager


def round_trip(manager: PluginManager, model: str):
    checks = {str(c): c for c in plugin_checks("drifters", manager=manager)}
    return checks[f"model:{model}:round_trip_regression"].run()


def test_a_reload_that_differs_by_noise_names_the_difference_and_the_tolerance_to_declare(drifters):
    failure = round_trip(drifters, "drifting")
    assert "more than exact equality" not in failure.problem, "the default tolerates the last bits of a double"
    assert re.search(r"they differ by \d\.\d+e-09, more than its reload_tolerance 1e-12$", failure.problem)
    assert "floating-point noise" in failure.fix and "reload_tolerance = 1e-08" in failure.fix
    assert "save()" not in failure.fix


def test_a_model_that_declares_its_reload_tolerance_passes_within_it(drifters):
    assert round_trip(drifters, "declared") is None


def test_a_reload_that_differs_beyond_noise_blames_save_and_load(drifters):
    failure = round_trip(drifters, "broken")
    assert "more than its reload_tolerance 1e-06" in failure.problem
    assert failure.fix.startswith("save every fitted attribute in save() and restore it in load()")


# --- on_run_end: a callback that writes into the sealed run is caught ----------------------------------------------


class LateWriter:
    @hookimpl
    def on_run_end(self, run, metrics):
        (run.directory / "late.txt").write_text("written after the seal")


class EarlyWriter:
    @hookimpl
    def on_evaluate_end(self, run, split, metrics):
        run.directory.mkdir(parents=True, exist_ok=True)
        (run.directory / f"{split}.txt").write_text(str(metrics))


class Writers:
    COUPLER_API = ">=1.0,<2"

    @hookimpl
    def register_callbacks(self, register):
        register("late_writer", LateWriter, description="writes into the run in on_run_end")
        register("early_writer", EarlyWriter, description="writes into the run in on_evaluate_end")


def test_a_callback_writing_into_the_sealed_run_in_on_run_end_fails_and_one_writing_before_passes(tmp_path):
    manager = PluginManager()
    manager.load_builtins()
    manager.load_entry_points()
    manager.load_object("writers", Writers())
    checks = {str(c): c for c in plugin_checks("writers", manager=manager)}
    failure = checks["callback:late_writer:receives_events"].run()
    assert "no longer verifies" in failure.problem and "late.txt" in failure.problem
    assert "on_run_end fires after the run directory is sealed" in failure.fix
    assert checks["callback:early_writer:receives_events"].run() is None


# --- schemas: defaults the schema allows, that build, from one source ---------------------------------------------


@dataclass
class SelfRefusingSchema:
    patience: int = param(0, help="epochs to wait", ge=1)


@dataclass
class ThresholdSchema:
    threshold: float = param(2.0, help="the score that counts", ge=0)


def thresholded(threshold: float):
    if threshold > 1:  # a rule the schema does not state: only the kit's override made it build
        raise CouplerError(f"callbacks.thresholded.threshold={threshold}: a score is at most 1")
    return Callback()


class Schooled:
    COUPLER_API = ">=1.2,<2"

    def __init__(self, conf: Path):
        self.conf = conf

    @hookimpl
    def register_callbacks(self, register):
        register("self_refusing", lambda patience: Callback(), description="a default its schema refuses",
                 schema=SelfRefusingSchema)
        register("thresholded", thresholded, description="defaults that do not build", schema=ThresholdSchema)
        register("doubled", lambda patience: Callback(), description="a schema and a config file",
                 schema=SelfRefusingSchema)

    @hookimpl
    def register_metrics(self, register):
        def unannotated_default(scale: int = None):
            return Metric("unannotated_default", lambda t, p, pr, k: 0.0, tasks=("regression",))

        register("unannotated_default", unannotated_default, description="a factory default its annotation refuses")

    @hookimpl
    def register_config_dirs(self, register):
        register(self.conf)


@pytest.fixture(scope="module")
def schema_checks(tmp_path_factory) -> dict[str, Check]:
    conf = tmp_path_factory.mktemp("conf")
    (conf / "callbacks").mkdir()
    (conf / "callbacks" / "doubled.yaml").write_text("# @package callbacks.doubled\nname: doubled\npatience: 3\n")
    manager = PluginManager()
    manager.load_builtins()
    manager.load_entry_points()
    manager.load_object("schooled", Schooled(conf))
    checks = plugin_checks("schooled", manager=manager,
                           overrides={"thresholded": ["callbacks.thresholded.threshold=0.5"]})
    return {str(check): check for check in checks}


@pytest.mark.parametrize("check, problem, fix", [
    ("callback:self_refusing:schema_defaults_pass_its_check",
     "its schema SelfRefusingSchema gives callbacks.self_refusing.patience the default 0, which the schema itself "
     "refuses: callbacks.self_refusing.patience=0 is not allowed: a whole number >= 1 (epochs to wait)",
     "give the field a default its type and rule allow"),
    ("metric:unannotated_default:schema_defaults_pass_its_check",
     "its factory's signature (the schema derived from it) gives metrics.unannotated_default.scale the default None, "
     "which the schema itself refuses: metrics.unannotated_default.scale=null is not allowed: a whole number",
     "`int | None` for a default of None"),
    ("callback:thresholded:factory_builds_from_schema_defaults",
     "built with its schema's defaults alone (the config the kit composed for it differs in threshold), calling the "
     "factory with the config of 'thresholded' raised CouplerError: callbacks.thresholded.threshold=2.0: a score is "
     "at most 1", "make ThresholdSchema's defaults a configuration that builds"),
    ("callback:doubled:one_source_of_its_config",
     "it registers schema=SelfRefusingSchema and the config file ", "/callbacks/doubled.yaml: the schema is the "
                                                                    "node's one source"),
], ids=["default-refused", "derived-default-refused", "defaults-do-not-build", "file-and-schema"])
def test_a_plugin_breaking_a_schema_rule_gets_the_rule_the_problem_and_the_fix(schema_checks, check, problem, fix):
    failure = schema_checks[check].run()
    assert isinstance(failure, Failure), f"{check} should fail; it gave {failure!r}"
    assert failure.problem.startswith(problem), failure.problem
    assert fix in failure.fix, failure.fix


def test_the_schema_rules_hold_for_a_plugin_that_keeps_them(schema_checks):
    # the ill-typed factory default of one component (scale: int = None) breaks no other component's composing
    assert schema_checks["callback:thresholded:config_composes"].run() is None
    assert schema_checks["callback:thresholded:schema_defaults_pass_its_check"].run() is None
    assert schema_checks["callback:thresholded:one_source_of_its_config"].run() is None
    assert schema_checks["callback:self_refusing:one_source_of_its_config"].run() is None
    assert "metric:unannotated_default:factory_builds_from_schema_defaults" not in schema_checks, \
        "a component without schema= has no registered defaults to build from"
