"""Meta-tests: every hook is documented in its spec and in the docs, and fires: a plugin implementing every hook
specification the plugin manager knows (the core's and those plugins add) records each call in a representative
run, and pluggy's hook-call monitoring records the arguments each caller passed."""

from __future__ import annotations

import functools
import inspect
import types
from pathlib import Path

import pluggy
import pytest

from coupler import hookimpl, hookspecs
from coupler.context import RunContext
from coupler.errors import DataError
from coupler.plugin_manager import PluginManager
from coupler.testing import train_run

ROOT = Path(__file__).resolve().parent.parent
HOOKS = [name for name, fn in inspect.getmembers(hookspecs, inspect.isfunction)
         if hasattr(fn, f"{hookspecs.PROJECT}_spec")]


def test_there_are_registration_and_lifecycle_hooks():
    assert {"register_data_loaders", "register_models", "register_callbacks", "register_metrics",
            "register_exporters", "register_config_dirs"} <= set(HOOKS)
    assert {"add_hookspecs", "register_kinds", "register_config_groups"} <= set(HOOKS)
    assert {"on_run_start", "on_run_end", "on_fit_start", "on_fit_end", "on_epoch_end", "on_evaluate_end",
            "on_export"} <= set(HOOKS)


def test_the_core_names_no_engine_concept():
    """Engine concepts live in their engine: the torch engine's hooks are coupler-torch's (coupler_torch.hookspecs)."""
    import dataclasses
    import re

    from coupler import conformance
    from coupler.context import RunContext
    from coupler.registry import GROUPS

    assert not {"register_optimizers", "register_schedulers"} & set(HOOKS)
    engine_words = re.compile(r"optimi[sz]er|scheduler|trainer|ckpt|checkpoint|lightning|torch", re.IGNORECASE)
    assert not [f.name for f in dataclasses.fields(RunContext) if engine_words.search(f.name)]
    assert not [kind for kind in GROUPS if engine_words.search(kind)]
    code = inspect.getsource(conformance).replace(conformance.__doc__, "")  # the docstring points to coupler-torch
    assert not engine_words.findall(code)


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_has_a_docstring_with_params_and_return(hook):
    doc = inspect.getdoc(getattr(hookspecs, hook)) or ""
    if hook.startswith(("register_", "add_")):
        assert "Called once, when plugins are loaded." in doc, f"{hook}: say when it is called"
    else:
        first = doc.splitlines()[0] if doc else ""
        assert first.endswith(".") and len(first) > 20, f"{hook}: say when it fires"
    assert ":return:" in doc
    for parameter in inspect.signature(getattr(hookspecs, hook)).parameters:
        assert f":param {parameter}:" in doc, f"{hook}: document {parameter}"


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_is_in_the_docs(hook):
    docs = "\n".join(p.read_text() for p in (ROOT / "docs").glob("*.md"))
    assert hook in docs, f"docs/ does not mention {hook}"


# --- every hook fires, with the arguments its specification documents ---------------------------------------

#: a representative run: one that fires every lifecycle hook (epochs, evaluation, an exporter). A hook that no
#: run here fires (say, a new one an engine plugin adds) fails the test below until a run that fires it is added.
RUNS = [["data=iris", "model=xgboost", "model.num_boost_round=3", "exporters=[model_card]"]]


def hook_specifications(pm: pluggy.PluginManager) -> dict[str, pluggy.HookCaller]:
    """Every hook specification the manager knows: the core's and those plugins added."""
    return {name: caller for name, caller in vars(pm.hook).items()
            if isinstance(caller, pluggy.HookCaller) and caller.spec is not None}


def recorder(specifications: dict[str, pluggy.HookCaller], calls: list) -> object:
    """A plugin implementing every hook in ``specifications``: each call is appended to ``calls`` as ``(hook,
    {argument: value})``. Each implementation takes the specification's own parameters (``functools.wraps``
    gives pluggy the spec's signature), so it receives every documented argument."""

    def implementation(name: str, spec_function):
        argnames = specifications[name].spec.argnames

        @hookimpl
        @functools.wraps(spec_function)
        def record(*args):
            calls.append((name, dict(zip(argnames, args))))

        return record

    return types.SimpleNamespace(**{name: implementation(name, caller.spec.function)
                                    for name, caller in specifications.items()})


@pytest.fixture(scope="module")
def fired(tmp_path_factory) -> tuple[dict, list, list]:
    """The hook specifications, the recorder's calls (registration, then the runs') and pluggy's own record of
    the arguments each hook was called with (``add_hookcall_monitoring``)."""
    pytest.importorskip("coupler_xgboost")
    manager = PluginManager()
    manager.load_builtins()
    manager.load_entry_points()  # plugins may add hook specifications: the recorder implements those too
    specifications = hook_specifications(manager.hooks)
    calls: list[tuple[str, dict]] = []
    info = manager.load_object("hook_recorder", recorder(specifications, calls))
    assert info.status == "ok", info.error
    monitored: list[tuple[str, dict]] = []
    undo = manager.hooks.add_hookcall_monitoring(
        lambda name, implementations, kwargs: monitored.append((name, dict(kwargs))), lambda *args: None)
    try:
        for number, overrides in enumerate(RUNS):
            train_run(tmp_path_factory.mktemp("hooks"), *overrides, name=f"run{number}", manager=manager)
        failing = tmp_path_factory.mktemp("hooks")  # and one that fails once started (on_run_failed)
        (failing / "rows.csv").write_text("a,b\n1,2\n3,4\n")
        with pytest.raises(DataError, match="no such column"):
            train_run(failing, "data=csv", f"data.path={failing / 'rows.csv'}", "data.target=label", name="failed",
                      manager=manager)
    finally:
        undo()
    return specifications, calls, monitored


def test_every_registration_hook_is_called_once_when_plugins_load_with_a_register_function(fired):
    specifications, calls, _ = fired
    registration = sorted(name for name in specifications if name.startswith("register_"))
    assert registration, "no registration hook found"
    for name in registration:
        made = [arguments for hook, arguments in calls if hook == name]
        assert len(made) == 1, f"{name} was called {len(made)} times on a plugin loaded once"
        assert set(made[0]) == set(specifications[name].spec.argnames) and callable(made[0]["register"]), name


def test_every_lifecycle_hook_fires_in_a_run_with_its_documented_arguments(fired):
    specifications, calls, monitored = fired
    lifecycle = sorted(name for name in specifications if name.startswith("on_"))
    assert lifecycle, "no lifecycle hook found"
    # the hooks that are neither registration nor lifecycle hooks are questions the CLI asks outside a run; each
    # has a test of its own (resume_point: tests/test_plugin_manager.py, a third party's engine drives a resume)
    assert {name for name in specifications if not name.startswith(("register_", "add_", "on_"))} == {"resume_point"}
    received = {hook for hook, _ in calls}
    missing = [name for name in lifecycle if name not in received]
    assert not missing, f"no run of RUNS fires {missing}: add one that does"
    for hook, arguments in monitored:
        if hook in lifecycle:  # what the caller passed: exactly the documented arguments, none left out or added
            assert set(arguments) == set(specifications[hook].spec.argnames), (hook, sorted(arguments))
    for hook, arguments in calls:
        if hook in lifecycle:
            assert all(value is not None for value in arguments.values()), (hook, arguments)
            assert isinstance(arguments["run"], RunContext), hook


def test_lifecycle_hooks_fire_in_the_documented_order(fired):
    _, calls, _ = fired
    order = [hook for hook, _ in calls if not hook.startswith("register_")]
    assert order[-2:] == ["on_run_start", "on_run_failed"], "the failing run: started, then failed, nothing else"
    order = order[:-2]
    core = ["on_run_start", "on_fit_start", "on_epoch_end", "on_fit_end", "on_evaluate_end", "on_export",
            "on_run_end"]
    firsts = [order.index(hook) for hook in core]
    assert firsts == sorted(firsts), order
    assert order[-1] == "on_run_end" and order.count("on_run_start") == len(RUNS)
    assert order.count("on_epoch_end") >= 3 and order.count("on_evaluate_end") == 2 * len(RUNS), order
