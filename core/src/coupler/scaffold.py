"""``coupler new-plugin NAME --kind KIND``: write a ready-to-install plugin package to start from.

The package ``coupler-NAME/`` holds a pyproject (distribution ``coupler-NAME``, entry point ``NAME`` in the
``coupler`` group), a ``plugin.py`` with the hook implementation, a real working component of the kind beside
its schema (the dataclass ``CLSParams`` that declares its parameters once: ``coupler.schema``; no config file),
tests (Coupler's conformance kit and the component's own behaviour) and a README. The templates are files shipped
with Coupler, ``coupler/templates/``: ``package/`` for the files every kind gets, ``KIND/`` for the component and
its tests (docs/plugins.md links them as the example of each kind, and a test keeps the two in step); ``$name``,
``$cls``, ... are filled in by ``string.Template``. This module imports only the standard library (and Coupler's error class).
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from string import Template

from coupler.conformance import NAME_PATTERN
from coupler.errors import CouplerError
from coupler.hookspecs import API_RANGE


@dataclass(frozen=True)
class Kind:
    """What a kind of component needs: its config group, registration hook, module, factory and templates."""

    group: str  # the config group that selects it: GROUP=NAME
    hook: str  # the registration hook of plugin.py
    factory: str  # what plugin.py registers, defined in src/coupler_NAME/KIND.py beside its schema ${cls}Params
    summary: str  # one line: the description given to register() and the README's first line
    dependencies: tuple[str, ...]
    component: str  # the module's source: the schema and the component
    tests: str  # tests/test_NAME.py
    usage: str  # the README's "Use" section


def template(relative: str) -> str:
    """The text of the template ``coupler/templates/RELATIVE`` (package data), without the ``.tmpl`` ending."""
    return (resources.files("coupler") / "templates" / f"{relative}.tmpl").read_text(encoding="utf-8")


def _templates(kind: str) -> tuple[str, str]:
    """The component and tests templates of ``kind`` (``templates/KIND/``)."""
    return template(f"{kind}/{kind}.py"), template(f"{kind}/test.py")


#: the files every kind gets: path in the package -> template
PACKAGE_FILES = {"pyproject.toml": "package/pyproject.toml", "README.md": "package/README.md",
                 "src/$package/__init__.py": "package/__init__.py", "src/$package/plugin.py": "package/plugin.py"}


KINDS: dict[str, Kind] = {
    "model": Kind("model", "register_models", "$cls", "a linear model in NumPy (ridge / softmax regression)",
                  ("numpy",), *_templates("model"),
                  "coupler train data=iris model=$name\ncoupler train data=diabetes model=$name model.alpha=10"),
    "data": Kind("data", "register_data_loaders", "load_$name", "a synthetic classification table from a seed",
                 ("numpy", "pandas"), *_templates("data"),
                 "coupler train data=$name\ncoupler train data=$name data.rows=5000 data.noise=1.0"),
    "callback": Kind("callbacks", "register_callbacks", "${cls}Callback",
                     "a JSON-lines log of the run's epochs and evaluations", (), *_templates("callback"),
                     "coupler train 'callbacks=[$name]'    # writes RUN_DIR/$name.jsonl"),
    "metric": Kind("metrics", "register_metrics", "build_$name",
                   "a quantile of the absolute errors (regression)", ("numpy",), *_templates("metric"),
                   "coupler train data=diabetes model=linear_regression 'metrics=[$name,rmse]'\n"
                   "coupler train data=diabetes model=linear_regression 'metrics=[$name]' metrics.$name.quantile=0.9"),
    "exporter": Kind("exporters", "register_exporters", "${cls}Exporter",
                     "a JSON summary of the run (model, data, metrics)", (), *_templates("exporter"),
                     "coupler train 'exporters=[$name]'    # writes RUN_DIR/exports/$name.json"),
    "optimizer": Kind("optimizer", "register_optimizers", "build_$name",
                      "SGD with momentum for the torch engine", ("torch",), *_templates("optimizer"),
                      "coupler train data=digits model=cnn optimizer=$name optimizer.lr=0.05   # needs coupler-torch"
                      " and a model that uses an optimizer"),
}
#: the kinds whose group takes a list (``callbacks=[a,b]``)
LIST_KINDS = frozenset({"callback", "metric", "exporter"})


def check_name(name: str) -> None:
    """Refuse a name that cannot be a component, an entry point and part of a package name."""
    if NAME_PATTERN.match(name):
        return
    suggestion = re.sub(r"[^a-z0-9_]+", "_", name.lower()).strip("_")
    hint = f" (e.g. {suggestion})" if NAME_PATTERN.match(suggestion) else ""
    raise CouplerError(f"plugin name {name!r} is not allowed: use a lower-case letter, then lower-case letters, "
                       f"digits or underscores{hint}.")


def coupler_requirement(version: str | None = None) -> str:
    """``coupler>=MAJOR.MINOR`` of the Coupler that writes the package: its tests use that Coupler's helpers.

    No upper bound: a newer Coupler whose plugin API the plugin does not support skips it and says why
    (``COUPLER_API``), where a pin would make pip refuse to install the two together."""
    from packaging.version import Version

    from coupler import __version__

    parsed = Version(version or __version__)
    if parsed.is_prerelease or parsed.is_devrelease:  # 0.2.0.dev1 is older than 0.2: require it as it is
        return f"coupler>={parsed}"
    return f"coupler>={parsed.major}.{parsed.minor}"


def check_free(name: str, kind: str, manager) -> None:
    """Refuse a name an installed plugin holds, as its plugin name or as a component of the same kind: the two
    could not be installed together (``coupler plugins`` would show the newcomer as failed)."""
    taken = manager.plugins.get(name)
    if taken is not None:
        again = "" if taken.builtin else f" (or pip uninstall {taken.distribution}, to write it again)"
        raise CouplerError(f"plugin name {name!r} is taken by the installed plugin {name!r} ({taken.distribution} "
                           f"{taken.version}); choose another name{again}.")
    for component in manager.registry.components(kind):
        if component.name == name:
            raise CouplerError(f"{kind} {name!r} is provided by the installed plugin {component.plugin!r}, and two "
                               f"plugins cannot both register {kind} {name!r}; choose another name.")


def check_kind(kind: str) -> Kind:
    if kind not in KINDS:
        raise CouplerError(f"--kind {kind}: unknown kind of plugin; kinds are {', '.join(KINDS)}.")
    return KINDS[kind]


def render(name: str, kind: str = "model") -> dict[str, str]:
    """The files of the package ``coupler-NAME`` for a ``kind`` component: relative path -> text."""
    check_name(name)
    spec = check_kind(kind)
    package, dist = f"coupler_{name}", f"coupler-{name.replace('_', '-')}"
    values = {"name": name, "kind": kind, "group": spec.group, "package": package, "dist": dist, "api": API_RANGE,
              "cls": "".join(part.capitalize() for part in name.split("_")), "module": kind, "hook": spec.hook}
    values["factory"] = Template(spec.factory).substitute(values)
    values["schema"] = f"{values['cls']}Params"
    # plugin.py's import, in isort's order: classes (CamelCase) before functions
    values["imports"] = ", ".join(sorted((values["factory"], values["schema"]), key=lambda n: (n[0].islower(), n)))
    values["select"] = f"'{spec.group}=[{name}]'" if kind in LIST_KINDS else f"{spec.group}={name}"
    values["summary"] = spec.summary
    values["usage"] = Template(spec.usage).substitute(values)
    values["dependencies"] = ", ".join(f'"{d}"' for d in (coupler_requirement(), *spec.dependencies))
    files = {
        **{Template(path).substitute(values): template(relative) for path, relative in PACKAGE_FILES.items()},
        f"src/{package}/{kind}.py": spec.component,
        f"tests/test_{name}.py": spec.tests,
    }
    return {path: Template(text).substitute(values) for path, text in files.items()}


def create(name: str, kind: str = "model", directory: Path | str = ".", manager=None) -> Path:
    """Write the package into ``directory/coupler-NAME`` (dashes for underscores) and return its path; with a
    plugin ``manager``, first refuse a name its installed plugins hold (``check_free``).

    The files are written into a hidden directory beside it that is renamed in one step: an error never leaves
    half a package behind.
    """
    files = render(name, kind)
    if manager is not None:
        check_free(name, kind, manager)
    target = Path(directory) / f"coupler-{name.replace('_', '-')}"
    if target.exists() or target.is_symlink():
        raise CouplerError(f"{target} already exists; remove it, or choose another name or --directory.")
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        for relative, text in files.items():
            path = staging / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        staging.chmod(0o777 & ~_umask())  # mkdtemp makes 0700; give the package the user's usual mode
        os.rename(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
