"""The docs' reference tables say what the code says: the hook tables of docs/plugins.md list exactly the hook
specifications (the core's and coupler-torch's), its Model capability table exactly the capabilities
``coupler.components.Model`` declares, each component's parameter table exactly the one its schema gives
(``coupler.schema.markdown_table``; ``python docs/parameter_tables.py`` rewrites them), each settings table the keys
and defaults of its config file, and every relative link reaches its file and heading. A hook, capability, parameter
or key added, renamed or removed without the docs fails here."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from coupler import hookspecs
from coupler.components import Model

ROOT = Path(__file__).resolve().parent.parent
PLUGINS_MD = ROOT / "docs" / "plugins.md"
#: a table row whose first cell is a code span: ``| `name(...)` ... |`` gives ``name``
FIRST_CELL = re.compile(r"^\|\s*`([A-Za-z_][A-Za-z0-9_]*)(?:\([^`]*\))?`", re.MULTILINE)


def section(text: str, heading: str) -> str:
    """The text under the ``## heading`` up to the next ``## `` heading."""
    start = text.index(f"\n## {heading}\n")
    end = text.find("\n## ", start + 1)
    return text[start:end if end != -1 else len(text)]


def specs(module) -> set[str]:
    marker = f"{hookspecs.PROJECT}_spec"
    return {name for name, fn in inspect.getmembers(module, inspect.isfunction) if hasattr(fn, marker)}


def test_the_hook_tables_list_exactly_the_hookspecs():
    from coupler_torch import hookspecs as torch_hookspecs

    documented = FIRST_CELL.findall(section(PLUGINS_MD.read_text(), "The hooks"))
    assert len(documented) == len(set(documented)), f"a hook is listed twice: {sorted(documented)}"
    expected = specs(hookspecs) | specs(torch_hookspecs)
    assert set(documented) == expected, (f"docs/plugins.md, 'The hooks': missing {sorted(expected - set(documented))}, "
                                         f"not hooks {sorted(set(documented) - expected)}")


def declared_capabilities() -> set[str]:
    """The capability attributes of ``Model``: the class attributes ``capabilities.py`` checks, read from the
    class's annotations up to ``input_format`` (the input attributes that follow are documented as a list)."""
    names = list(Model.__annotations__)
    return set(names[:names.index("input_format")])


def test_the_capability_table_lists_exactly_the_models_declared_capabilities():
    contracts = section(PLUGINS_MD.read_text(), "The contracts")
    table = contracts[contracts.index("| attribute | default |"):]
    table = table[:table.index("\n\n")]
    documented = FIRST_CELL.findall(table)
    assert set(documented) == declared_capabilities() == {"tasks", "proba_tasks", "reports_epochs", "sample_weights",
                                                          "engine"}
    for name in documented:  # the default column says the class's default
        default = getattr(Model, name)
        row = next(line for line in table.splitlines() if line.startswith(f"| `{name}`"))
        shown = {None: "`None`", False: "`False`", (): "`()`"}.get(default, "all three")
        assert shown in row, f"{name}: the table's default should be {shown} (Model.{name} = {default!r})"


def anchor(heading: str) -> str:
    """GitHub's anchor of a Markdown heading: lowercase, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    text = re.sub(r"^```.*?^```", "", path.read_text(), flags=re.MULTILINE | re.DOTALL)  # no headings in code
    return {anchor(h) for h in re.findall(r"^#+ (.+)$", text, re.MULTILINE)}


def test_every_relative_link_of_the_docs_reaches_a_file_and_its_heading():
    pages = [ROOT / "README.md", ROOT / "benchmarks" / "README.md", ROOT / "core" / "README.md",
             *(ROOT / "docs").glob("*.md"), *(ROOT / "plugins").glob("*/README.md")]
    broken = []
    for page in pages:
        for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
            if re.match(r"[a-z]+:", target):
                continue  # an absolute URL
            path, _, fragment = target.partition("#")
            resolved = (page.parent / path).resolve() if path else page
            if not resolved.exists():
                broken.append(f"{page.relative_to(ROOT)}: {target} (no such file)")
            elif fragment and resolved.suffix == ".md" and fragment not in anchors(resolved):
                broken.append(f"{page.relative_to(ROOT)}: {target} (no such heading)")
    assert not broken, "\n".join(broken)


def parameter_tables_script():
    """``docs/parameter_tables.py``, the script that writes the tables, imported as a module."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("parameter_tables", ROOT / "docs" / "parameter_tables.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


SCRIPT = parameter_tables_script()
#: every marked parameter table of the docs: (page, the components its marker names, the table as written)
MARKED_TABLES = [(page.relative_to(ROOT).as_posix(), choices, written) for page in SCRIPT.pages() if page.is_file()
                 for choices, written in SCRIPT.marked_tables(page.read_text())]


def stale_tables(page: str, text: str, manager) -> list[str]:
    """What differs between the page's marked tables and the schemas, each naming the command that rewrites it."""
    from coupler.errors import CouplerError

    problems = []
    for choices, written in SCRIPT.marked_tables(text):
        for choice in choices.split():
            try:
                expected = SCRIPT.component_table(choice, manager)
            except (CouplerError, KeyError, SystemExit) as error:
                problems.append(f"{page}: <!-- parameters: {choice} --> names no installed component ({error}); "
                                f"mark the table with GROUP=NAME of a registered component")
                continue
            if written.rstrip("\n") != expected:
                problems.append(f"{page}: the parameter table of {choice} is not its schema's; run "
                                f"`{SCRIPT.COMMAND}` to rewrite the docs' tables from the schemas")
    return problems


def test_the_docs_mark_parameter_tables_of_models_and_data_sets_xgboosts_among_them():
    marked = {choice.partition("=")[0] for _, choices, _ in MARKED_TABLES for choice in choices.split()}
    assert {"model", "data"} <= marked, f"marked tables: {MARKED_TABLES}"
    assert ("plugins/xgboost/README.md", "model=xgboost") in {(page, choices) for page, choices, _ in MARKED_TABLES}


@pytest.mark.parametrize(("page", "choices", "written"),
                         [pytest.param(*table, id=f"{table[0]}:{table[1]}") for table in MARKED_TABLES])
def test_a_parameter_table_is_the_one_its_components_schema_gives(page, choices, written):
    from coupler.plugin_manager import get_plugin_manager

    problems = stale_tables(page, f"<!-- parameters: {choices} -->\n{written}<!-- /parameters -->", get_plugin_manager())
    assert not problems, "\n".join(problems)


def test_a_stale_table_fails_naming_the_command_which_rewrites_it_in_place():
    from coupler.plugin_manager import get_plugin_manager

    manager = get_plugin_manager()
    current = SCRIPT.component_table("model=xgboost", manager)
    stale = current.replace("| `model.num_boost_round` | `500` |", "| `model.num_boost_round` | `100` |")
    page = f"# Page\n\nBefore.\n\n<!-- parameters: model=xgboost -->\n{stale}\n<!-- /parameters -->\n\nAfter.\n"
    assert stale != current
    assert stale_tables("page.md", page, manager) == [
        "page.md: the parameter table of model=xgboost is not its schema's; run `python docs/parameter_tables.py` "
        "to rewrite the docs' tables from the schemas"]
    rewritten = SCRIPT.regenerated(page, manager)
    assert rewritten == page.replace(stale, current) and stale_tables("page.md", rewritten, manager) == []
    unknown = page.replace("model=xgboost", "model=xgbost")
    assert stale_tables("page.md", unknown, manager)[0].startswith("page.md: <!-- parameters: model=xgbost --> names "
                                                                   "no installed component (")


def test_every_key_default_table_of_the_docs_is_generated():
    """Every ``| key | default |`` table is a component's, a settings group's or the core settings' parameters,
    written by the script between its markers."""
    unmarked = []
    for page in SCRIPT.pages():
        if page.is_file():
            text = SCRIPT.MARKED.sub("", page.read_text())
            unmarked += [f"{page.relative_to(ROOT)}: {rows.splitlines()[0]}" for rows in KEY_TABLE.findall(text)]
    assert not unmarked, f"mark each parameter table (<!-- parameters: GROUP=NAME -->) and run `{SCRIPT.COMMAND}`"


KEY_TABLE = re.compile(r"^\| key \| default \|.*\n\|[-| ]+\|\n((?:\|.*\n)+)", re.MULTILINE)
