"""Discovering, loading and reporting plugins.

Entry points of the ``coupler`` group are discovered once per process, the first time a command needs the
components (``coupler --help`` never does). Each plugin is loaded on its own: if importing it, validating its
hook implementations or calling its registration hooks raises, the plugin is reported as failed (name,
distribution, version, error), whatever it had registered is rolled back, and every other plugin works.
Set ``COUPLER_STRICT_PLUGINS=1`` to turn such a failure into an error (for CI).

A plugin module declares the plugin API versions it supports (``COUPLER_API = ">=1.0,<2"``, see
``coupler.hookspecs``); one whose range excludes this core's ``API_VERSION`` is skipped as ``incompatible``,
with the versions it needs. ``COUPLER_PLUGINS_ONLY=a,b`` allows only the named entry-point plugins: any other
is listed as ``blocked`` and never imported. ``COUPLER_DISABLE_PLUGINS=a,b`` skips the named ones (built-ins
too).

Built-in components come from the modules in ``BUILTIN_PLUGINS``, registered through the same hooks.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import logging
import os
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import pluggy

from coupler import hookspecs
from coupler.errors import PluginError
from coupler.registry import Component, Registry

log = logging.getLogger("coupler")

ENTRY_POINT_GROUP = "coupler"
BUILTIN_PLUGINS = (
    "coupler.builtin.datasets",
    "coupler.builtin.metrics",
    "coupler.builtin.callbacks",
    "coupler.builtin.exporters",
)
DISABLE_ENV = "COUPLER_DISABLE_PLUGINS"
ONLY_ENV = "COUPLER_PLUGINS_ONLY"
STRICT_ENV = "COUPLER_STRICT_PLUGINS"

#: registration hook name -> component kind
REGISTRATION_HOOKS = {
    "register_data_loaders": "data",
    "register_models": "model",
    "register_optimizers": "optimizer",
    "register_schedulers": "scheduler",
    "register_callbacks": "callback",
    "register_metrics": "metric",
    "register_exporters": "exporter",
}


@dataclass
class PluginInfo:
    name: str
    distribution: str
    version: str
    builtin: bool = False
    status: str = "ok"  # ok | failed | incompatible | disabled | blocked
    error: str | None = None
    components: dict[str, list[str]] = field(default_factory=dict)
    config_dirs: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {
            "name": self.name,
            "distribution": self.distribution,
            "version": self.version,
            "builtin": self.builtin,
            "status": self.status,
            "error": self.error,
            "components": {kind: sorted(names) for kind, names in self.components.items() if names},
        }


def _names(value: str | None) -> set[str]:
    return {part.strip() for part in (value or "").split(",") if part.strip()}


class PluginManager:
    """The pluggy manager, the registry it fills, and what happened to each plugin."""

    def __init__(self, disabled: Iterable[str] = (), strict: bool = False, only: Iterable[str] | None = None):
        self.hooks = pluggy.PluginManager(hookspecs.PROJECT)
        self.hooks.add_hookspecs(hookspecs)
        self.registry = Registry()
        self.plugins: dict[str, PluginInfo] = {}
        self.disabled = set(disabled)
        self.registry.disabled_plugins = set(self.disabled)
        self.strict = strict
        #: the entry-point plugins allowed to load (COUPLER_PLUGINS_ONLY); None allows every one
        self.only = None if only is None else set(only)

    # --- loading --------------------------------------------------------------------------------------

    def load_builtins(self) -> None:
        from coupler import __version__

        for module_name in BUILTIN_PLUGINS:
            name = module_name.rsplit(".", 1)[-1]
            info = PluginInfo(name=name, distribution="coupler", version=__version__, builtin=True)
            if name in self.disabled:
                info.status = "disabled"
                self.plugins[name] = info
                continue
            self._load(info, lambda module_name=module_name: importlib.import_module(module_name))

    def load_entry_points(self) -> None:
        for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
            dist = ep.dist
            info = PluginInfo(
                name=ep.name,
                distribution=dist.metadata["Name"] if dist else "?",
                version=dist.version if dist else "?",
            )
            if ep.name in self.plugins:
                info.status, info.error = "failed", (
                    f"plugin name {ep.name!r} is already taken by {self.plugins[ep.name].distribution}"
                )
                self._report(info)
                continue
            if ep.name in self.disabled or (self.only is not None and ep.name not in self.only):
                info.status = "disabled" if ep.name in self.disabled else "blocked"
                if info.status == "blocked":
                    self.registry.blocked_plugins.add(ep.name)
                self.plugins[ep.name] = info
                continue
            self._load(info, ep.load)

    def load_object(self, name: str, plugin: object, distribution: str = "(in-process)", version: str = "") -> PluginInfo:
        """Register an already-imported plugin object (for tests and embedding)."""
        info = PluginInfo(name=name, distribution=distribution, version=version)
        self._load(info, lambda: plugin)
        return info

    def _load(self, info: PluginInfo, load: Callable[[], object]) -> None:
        self.plugins[info.name] = info
        try:
            plugin = load()
            needs = _incompatibility(plugin)
            if needs:
                info.status, info.error = "incompatible", needs
                self._report(info)
                return
            self.hooks.register(plugin, name=info.name)
        except Exception as exc:  # a broken plugin must never take the host down
            self._fail(info, exc)
            return
        try:
            # a hookimpl whose name matches no hookspec (a typo) fails the plugin instead of being ignored
            self.hooks.check_pending()
            self._call_registrations(info)
        except Exception as exc:
            self.registry.remove_plugin(info.name)
            self.hooks.unregister(name=info.name)
            info.components, info.config_dirs = {}, []
            self._fail(info, exc)

    def _call_registrations(self, info: PluginInfo) -> None:
        for hook_name, kind in REGISTRATION_HOOKS.items():
            for impl in getattr(self.hooks.hook, hook_name).get_hookimpls():
                if impl.plugin_name != info.name:
                    continue

                def register(name, factory, description=None, *, _kind=kind):
                    self.registry.add(Component(_kind, name, factory, info.name, description or ""))
                    info.components.setdefault(_kind, []).append(name)

                impl.function(register)
        for impl in self.hooks.hook.register_config_dirs.get_hookimpls():
            if impl.plugin_name != info.name:
                continue

            def register_dir(path):
                path = Path(path)
                if not path.is_dir():
                    raise PluginError(f"config directory {str(path)!r} does not exist")
                info.config_dirs.append(str(path.resolve()))

            impl.function(register_dir)

    def _fail(self, info: PluginInfo, exc: BaseException) -> None:
        info.status = "failed"
        info.error = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        self._report(info)

    def _report(self, info: PluginInfo) -> None:
        source = f"plugin {info.name!r} ({info.distribution} {info.version})"
        what = "is incompatible" if info.status == "incompatible" else "failed to load"
        if self.strict:
            raise PluginError(f"{source} {what}: {info.error} ({STRICT_ENV} is set, so this is an error)")
        log.warning("%s %s and is skipped: %s", source, what, info.error)

    # --- after loading --------------------------------------------------------------------------------

    def disable(self, names: Iterable[str]) -> None:
        """Disable loaded plugins (the ``plugins.disable`` config key): their components become unusable."""
        for name in [names] if isinstance(names, str) else names:
            info = self.plugins.get(name)
            if info is None:
                raise PluginError(
                    f"plugins.disable names {name!r}, which is not an installed plugin; "
                    f"installed: {', '.join(sorted(self.plugins))}"
                )
            if info.status == "ok":
                self.registry.remove_plugin(name, disabled=True)
                self.hooks.unregister(name=name)
                info.status = "disabled"

    @contextlib.contextmanager
    def disabled_for_run(self, names: Iterable[str]):
        """``disable(names)`` for the length of one run, then everything as it was (the next job of a
        multirun, or the next in-process run, sees every plugin again)."""
        names = [names] if isinstance(names, str) else list(names)
        registered = self.registry.snapshot()
        statuses = {name: info.status for name, info in self.plugins.items()}
        objects = {name: self.hooks.get_plugin(name) for name in names if name in self.plugins}
        self.disable(names)
        try:
            yield
        finally:
            self.registry.restore(registered)
            for name, status in statuses.items():
                self.plugins[name].status = status
            for name, plugin in objects.items():
                if plugin is not None and self.hooks.get_plugin(name) is None:
                    self.hooks.register(plugin, name=name)

    def config_dirs(self) -> list[tuple[str, str]]:
        """(plugin, directory) for every config directory of a working plugin, built-ins first."""
        return [(p.name, d) for p in self.plugins.values() if p.status == "ok" for d in p.config_dirs]

    def component_plugin(self, kind: str, name: str) -> PluginInfo:
        return self.plugins[self.registry.get(kind, name).plugin]

    def get(self, kind: str, name: str) -> Component:
        return self.registry.get(kind, name)



def _incompatibility(plugin: object) -> str | None:
    """Why ``plugin`` cannot run on this core's plugin API (its ``COUPLER_API`` range excludes it), or None."""
    from packaging.specifiers import InvalidSpecifier, SpecifierSet

    declared = getattr(plugin, "COUPLER_API", None)
    if declared is None:
        return None  # undeclared: taken as compatible (the conformance kit asks for a declaration)
    try:
        supported = SpecifierSet(str(declared))
    except InvalidSpecifier:
        return f"its COUPLER_API={declared!r} is not a version range; write it like \"{hookspecs.API_RANGE}\""
    if supported.contains(hookspecs.API_VERSION, prereleases=True):
        return None
    return (f"it needs Coupler plugin API {declared}, and this Coupler provides API {hookspecs.API_VERSION}; "
            f"install a release of the plugin made for API {hookspecs.API_VERSION}, or a Coupler that provides {declared}")


@functools.cache
def get_plugin_manager() -> PluginManager:
    """The process's plugin manager, loaded on first use (built-ins, then entry points)."""
    only = os.environ.get(ONLY_ENV) or None  # set but empty: no allow-list, as COUPLER_DISABLE_PLUGINS= disables none
    manager = PluginManager(
        disabled=_names(os.environ.get(DISABLE_ENV)),
        strict=os.environ.get(STRICT_ENV, "") not in ("", "0", "false", "no"),
        only=None if only is None else _names(only),
    )
    manager.load_builtins()
    manager.load_entry_points()
    for variable, names in ((DISABLE_ENV, manager.disabled), (ONLY_ENV, manager.only or set())):
        for name in sorted(names - set(manager.plugins)):
            log.warning("%s names %r, which is not an installed plugin; installed: %s", variable, name,
                        ", ".join(sorted(manager.plugins)))
    return manager
