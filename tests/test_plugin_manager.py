"""Plugin loading: built-ins through the same hooks, broken plugins isolated, duplicates and typos caught."""

from __future__ import annotations

import sys
import types

import pytest

from coupler import hookimpl, hookspec
from coupler.components import Model
from coupler.errors import PluginError
from coupler.plugin_manager import BUILTIN_PLUGINS, PluginManager
from coupler.registry import UnknownComponentError


def manager() -> PluginManager:
    pm = PluginManager()
    pm.load_builtins()
    return pm


def plugin(**hooks) -> types.ModuleType:
    """A plugin module holding ``hooks`` as hook implementations."""
    module = types.ModuleType("test_plugin")
    for name, fn in hooks.items():
        setattr(module, name, hookimpl(fn))
    return module


def test_builtins_register_through_the_hooks():
    pm = manager()
    assert [p.name for p in pm.plugins.values()] == [m.rsplit(".", 1)[-1] for m in BUILTIN_PLUGINS]
    assert all(p.status == "ok" and p.builtin for p in pm.plugins.values())
    assert {"iris", "wine", "breast_cancer", "digits", "diabetes", "csv", "parquet"} <= set(pm.registry.names("data"))
    assert pm.get("metric", "accuracy").plugin == "metrics"
    assert pm.get("callback", "early_stopping").plugin == "callbacks"


def test_a_plugin_that_raises_while_registering_is_rolled_back_and_reported():
    pm = manager()

    def register_models(register):
        register("half_registered", lambda **kw: None)
        raise RuntimeError("boom")

    info = pm.load_object("flaky", plugin(register_models=register_models), "coupler-flaky", "1.2")
    assert info.status == "failed" and "RuntimeError: boom" in info.error
    assert info.components == {}
    assert "half_registered" not in pm.registry.names("model")
    assert pm.hooks.get_plugin("flaky") is None
    # the others still work
    assert pm.get("data", "iris").plugin == "datasets"


def test_a_failed_plugin_is_reported_with_name_distribution_and_version(caplog):
    pm = manager()

    def register_models(register):
        raise ImportError("No module named 'missing_dependency'")

    pm.load_object("broken", plugin(register_models=register_models), "coupler-broken", "0.3")
    assert "plugin 'broken' (coupler-broken 0.3) failed to load" in caplog.text
    assert "missing_dependency" in caplog.text


def test_two_plugins_registering_one_name_is_an_error_naming_both():
    pm = manager()
    pm.load_object("first", plugin(register_models=lambda register: register("twin", lambda **kw: None)))
    second = pm.load_object("second", plugin(register_models=lambda register: register("twin", lambda **kw: None)))
    assert second.status == "failed"
    assert "'first'" in second.error and "'second'" in second.error and "twin" in second.error
    assert pm.get("model", "twin").plugin == "first"


def test_a_misspelled_hook_fails_the_plugin_loudly():
    pm = manager()
    info = pm.load_object("typo", plugin(register_model=lambda register: None))
    assert info.status == "failed" and "register_model" in info.error


def test_strict_mode_turns_a_failure_into_an_error():
    pm = PluginManager(strict=True)

    def register_models(register):
        raise RuntimeError("boom")

    with pytest.raises(PluginError, match="COUPLER_STRICT_PLUGINS"):
        pm.load_object("broken", plugin(register_models=register_models))


class FakeEntryPoint:
    """An entry point of the ``coupler`` group without a distribution, loading ``plugin``."""

    def __init__(self, name, plugin):
        self.name, self.dist, self._plugin = name, None, plugin

    def load(self):
        return self._plugin


def test_strict_mode_reports_every_failed_plugin_at_once(monkeypatch):
    from coupler import plugin_manager

    def raising(register):
        raise RuntimeError("boom")

    found = [FakeEntryPoint("first_broken", plugin(register_models=raising)),
             FakeEntryPoint("fine", plugin(register_metrics=lambda register: None)),
             FakeEntryPoint("second_broken", plugin(on_epoch_ends=lambda run, epoch, metrics: None))]
    monkeypatch.setattr(plugin_manager.metadata, "entry_points", lambda group: found)
    pm = PluginManager(strict=True)
    with pytest.raises(PluginError) as raised:
        pm.load_entry_points()
    message = str(raised.value)
    assert message.startswith("2 plugins failed (COUPLER_STRICT_PLUGINS is set, so these are errors): ")
    assert "1. plugin 'first_broken' (? ?) failed to load: RuntimeError: boom" in message
    assert "2. plugin 'second_broken' (? ?) failed to load: unknown hook 'on_epoch_ends'" in message
    assert pm.plugins["fine"].status == "ok", "the plugins between the failures still loaded"


@pytest.mark.parametrize("typo, meant", [("on_epoch_ends", "on_epoch_end"), ("register_model", "register_models"),
                                         ("on_run_ended", "on_run_end")])
def test_an_unknown_hook_names_the_closest_hook(typo, meant):
    info = manager().load_object("typo", plugin(**{typo: lambda register=None, **kwargs: None}))
    assert info.status == "failed"
    assert info.error.startswith(f"unknown hook {typo!r}: no hook of Coupler has that name. Did you mean {meant!r}?")


@pytest.mark.parametrize("header", ["", "# @package callbacks\n", "# @package callbacks.other\n"])
def test_a_list_group_config_without_its_package_header_fails_the_plugin_naming_the_line_to_add(tmp_path, header):
    (tmp_path / "callbacks").mkdir()
    (tmp_path / "callbacks" / "jsonlog.yaml").write_text(f"{header}# a log\nname: jsonlog\npath: log.jsonl\n")
    info = manager().load_object("jsonlog", plugin(register_config_dirs=lambda register: register(tmp_path)))
    assert info.status == "failed"
    assert "callbacks/jsonlog.yaml" in info.error
    assert "add it as its first line" in info.error and "'# @package callbacks.jsonlog'" in info.error


def test_a_list_group_config_with_its_package_header_loads(tmp_path):
    (tmp_path / "metrics").mkdir()
    (tmp_path / "metrics" / "mine.yaml").write_text("# what it measures\n# @package metrics.mine\nname: mine\n")
    info = manager().load_object("mine", plugin(register_config_dirs=lambda register: register(tmp_path)))
    assert info.status == "ok" and info.config_dirs == [str(tmp_path.resolve())]


def test_disabling_a_plugin_makes_its_components_unusable_and_says_why():
    pm = manager()
    pm.disable(["datasets"])
    assert pm.plugins["datasets"].status == "disabled"
    with pytest.raises(UnknownComponentError, match="provided by plugin 'datasets', which is disabled"):
        pm.get("data", "iris")
    with pytest.raises(PluginError, match="not an installed plugin"):
        pm.disable(["no_such_plugin"])


def test_unknown_component_lists_choices_with_plugins_and_the_closest():
    pm = manager()
    with pytest.raises(UnknownComponentError) as error:
        pm.get("data", "irsi")
    message = str(error.value)
    assert "Did you mean 'iris'?" in message
    assert "breast_cancer" in message and "(plugin: datasets)" in message


def test_factory_keys_are_checked_against_its_signature():
    pm = manager()
    with pytest.raises(Exception, match=r"data.pathh='x.csv' is not allowed: data 'csv' has no parameter 'pathh'. "
                                        r"Did you mean 'path'\?"):
        pm.get("data", "csv").build("data", {"name": "csv", "pathh": "x.csv"})


# --- plugins cannot hurt the host or each other (issue #13, point 6) ---------------------------------------


def forest_plugin(*names: str) -> types.ModuleType:
    """A plugin registering the models ``names``."""
    return plugin(register_models=lambda register: [register(name, lambda **kw: None) for name in names])


@pytest.mark.parametrize("order", ["first-party-first", "third-party-first"])
def test_a_clash_fails_the_third_party_plugin_whatever_the_load_order(caplog, order):
    pm = manager()
    loads = [("sklearn", forest_plugin("random_forest", "svm"), "coupler-sklearn", "0.1.0"),
             ("forest", forest_plugin("a_forest_only", "random_forest"), "coupler-a-forest", "0.0.1")]
    for name, module, distribution, version in loads if order == "first-party-first" else loads[::-1]:
        pm.load_object(name, module, distribution, version)
    sklearn, forest = pm.plugins["sklearn"], pm.plugins["forest"]
    assert sklearn.status == "ok" and sorted(sklearn.components["model"]) == ["random_forest", "svm"]
    assert pm.get("model", "random_forest").plugin == "sklearn"
    assert forest.status == "failed" and forest.components == {}
    assert "a_forest_only" not in pm.registry.names("model"), "the loser's other components are rolled back"
    assert pm.hooks.get_plugin("forest") is None and pm.hooks.get_plugin("sklearn") is not None
    assert forest.error == (
        "model 'random_forest' is registered by two plugins, 'sklearn' (coupler-sklearn 0.1.0) and 'forest' "
        "(coupler-a-forest 0.0.1): 'sklearn' keeps it (built-ins first, then Coupler's own plugins, then the others "
        "by distribution name). Uninstall coupler-a-forest or disable it (COUPLER_DISABLE_PLUGINS=forest); to use its "
        "model instead, COUPLER_DISABLE_PLUGINS=sklearn.")
    assert "plugin 'forest' (coupler-a-forest 0.0.1) failed to load and is skipped" in caplog.text


def test_a_clash_between_third_parties_goes_by_distribution_name_and_never_takes_a_builtins_name():
    for order in (1, -1):
        pm = manager()
        for name, distribution in [("zeta", "coupler-zeta"), ("alpha", "coupler-alpha")][::order]:
            pm.load_object(name, forest_plugin("twin"), distribution, "1.0")
        assert pm.get("model", "twin").plugin == "alpha" and pm.plugins["zeta"].status == "failed"
    pm = manager()
    info = pm.load_object("aaa", plugin(register_metrics=lambda register: register("accuracy", lambda: None)),
                          "coupler-aaa", "1.0")
    assert info.status == "failed" and pm.get("metric", "accuracy").plugin == "metrics"


def test_a_displaced_plugin_under_strict_plugins_is_an_error_naming_it():
    pm = PluginManager(strict=True)
    pm.load_object("forest", forest_plugin("random_forest"), "coupler-a-forest", "0.0.1")
    with pytest.raises(PluginError, match=r"^plugin 'forest' \(coupler-a-forest 0.0.1\) failed to load: model "
                                          r"'random_forest' is registered by two plugins"):
        pm.load_object("sklearn", forest_plugin("random_forest"), "coupler-sklearn", "0.1.0")
    assert pm.get("model", "random_forest").plugin == "sklearn"


def test_first_party_is_this_repositorys_plugins():
    from pathlib import Path

    import tomllib

    from coupler.plugin_manager import FIRST_PARTY

    root = Path(__file__).parents[1] / "plugins"
    names = {tomllib.loads(p.read_text())["project"]["name"] for p in root.glob("*/pyproject.toml")}
    assert FIRST_PARTY == names


def test_sys_exit_while_registering_fails_the_plugin_and_keyboard_interrupt_still_stops():
    pm = manager()

    def exits(register):
        register("half", lambda **kw: None)
        raise SystemExit(4)

    info = pm.load_object("exits", plugin(register_models=exits), "coupler-exits", "0.0.1")
    assert info.status == "failed" and info.error == "it called sys.exit(4) while loading"
    assert "half" not in pm.registry.names("model")

    def interrupted(register):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        pm.load_object("interrupted", plugin(register_models=interrupted))


def test_an_import_is_waited_for_at_most_the_timeout_and_its_outcome_is_kept():
    import threading

    from coupler.plugin_manager import ImportTimeout, PluginInfo, _bounded

    info = PluginInfo("slow", "coupler-slow", "1.0")
    release = threading.Event()
    try:
        with pytest.raises(ImportTimeout, match=r"did not finish within 0.2 s \(COUPLER_PLUGIN_IMPORT_TIMEOUT\).*"
                                                r"COUPLER_DISABLE_PLUGINS=slow"):
            _bounded(release.wait, 0.2, info)
    finally:
        release.set()
    assert _bounded(lambda: "the plugin", 5, info) == "the plugin"
    with pytest.raises(SystemExit):
        _bounded(lambda: sys.exit(3), 5, info)


@pytest.mark.parametrize("value", ["abc", "0", "-1", "inf", "nan"])
def test_an_import_timeout_that_is_not_a_positive_number_is_refused(value):
    from coupler.errors import ConfigError
    from coupler.plugin_manager import DEFAULT_IMPORT_TIMEOUT, import_timeout

    with pytest.raises(ConfigError, match="COUPLER_PLUGIN_IMPORT_TIMEOUT=.* a number of seconds above 0"):
        import_timeout(value)
    assert import_timeout(None) == import_timeout(" ") == DEFAULT_IMPORT_TIMEOUT and import_timeout("2.5") == 2.5


# --- plugin code that raises during a run: coupler.plugin_faults ------------------------------------------


@pytest.fixture(autouse=True)
def traceback_files_in_tmp_path(tmp_path, monkeypatch):
    """Traceback files written outside a run go to the test's own directory."""
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))


def test_a_hook_exception_names_the_implementation_that_raised_even_behind_a_decorator(tmp_path):
    import functools

    from coupler.plugin_faults import BlamedHooks, PluginCodeError

    def logged(function):
        @functools.wraps(function)
        def wrapper(*args, **kwargs):
            return function(*args, **kwargs)
        return wrapper

    def quiet(run):
        return None

    def raises(run):
        raise ZeroDivisionError("division by zero")

    pm = manager()
    pm.load_object("quiet", plugin(on_run_start=logged(quiet)), "coupler-quiet", "1.0")
    pm.load_object("loud", plugin(on_run_start=logged(raises)), "coupler-loud", "2.0")
    with pytest.raises(PluginCodeError) as error:
        BlamedHooks(pm, tmp_path).on_run_start(run=None)
    assert str(error.value).startswith("plugin 'loud' (coupler-loud 2.0) failed in on_run_start: "
                                       "ZeroDivisionError: division by zero; the traceback is in ")
    assert "Traceback (most recent call last)" in error.value.traceback_file.read_text()
    assert isinstance(error.value.__cause__, ZeroDivisionError)


@pytest.mark.parametrize("exception", [KeyboardInterrupt, SystemExit, PluginError])
def test_interruptions_exits_and_coupler_errors_from_plugin_code_are_never_wrapped(exception):
    from coupler.plugin_faults import BlamedHooks, BlamedModel

    def raises(*args, **kwargs):
        raise exception("as raised")

    pm = manager()
    pm.load_object("raiser", plugin(on_run_start=raises))
    with pytest.raises(exception, match="as raised"):
        BlamedHooks(pm).on_run_start(run=None)
    with pytest.raises(exception, match="as raised"):
        BlamedModel(types.SimpleNamespace(predict=raises), "model 'm'").predict([[1.0]])


def test_a_model_proxy_blames_predict_proba_and_leaves_the_rest_to_the_model():
    from coupler.plugin_faults import BlamedModel, PluginCodeError

    model = types.SimpleNamespace(supports_proba=True, predict=lambda X: [0] * len(X),
                                  predict_proba=lambda X: [][5])
    blamed = BlamedModel(model, "model 'm' (plugin p, coupler-p 1.0)")
    assert blamed.supports_proba and blamed.predict([[1.0]]) == [0]
    with pytest.raises(PluginCodeError, match=r"^model 'm' \(plugin p, coupler-p 1.0\) failed in predict_proba: "
                                              r"IndexError: list index out of range; the traceback is in "):
        blamed.predict_proba([[1.0]])


def test_the_error_keeps_the_plugins_own_frames_for_tools_that_point_at_its_line():
    import traceback

    from coupler.plugin_faults import PluginCodeError, blamed

    def plugin_fit():
        raise ValueError("boom")

    with pytest.raises(PluginCodeError) as error:
        with blamed("model 'm' (plugin p, coupler-p 1.0)", "fit"):
            plugin_fit()
    assert traceback.extract_tb(error.value.__traceback__)[-1].name == "plugin_fit"


# --- a plugin grows the surface: its own hooks, component kinds and config groups (as the torch engine does) ---


@hookspec
def register_sharpeners(register):
    """Register sharpeners, selected by ``sharpener=NAME``."""


#: a third party's hook specifications (a module, as coupler_torch.hookspecs), added with the add_hookspecs hook
SharpenerSpecs = types.ModuleType("coupler_sharpeners.hookspecs")
SharpenerSpecs.register_sharpeners = register_sharpeners
del register_sharpeners


class SharpModel(Model):
    """A model that uses the plugin's sharpener: it builds it from the registry and the run's config node."""

    uses_sharpener = True

    def __init__(self, task, seed):
        self.sharpener = None

    def fit(self, train, val, run):
        node = run.config["sharpener"] or {"name": "whetstone"}
        run.config["sharpener"] = node  # what trained it goes into config.yaml
        self.sharpener = run.registry.get("sharpener", node["name"]).build("sharpener", node)
        self.majority = int(np.bincount(train.y).argmax())

    def predict(self, X):
        return np.full(len(X), self.majority)

    def save(self, directory):
        (directory / "majority.txt").write_text(str(self.majority))

    def load(self, directory):
        self.majority = int((directory / "majority.txt").read_text())


np = pytest.importorskip("numpy")


def sharpener_plugin(config_dir) -> types.ModuleType:
    module = plugin(
        add_hookspecs=lambda register: register(SharpenerSpecs),
        register_kinds=lambda register: register("sharpener", group="sharpener", hook="register_sharpeners",
                                                 used_by="uses_sharpener", contract="a (stone, grit) pair"),
        register_config_groups=lambda register: register("polish", default="light"),
        register_config_dirs=lambda register: register(config_dir),
        register_models=lambda register: register("sharp", SharpModel, description="majority class, sharpened"),
        register_sharpeners=lambda register: register("whetstone", lambda grit=400: ("whetstone", grit),
                                                      description="a whetstone"),
    )
    module.COUPLER_API = ">=1.1,<2"
    return module


@pytest.fixture
def sharpened(tmp_path):
    (tmp_path / "conf" / "polish").mkdir(parents=True)
    (tmp_path / "conf" / "polish" / "light.yaml").write_text("level: 1\n")
    (tmp_path / "conf" / "polish" / "mirror.yaml").write_text("level: 9\n")
    pm = manager()
    info = pm.load_object("sharpeners", sharpener_plugin(tmp_path / "conf"), distribution="coupler-sharpeners")
    assert info.status == "ok", info.error
    return pm


def test_a_plugin_adds_a_hook_a_kind_and_a_group_that_work_like_the_cores(sharpened, tmp_path, capsys, monkeypatch):
    import yaml

    from coupler import cli
    from coupler.config import help_template
    from coupler.testing import train_run

    monkeypatch.setattr("coupler.plugin_manager.get_plugin_manager", lambda: sharpened)
    cli.plugins(as_json=False)
    listing = capsys.readouterr().out
    assert "declares:  sharpener, polish group" in listing and "sharpener: whetstone" in listing
    assert "sharpener: whetstone (sharpeners)" in help_template(sharpened)
    assert "polish: light (sharpeners), mirror (sharpeners)" in help_template(sharpened)
    with pytest.raises(UnknownComponentError, match="unknown sharpener 'whetstome'. Did you mean 'whetstone'"):
        train_run(tmp_path, "model=sharp", "sharpener=whetstome", manager=sharpened)

    metrics, run_dir = train_run(tmp_path, "model=sharp", "sharpener=whetstone", "sharpener.grit=1000",
                                 "polish=mirror", manager=sharpened)
    saved = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert saved["sharpener"] == {"name": "whetstone", "grit": 1000} and saved["polish"] == {"level": 9}
    assert metrics["test"]["accuracy"] > 0


def test_a_kind_a_model_does_not_use_is_refused_before_any_data_is_read(sharpened, tmp_path):
    from coupler.config import ConfigError
    from coupler.testing import train_run

    sharpened.load_object("blunt", plugin(register_models=lambda register: register("blunt", SharpModel)))
    SharpModel.uses_sharpener = False
    try:
        with pytest.raises(ConfigError, match="model 'blunt' does not use a sharpener .* remove sharpener="):
            train_run(tmp_path, "model=blunt", "sharpener=whetstone", manager=sharpened)
    finally:
        SharpModel.uses_sharpener = True


def test_a_kind_that_takes_a_cores_group_fails_its_plugin_and_the_host_goes_on(caplog):
    pm = manager()
    info = pm.load_object("greedy", plugin(
        add_hookspecs=lambda register: register(SharpenerSpecs),
        register_kinds=lambda register: register("sharpener", group="model", hook="register_sharpeners")))
    assert info.status == "failed" and "'model' is taken by kind 'model'" in info.error
    assert "plugin 'greedy'" in caplog.text
    assert "sharpener" not in pm.registry.kinds and pm.get("data", "iris").plugin == "datasets"


def test_a_plugin_implementing_a_hook_nobody_added_fails_by_name():
    pm = manager()
    info = pm.load_object("early", plugin(register_sharpeners=lambda register: None))
    assert info.status == "failed" and "register_sharpeners" in info.error


def test_the_default_choice_goes_by_precedence_whatever_the_load_order():
    pm = manager()
    assert pm.default_choice("data") == "iris"  # the core's data sets offer it
    assert pm.default_choice("model") is None  # the core names no model
    pm.load_object("moons", plugin(register_data_loaders=lambda register: register("moons", dict, default=True)),
                   distribution="coupler-moons")
    assert pm.default_choice("data") == "iris", "a built-in's offer comes first"
    pm.load_object("zeta", plugin(register_models=lambda register: register("zeta", dict, default=True)),
                   distribution="coupler-zeta")
    pm.load_object("alpha", plugin(register_models=lambda register: register("alpha", dict, default=True)),
                   distribution="coupler-alpha")
    assert pm.default_choice("model") == "alpha", "of two third parties, the first distribution by name"


def test_with_no_model_installed_train_says_what_to_install():
    from coupler.config import check_overrides
    from coupler.errors import CouplerError

    with pytest.raises(CouplerError, match=r"^no model is installed: pip install coupler-sklearn \(or another"):
        check_overrides([], manager())


def test_an_engine_names_its_resume_point_and_the_core_keeps_that_entry_for_a_resume(tmp_path, monkeypatch):
    from coupler import train_app
    from coupler.errors import CouplerError

    class Engine:
        @hookimpl
        def resume_point(self, directory):
            return directory / "state" / "progress.json"

    pm = manager()
    pm.load_object("engine", Engine())
    monkeypatch.setattr("coupler.plugin_manager.get_plugin_manager", lambda: pm)
    run = tmp_path / "run"
    (run / "state").mkdir(parents=True)
    (run / "overrides.yaml").write_text("- data=wine\n")
    with pytest.raises(CouplerError, match="holds no state/progress.json to continue from"):
        train_app._check_resumable(run, "run")
    (run / "state" / "progress.json").write_text("{}")
    (run / "metrics.json").write_text("{}")  # written by the interrupted run before it stopped
    train_app._check_resumable(run, "run")  # state/ is the engine's entry, not a stranger's
    train_app._prepare_resume(run)
    assert sorted(p.name for p in run.iterdir()) == ["overrides.yaml", "state"]


def test_a_group_whose_default_option_has_no_file_fails_its_plugin_not_every_run(tmp_path):
    (tmp_path / "conf").mkdir()  # no polish/light.yaml: every run would compose polish=light and fail
    pm = manager()
    info = pm.load_object("sharpeners", sharpener_plugin(tmp_path / "conf"), distribution="coupler-sharpeners")
    assert info.status == "failed" and "polish/light.yaml" in info.error and "package data" in info.error
    assert "polish" not in pm.registry.setting_groups and "sharpener" not in pm.registry.kinds


def test_an_engine_whose_resume_point_raises_is_named_and_ignored(tmp_path, monkeypatch, caplog):
    from coupler import train_app

    class Broken:
        @hookimpl
        def resume_point(self, directory):
            raise RuntimeError("disk on fire")

    class Engine:
        @hookimpl
        def resume_point(self, directory):
            return directory / "last.state"

    pm = manager()
    pm.load_object("broken_engine", Broken())
    pm.load_object("engine", Engine())
    monkeypatch.setattr("coupler.plugin_manager.get_plugin_manager", lambda: pm)
    (tmp_path / "last.state").write_text("{}")
    assert train_app.resume_point(tmp_path) == tmp_path / "last.state"
    assert "plugin 'broken_engine' failed in resume_point (RuntimeError: disk on fire)" in caplog.text
