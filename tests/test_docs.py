"""The docs' reference tables say what the code says: the hook tables of docs/plugins.md list exactly the hook
specifications (the core's and coupler-torch's), its Model capability table exactly the capabilities
``coupler.components.Model`` declares, each parameter table exactly the keys and defaults of its config file, and
every relative link reaches its file and heading. A hook, capability or key added, renamed or removed without the
docs fails here."""

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


#: (page, which of its ``| key | default |`` tables, the config file it documents)
PARAMETER_TABLES = [
    ("docs/configuration.md", 0, "core/src/coupler/conf/data/csv.yaml"),
    ("plugins/cnn/README.md", 0, "plugins/cnn/src/coupler_cnn/conf/model/cnn.yaml"),
    ("plugins/rnn/README.md", 0, "plugins/rnn/src/coupler_rnn/conf/model/lstm.yaml"),
    ("plugins/rnn/README.md", 0, "plugins/rnn/src/coupler_rnn/conf/model/gru.yaml"),
    ("plugins/rnn/README.md", 1, "plugins/rnn/src/coupler_rnn/conf/data/timeseries.yaml"),
    ("plugins/rnn/README.md", 2, "plugins/rnn/src/coupler_rnn/conf/data/sequences.yaml"),
    ("plugins/torch/README.md", 0, "plugins/torch/src/coupler_torch/conf/trainer/default.yaml"),
    ("plugins/transformer/README.md", 0, "plugins/transformer/src/coupler_transformer/conf/data/text_csv.yaml"),
    ("plugins/transformer/README.md", 1, "plugins/transformer/src/coupler_transformer/conf/model/transformer.yaml"),
    ("plugins/transformer/README.md", 2, "plugins/transformer/src/coupler_transformer/conf/model/hf_transformer.yaml"),
]
KEY_TABLE = re.compile(r"^\| key \| default \|.*\n\|[-| ]+\|\n((?:\|.*\n)+)", re.MULTILINE)


def documented_defaults(rows: str) -> dict[str, str]:
    """``{key: default cell}`` of a table's rows; a row may name several keys (`` `a`, `b` | `1`, `2` ``)."""
    documented = {}
    for line in rows.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        keys, defaults = cells[0].split(", "), cells[1].split(", ")
        for i, key in enumerate(keys):
            documented[key.strip("`")] = defaults[i] if len(defaults) == len(keys) else cells[1]
    return documented


def config_leaves(node: dict, prefix: str = "") -> dict:
    leaves = {}
    for key, value in node.items():
        if isinstance(value, dict) and value:
            leaves.update(config_leaves(value, f"{prefix}{key}."))
        else:
            leaves[f"{prefix}{key}"] = value
    return leaves


@pytest.mark.parametrize(("page", "index", "config"), PARAMETER_TABLES, ids=lambda v: str(v))
def test_a_parameter_table_lists_every_key_of_its_config_file_with_its_default(page, index, config):
    import yaml

    documented = documented_defaults(KEY_TABLE.findall((ROOT / page).read_text())[index])
    keys = config_leaves(yaml.safe_load((ROOT / config).read_text()))
    keys.pop("name", None)  # the component, not a parameter
    assert set(documented) == set(keys), (f"{page}: keys missing {sorted(set(keys) - set(documented))}, "
                                          f"not in {config}: {sorted(set(documented) - set(keys))}")
    for key, value in keys.items():
        cell = documented[key].strip("`")
        if value == "???":
            assert cell in ("required", "(required)"), f"{page}: {key} is required, the table says {cell}"
        else:
            assert yaml.safe_load(cell) == value, f"{page}: {key}'s default is {value!r}, the table says {cell}"
