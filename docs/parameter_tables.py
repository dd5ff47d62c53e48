"""Rewrite the docs' parameter tables from the components' schemas: ``python docs/parameter_tables.py``.

A parameter table stands between two marker comments naming the component (its config group and name)::

    <!-- parameters: model=xgboost -->
    | key | default | allowed | meaning |
    ...
    <!-- /parameters -->

and holds ``coupler.schema.markdown_table(component.parameters, prefix)`` of that component as registered with
every installed plugin (``coupler.plugin_manager.get_plugin_manager()``): the prefix is the group (``model``), or
``GROUP.NAME`` for a group that takes a list (``callbacks.early_stopping``). Several components that take the same
parameters share one table (``<!-- parameters: model=lstm model=gru -->``). ``<!-- parameters: settings -->`` is the
core's own settings (``coupler.settings``), ``<!-- parameters: GROUP -->`` a settings group that has a schema. The script rewrites every table in
place and names the pages it changed; ``tests/test_docs.py`` fails, naming this command, when a table differs
from its schema. Run it after changing a schema (a parameter, its default, range, choices or help).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COMMAND = "python docs/parameter_tables.py"
#: a table between its markers: group 1 names the components, group 2 is the table
MARKED = re.compile(r"^<!-- parameters: ([^>]*?) -->\n(.*?)^<!-- /parameters -->$", re.MULTILINE | re.DOTALL)


def pages() -> list[Path]:
    """The Markdown pages that may hold parameter tables: the READMEs and docs/."""
    return [ROOT / "README.md", ROOT / "core" / "README.md", ROOT / "benchmarks" / "README.md",
            *sorted((ROOT / "docs").glob("*.md")), *sorted((ROOT / "plugins").glob("*/README.md"))]


def table(choices: str, manager) -> str:
    """The table of the components a marker names (``model=lstm model=gru``): one table that all of them give."""
    tables = {choice: component_table(choice, manager) for choice in choices.split()}
    if len(set(tables.values())) != 1:
        raise SystemExit(f"<!-- parameters: {choices} -->: these components take different parameters; give each "
                         f"its own table")
    return next(iter(tables.values()))


def component_table(choice: str, manager) -> str:
    """``markdown_table`` of the component ``GROUP=NAME`` under its config key."""
    from coupler.errors import CouplerError
    from coupler.schema import markdown_table

    group, _, name = choice.partition("=")
    registry = manager.registry
    if choice == "settings":  # the core's own settings
        from coupler.settings import CoreSettings

        return markdown_table(CoreSettings, "")
    if group in registry.setting_groups and not name and registry.setting_groups[group].schema is not None:
        return markdown_table(registry.setting_groups[group].schema, group)
    if group not in registry.kind_of_group or not name:
        raise SystemExit(f"<!-- parameters: {choice} -->: name a component as GROUP=NAME; groups are "
                         f"{', '.join(sorted(registry.kind_of_group))}")
    try:
        component = registry.get(registry.kind_of_group[group], name)
    except CouplerError as error:
        raise SystemExit(f"<!-- parameters: {choice} -->: {error} (is its plugin installed?)") from None
    prefix = f"{group}.{name}" if group in registry.list_groups else group
    return markdown_table(component.parameters, prefix)


def marked_tables(text: str) -> list[tuple[str, str]]:
    """``(components, table as written)`` of every marked table of a page."""
    return [(choices, written) for choices, written in MARKED.findall(text)]


def regenerated(text: str, manager) -> str:
    """The page with every marked table replaced by the one its schema gives."""
    return MARKED.sub(lambda m: f"<!-- parameters: {m[1]} -->\n{table(m[1], manager)}\n<!-- /parameters -->",
                      text)


def main() -> int:
    from coupler.plugin_manager import get_plugin_manager

    manager = get_plugin_manager()
    for page in pages():
        if not page.is_file():
            continue
        text = page.read_text(encoding="utf-8")
        new = regenerated(text, manager)
        if new != text:
            page.write_text(new, encoding="utf-8")
            print(f"rewrote the parameter tables of {page.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
