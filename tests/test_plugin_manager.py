"""Plugin loading: built-ins through the same hooks, broken plugins isolated, duplicates and typos caught."""

from __future__ import annotations

import types

import pytest
from coupler import hookimpl
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
    with pytest.raises(Exception, match=r"data.pathh: data 'csv' has no parameter 'pathh'. Did you mean 'path'\?"):
        pm.get("data", "csv").build("data", {"name": "csv", "pathh": "x.csv"})
