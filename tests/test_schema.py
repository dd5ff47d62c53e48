"""Component schemas (``coupler.schema``): one dataclass is the source of a component's parameters, their checks,
its Hydra node and its help."""

from __future__ import annotations

import types
from dataclasses import dataclass
from typing import Annotated

import pytest

from coupler import hookimpl
from coupler.config import compose, parameter_listing
from coupler.errors import ConfigError, CouplerError
from coupler.plugin_manager import PluginManager
from coupler.schema import Rule, check_node, markdown_table, param


@dataclass
class Inner:
    extra_keys = "the library"

    rate: float = param(0.1, help="step size", gt=0, le=1)
    kind: str = param("fast", help="how", choices=("fast", "slow"))


@dataclass
class Tiny:
    size: int = param(8, help="units per layer", ge=1)
    label: str | None = param(None, help="a name to show")
    inner: Inner = param(default_factory=Inner, help="passed on")


def build_tiny(task, seed, size, label, inner):
    from coupler.components import Model

    class Built(Model):
        def __init__(self):
            self.size, self.label, self.inner = size, label, inner

    return Built()


def manager() -> PluginManager:
    pm = PluginManager()
    pm.load_builtins()

    def register_models(register):
        register("tiny", build_tiny, schema=Tiny, default=True)

    module = types.ModuleType("tiny_plugin")
    module.register_models = hookimpl(register_models)
    pm.load_object("tiny", module, "coupler-tiny", "1.0")
    return pm


@pytest.mark.parametrize("node, message", [
    ({"size": "8"}, "model.size='8' is not allowed: a whole number (units per layer)"),
    ({"size": 0}, "model.size=0 is not allowed: a whole number >= 1 (units per layer)"),
    ({"size": True}, "model.size=true is not allowed: a whole number (units per layer)"),
    ({"inner": {"rate": 2}}, "model.inner.rate=2 is not allowed: a number > 0 and <= 1 (step size)"),
    ({"inner": {"kind": "medium"}}, "model.inner.kind='medium' is not allowed: one of fast, slow (how)"),
    ({"sise": 3}, "model.sise=3 is not allowed: model 'tiny' has no parameter 'sise'. Did you mean 'size'? "
                  "Its parameters are: size, label, inner"),
], ids=["type", "range", "bool-is-no-int", "nested-range", "choices", "unknown-key"])
def test_a_value_the_schema_does_not_allow_is_one_line_naming_key_value_and_what_is_allowed(node, message):
    with pytest.raises(ConfigError) as error:
        check_node(node, Tiny, "model", what="model 'tiny'")
    assert str(error.value) == message


def test_a_nested_schema_with_extra_keys_passes_keys_it_does_not_list_and_a_required_field_must_be_set():
    check_node({"inner": {"rate": 0.5, "momentum": 0.9}}, Tiny, "model")  # momentum: for the library

    @dataclass
    class Needs:
        path: str = param(help="the file")

    with pytest.raises(ConfigError, match=r"data.path='\?\?\?' is not allowed: a value is required"):
        check_node({}, Needs, "data")


def test_the_command_line_is_checked_against_the_schema_before_hydra_composes_and_hydra_keeps_its_key_checks():
    pm = manager()
    config = compose(["model.size=3", "model.inner.rate=0.5", "+model.inner.momentum=0.9"], pm)
    assert config["model"] == {"name": "tiny", "size": 3, "label": None,
                               "inner": {"rate": 0.5, "kind": "fast", "momentum": 0.9}}
    with pytest.raises(ConfigError, match=r"model.inner.rate=0 is not allowed: a number > 0 and <= 1 \(step size\)"):
        compose(["model.inner.rate=0"], pm)
    with pytest.raises(ConfigError, match=r"model of model=tiny has no key 'sise' .*Did you mean 'size'\?"):
        compose(["model.sise=3"], pm)


def test_the_component_is_built_with_the_schemas_defaults_under_what_the_config_sets():
    pm = manager()
    built = pm.get("model", "tiny").build("model", {"name": "tiny", "inner": {"rate": 0.2}}, task="binary", seed=0)
    assert (built.size, built.label, built.inner) == (8, None, {"rate": 0.2, "kind": "fast"})
    with pytest.raises(ConfigError, match="model.size=-1 is not allowed"):
        pm.get("model", "tiny").build("model", {"name": "tiny", "size": -1}, task="binary", seed=0)


def test_a_schema_the_factory_cannot_take_or_that_is_no_dataclass_fails_its_plugin_by_name():
    pm = PluginManager()

    def register_models(register):
        register("broken", lambda task, seed, size: None, schema=Tiny)

    module = types.ModuleType("broken_plugin")
    module.register_models = hookimpl(register_models)
    info = pm.load_object("broken", module, "coupler-broken", "1.0")
    assert info.status == "failed" and "the factory takes no parameter 'label' of its schema Tiny" in info.error
    with pytest.raises(CouplerError, match="schema= must be a dataclass"):
        from coupler.registry import Component, Registry

        Registry().add(Component("model", "x", build_tiny, "p", schema=dict))


def test_help_and_docs_tables_come_from_the_schema():
    pm = manager()
    lines = parameter_listing(pm, {"model": "tiny"})
    assert "  model.size = 8  a whole number >= 1: units per layer" in lines
    assert "  model.inner.kind = fast  one of fast, slow: how" in lines
    assert "  +model.inner.NAME=VALUE: any other key goes to the library" in lines
    table = markdown_table(Tiny, "model")
    assert "| `model.inner.rate` | `0.1` | a number > 0 and <= 1 | step size |" in table.splitlines()


def test_a_factory_without_a_schema_is_checked_by_its_annotations():
    def build(task, seed, width: Annotated[int, Rule("units", ge=1)] = 4, name_of: Annotated[str, "a label"] = "x"):
        return None

    from coupler.registry import Component

    component = Component("model", "annotated", build, "plugin")
    with pytest.raises(ConfigError, match=r"model.width=0 is not allowed: a whole number >= 1 \(units\)"):
        component.check("model", {"width": 0})
    with pytest.raises(ConfigError, match=r"model.name_of=3 is not allowed: a label"):
        component.check("model", {"name_of": 3})


@dataclass
class Loop:
    epochs: int = param(10, help="passes over the data", ge=1)
    device: str = param("cpu", help="where to train", choices=("cpu", "cuda"))


def test_a_settings_group_with_a_schema_needs_no_file_and_is_checked_like_a_component():
    pm = manager()

    def register_config_groups(register):
        register("loop", default="default", description="a training loop's settings", schema=Loop)

    module = types.ModuleType("loop_plugin")
    module.register_config_groups = hookimpl(register_config_groups)
    assert pm.load_object("loop", module, "coupler-loop", "1.0").status == "ok"
    assert compose(["loop.epochs=3"], pm)["loop"] == {"epochs": 3, "device": "cpu"}
    with pytest.raises(ConfigError, match=r"loop.device='tpu' is not allowed: one of cpu, cuda \(where to train\)"):
        compose(["loop.device=tpu"], pm)
    with pytest.raises(ConfigError, match=r"loop of loop=default has no key 'epoch' .*Did you mean 'epochs'\?"):
        compose(["loop.epoch=3"], pm)



def test_every_value_a_sweep_lists_is_checked_before_its_first_job():
    from coupler.config import check_overrides

    pm = manager()
    check_overrides(["model.inner.rate=0.1,0.5", "model.size=interval(1,10)"], pm)
    with pytest.raises(ConfigError, match=r"model.inner.rate=2 is not allowed"):
        check_overrides(["model.inner.rate=0.1,2"], pm)


def test_a_node_that_names_no_component_is_left_to_its_engine():
    """``+optimizer.lr=0.01`` sets a key on the model's default optimizer: the node has no name to check it by."""
    from coupler.config import check_components

    pm = manager()
    check_components({"model": {"size": 3}}, pm.registry)
    with pytest.raises(ConfigError, match="model.size=0 is not allowed"):
        check_components({"model": {"name": "tiny", "size": 0}}, pm.registry)


def test_plus_adds_only_a_key_the_chosen_config_does_not_list():
    """(With no option chosen, as ``+optimizer.lr=0.01`` on the model's default optimizer, ``+`` is left to Hydra:
    plugins/transformer's MiniLM fine-tuning test runs that.)"""
    from coupler.config import check_overrides

    pm = manager()
    check_overrides(["+model.extra=1"], pm)  # model=tiny lists no extra: added, then its schema refuses it
    with pytest.raises(ConfigError, match="lists model.size already: set it without"):
        check_overrides(["+model.size=3"], pm)


def test_an_interpolation_is_checked_once_resolved_not_as_text():
    from coupler.config import check_overrides

    check_overrides(["model.size=${seed}"], manager())
