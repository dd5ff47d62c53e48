"""Meta-tests: every hook is documented in its spec, in the docs, and exercised by a test."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest
from coupler import hookspecs

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
def test_every_hook_is_in_the_docs_and_in_a_test(hook):
    docs = "\n".join(p.read_text() for p in (ROOT / "docs").glob("*.md"))
    assert hook in docs, f"docs/ does not mention {hook}"
    tests = "\n".join(p.read_text() for p in (ROOT / "tests").rglob("test_*.py") if p.name != "test_hookspecs.py")
    assert hook in tests, f"no test exercises {hook}"
