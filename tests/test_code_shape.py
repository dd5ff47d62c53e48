"""The shape of the core's code, read with ``ast``: no function over 60 lines, and no import cycle through the
plugin kit (the scaffold and the conformance kit import neither the CLI nor each other's importers)."""

from __future__ import annotations

import ast
from pathlib import Path

CORE = Path(__file__).parents[1] / "core" / "src" / "coupler"
LONGEST = 60
#: functions over LONGEST lines in modules being reworked elsewhere (issue 15): remove each once it is split
KNOWN_LONG: set[str] = set()


def functions(path: Path):
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield node


def long_functions() -> dict[str, int]:
    """``module.py:name`` -> lines, for every function of the core longer than ``LONGEST`` lines."""
    return {f"{path.relative_to(CORE).as_posix()}:{node.name}": node.end_lineno - node.lineno + 1
            for path in sorted(CORE.rglob("*.py")) for node in functions(path)
            if node.end_lineno - node.lineno + 1 > LONGEST}


def test_no_function_of_the_core_is_over_60_lines():
    assert {name: lines for name, lines in long_functions().items() if name not in KNOWN_LONG} == {}


def imports() -> dict[str, set[str]]:
    """module -> the ``coupler`` modules it imports, at the top or inside a function."""
    graph = {}
    for path in CORE.rglob("*.py"):
        module = ".".join(("coupler", *path.relative_to(CORE).with_suffix("").parts)).removesuffix(".__init__")
        graph[module] = {node.module for node in ast.walk(ast.parse(path.read_text()))
                         if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("coupler")}
    return graph


def reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    """The modules ``start``'s imports lead to, directly or through others."""
    seen, todo = set(), list(graph.get(start, ()))
    while todo:
        module = todo.pop()
        if module not in seen:
            seen.add(module)
            todo.extend(graph.get(module, ()))
    return seen


def test_reachable_follows_imports_through_other_modules():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert "a" in reachable(graph, "a") and "d" not in reachable(graph, "a")


def test_the_scaffold_and_the_conformance_kit_are_in_no_import_cycle():
    graph = imports()
    kit = ("coupler.scaffold", "coupler.conformance", "coupler.testing", "coupler.finished_run")
    assert [module for module in kit if module in reachable(graph, module)] == []
