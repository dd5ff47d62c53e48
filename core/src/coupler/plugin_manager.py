"""Discovering, loading and reporting plugins.

Entry points of the ``coupler`` group are discovered once per process, the first time a command needs the
components (``coupler --help`` never does). Each plugin is loaded on its own: if importing it, validating its
hook implementations or calling its registration hooks raises, the plugin is reported as failed (name,
distribution, version, error), whatever it had registered is rolled back, and every other plugin works.
Set ``COUPLER_STRICT_PLUGINS=1`` to turn the failures into one error listing every failed plugin (for CI).
A hook implementation whose name is no hook fails the plugin naming the closest hook, and a config file of a
list group (``callbacks/NAME.yaml``, ...) without its ``# @package GROUP.NAME`` line fails it naming the line.

A plugin module declares the plugin API versions it supports (``COUPLER_API = ">=1.0,<2"``, see
``coupler.hookspecs``); one whose range excludes this core's ``API_VERSION`` is skipped as ``incompatible``,
with the versions it needs. ``COUPLER_PLUGINS_ONLY=a,b`` allows only the named entry-point plugins: any other
is listed as ``blocked`` and never imported. ``COUPLER_DISABLE_PLUGINS=a,b`` skips the named ones (built-ins
too).

Built-in components come from the modules in ``BUILTIN_PLUGINS``, registered through the same hooks.

**Plugins cannot hurt the host or each other.**

- *A component name two plugins register* stays with the one that comes first in ``precedence``: the
  built-ins, then Coupler's own distributions (``FIRST_PARTY``, this repository's ``plugins/``), then every
  other distribution by name. The other one fails, whatever order the entry points were found in (it is
  rolled back, even if it loaded first), with a message naming both plugins and distributions and the fix.
  Entry points load in the same order, so that the plugin-name clash is decided alike.
- *An import that calls* ``sys.exit`` is a failure like any other. *An import that does not finish* within
  ``COUPLER_PLUGIN_IMPORT_TIMEOUT`` seconds (default ``DEFAULT_IMPORT_TIMEOUT``, enough for a plugin that
  imports torch from a cold disk) fails the plugin, which is named; its import goes on in a daemon thread,
  which does not keep the process alive.
- *A distribution none of whose plugins may load* (``COUPLER_DISABLE_PLUGINS``, ``COUPLER_PLUGINS_ONLY``) gets
  its ``hydra_plugins`` modules hidden from Hydra's plugin scan too (``hide_hydra_plugins``).
- Exceptions from plugin code during a run are named by ``coupler.plugin_faults``.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import inspect
import logging
import os
import re
import sys
import threading
import traceback
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import pluggy

from coupler import hookspecs
from coupler.errors import ConfigError, CouplerError, PluginError
from coupler.registry import Component, DuplicateComponentError, Kind, Registry, SettingGroup

log = logging.getLogger("coupler")

ENTRY_POINT_GROUP = "coupler"
BUILTIN_PLUGINS = (
    "coupler.builtin.datasets",
    "coupler.builtin.metrics",
    "coupler.builtin.callbacks",
    "coupler.builtin.exporters",
    "coupler.builtin.ensemble",
)
DISABLE_ENV = "COUPLER_DISABLE_PLUGINS"
ONLY_ENV = "COUPLER_PLUGINS_ONLY"
STRICT_ENV = "COUPLER_STRICT_PLUGINS"
IMPORT_TIMEOUT_ENV = "COUPLER_PLUGIN_IMPORT_TIMEOUT"
#: seconds a plugin's import may take: generous, for a plugin that imports torch from a cold disk
DEFAULT_IMPORT_TIMEOUT = 120.0
#: Coupler's own plugin distributions (this repository's plugins/): after the built-ins, they keep a
#: component name that another distribution's plugin registers too
FIRST_PARTY = frozenset({"coupler-cnn", "coupler-mlflow", "coupler-optuna", "coupler-rnn", "coupler-sklearn",
                         "coupler-tensorboard", "coupler-torch", "coupler-transformer", "coupler-xgboost"})

#: hooks that grow the plugin surface, called on every plugin of a load before any registration hook (the
#: registration hooks are the kinds': ``Registry.kinds``)
EXTENSION_HOOKS = ("add_hookspecs", "register_kinds", "register_config_groups")


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
    #: the component kinds and config groups it declared (``register_kinds``, ``register_config_groups``)
    declares: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {
            "name": self.name,
            "distribution": self.distribution,
            "version": self.version,
            "builtin": self.builtin,
            "status": self.status,
            "error": self.error,
            "components": {kind: sorted(names) for kind, names in self.components.items() if names},
            "declares": list(self.declares),
            "configs": self.config_files(),
        }

    def config_files(self) -> dict[str, list[str]]:
        """The options its config directories give, by group (``{"search": ["xgboost"]}``): a plugin may ship
        options of a group another plugin declares (a model plugin's search files), so they are listed with it."""
        files: dict[str, list[str]] = {}
        for directory in self.config_dirs:
            for path in Path(directory).glob("*/*.yaml"):
                files.setdefault(path.parent.name, []).append(path.stem)
        return {group: sorted(set(names)) for group, names in sorted(files.items())}


def _names(value: str | None) -> set[str]:
    return {part.strip() for part in (value or "").split(",") if part.strip()}


def normalized_distribution(distribution: str) -> str:
    """A distribution's name as PEP 503 compares them (``Coupler_SKLearn`` is ``coupler-sklearn``)."""
    return re.sub(r"[-_.]+", "-", distribution).lower()


def precedence(info: PluginInfo) -> tuple:
    """Who keeps a component name that two plugins register (the lower tuple), independent of load order:
    the built-ins, then Coupler's own distributions, then the others by distribution name, then by plugin
    name (the plugins of one distribution)."""
    rank = 0 if info.builtin else 1 if normalized_distribution(info.distribution) in FIRST_PARTY else 2
    return rank, normalized_distribution(info.distribution), info.name


PRECEDENCE_RULE = "built-ins first, then Coupler's own plugins, then the others by distribution name"


def _source(info: PluginInfo) -> str:
    return f"{info.name!r} ({info.distribution} {info.version})"


def import_timeout(value: str | None) -> float:
    """``COUPLER_PLUGIN_IMPORT_TIMEOUT``: seconds, above 0; unset or empty is the default."""
    if value is None or not value.strip():
        return DEFAULT_IMPORT_TIMEOUT
    try:
        seconds = float(value)
    except ValueError:
        seconds = float("nan")
    if not seconds > 0 or seconds == float("inf"):
        raise ConfigError(IMPORT_TIMEOUT_ENV, value, f"a number of seconds above 0 (default {DEFAULT_IMPORT_TIMEOUT:g})")
    return seconds


class ImportTimeout(PluginError):
    """A plugin's import did not finish in time (it may wait forever: on a lock, a network share, input)."""


def _bounded(load: Callable[[], object], seconds: float, info: PluginInfo) -> object:
    """``load()`` in a daemon thread, waited for at most ``seconds``: a plugin whose import never finishes is
    named instead of hanging every command. The thread is left behind (Python cannot stop it); being a daemon,
    it does not keep the process alive. An exception from ``load`` is raised here, ``SystemExit`` included."""
    outcome: dict[str, object] = {}

    def target() -> None:
        try:
            outcome["plugin"] = load()
        except BaseException as exc:  # handed to the caller, which decides (SystemExit fails the plugin)
            outcome["error"] = exc

    thread = threading.Thread(target=target, name=f"coupler-import-{info.name}", daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        raise ImportTimeout(
            f"importing it did not finish within {seconds:g} s ({IMPORT_TIMEOUT_ENV}); fix or uninstall "
            f"{info.distribution}, disable it (COUPLER_DISABLE_PLUGINS={info.name}), or allow longer "
            f"({IMPORT_TIMEOUT_ENV}=SECONDS)"
        )
    if "error" in outcome:
        raise outcome["error"]  # type: ignore[misc]
    return outcome["plugin"]


def _failure_text(exc: BaseException) -> str:
    """The one line a failed plugin is reported with."""
    if isinstance(exc, SystemExit):
        return f"it called sys.exit({exc.code!r}) while loading"
    if isinstance(exc, CouplerError):
        return str(exc)
    return "".join(traceback.format_exception_only(type(exc), exc)).strip()


class PluginManager:
    """The pluggy manager, the registry it fills, and what happened to each plugin."""

    def __init__(self, disabled: Iterable[str] = (), strict: bool = False, only: Iterable[str] | None = None,
                 import_timeout: float | None = None):
        self.hooks = pluggy.PluginManager(hookspecs.PROJECT)
        self.hooks.add_hookspecs(hookspecs)
        self.registry = Registry()
        self.plugins: dict[str, PluginInfo] = {}
        self.disabled = set(disabled)
        self.registry.disabled_plugins = set(self.disabled)
        self.strict = strict
        #: the entry-point plugins allowed to load (COUPLER_PLUGINS_ONLY); None allows every one
        self.only = None if only is None else set(only)
        #: seconds an entry point's import may take (COUPLER_PLUGIN_IMPORT_TIMEOUT)
        self.import_timeout = import_timeout if import_timeout is not None else DEFAULT_IMPORT_TIMEOUT
        #: entry-point plugin -> its distribution (for the files it installed, e.g. hydra_plugins modules)
        self.distributions: dict[str, metadata.Distribution] = {}
        #: plugins that lost a component name to the plugin being loaded: reported once that load is over
        self._displaced: list[PluginInfo] = []
        #: under ``strict``, the failures of the current load, raised together once it is over (``_raise_failures``)
        self._failures: list[str] = []
        #: hook name -> the plugin whose ``add_hookspecs`` added it
        self.hook_owners: dict[str, str] = {}

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
        self._raise_failures()

    def load_entry_points(self) -> None:
        """Every entry point of the ``coupler`` group, in ``precedence`` order (not the order
        importlib.metadata finds them in), each import bounded by ``import_timeout``; every one is imported and
        extends the surface (``EXTENSION_HOOKS``) before any registers components."""
        found, loads = [], []
        for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
            # each access to Distribution.metadata (and .version) parses the METADATA file again: once is enough
            meta = ep.dist.metadata if ep.dist is not None else None
            info = PluginInfo(
                name=ep.name,
                distribution=meta["Name"] if meta is not None else "?",
                version=meta["Version"] if meta is not None else "?",
            )
            found.append((info, ep))
        for info, ep in sorted(found, key=lambda pair: precedence(pair[0])):
            if info.name in self.plugins:
                holder = self.plugins[info.name]
                info.status, info.error = "failed", (
                    f"plugin name {info.name!r} is already taken by {holder.distribution} {holder.version}; "
                    f"uninstall one of the two (pip uninstall {info.distribution})"
                )
                self._report(info)
                continue
            if ep.dist is not None:
                self.distributions[info.name] = ep.dist
            if info.name in self.disabled or (self.only is not None and info.name not in self.only):
                info.status = "disabled" if info.name in self.disabled else "blocked"
                if info.status == "blocked":
                    self.registry.blocked_plugins.add(info.name)
                self.plugins[info.name] = info
                continue
            self.plugins[info.name] = info  # taken now: a second entry point of this name is refused above
            loads.append((info, lambda ep=ep, info=info: _bounded(ep.load, self.import_timeout, info)))
        self._load_all(loads)
        self._raise_failures()

    def load_object(self, name: str, plugin: object, distribution: str = "(in-process)", version: str = "") -> PluginInfo:
        """Register an already-imported plugin object (for tests and embedding)."""
        info = PluginInfo(name=name, distribution=distribution, version=version)
        self._load(info, lambda: plugin)
        self._raise_failures()
        return info

    def _load(self, info: PluginInfo, load: Callable[[], object]) -> None:
        self._load_all([(info, load)])

    def _load_all(self, loads: list[tuple[PluginInfo, Callable[[], object]]]) -> None:
        """Import each plugin, then let each extend the surface (hook specifications, kinds, config groups), then
        register each: a plugin may implement hooks that another one of the same load adds."""
        imported = []
        for info, load in loads:
            self.plugins[info.name] = info
            plugin = self._guarded(info, lambda load=load, info=info: self._import(info, load))
            if plugin is not None:
                imported.append((info, plugin))
        extended = [(info, plugin) for info, plugin in imported
                    if self._guarded(info, lambda info=info, plugin=plugin: self._extend(info, plugin) or True)]
        for info, plugin in extended:
            self._guarded(info, lambda info=info, plugin=plugin: self._register(info, plugin))

    def _guarded(self, info: PluginInfo, step: Callable[[], object]) -> object:
        """``step()``, or None when it raises: a broken plugin must never take the host down. Whatever the plugin
        registered is rolled back and it is reported as failed, naming it."""
        try:
            return step()
        except (Exception, SystemExit) as exc:
            self._roll_back(info)
            self._fail(info, exc)
            return None
        finally:
            displaced, self._displaced = self._displaced, []
            for other in displaced:
                self._report(other)

    def _import(self, info: PluginInfo, load: Callable[[], object]) -> object:
        plugin = load()
        needs = _incompatibility(plugin)
        if needs:
            info.status, info.error = "incompatible", needs
            self._report(info)
            return None
        return plugin

    def _extend(self, info: PluginInfo, plugin: object) -> None:
        """Call the plugin's extension hooks (``EXTENSION_HOOKS``), before any plugin of the load registers."""
        calls = {"add_hookspecs": lambda namespace: self._add_hookspecs(info, namespace),
                 "register_kinds": lambda kind, **declared: self._add_kind(info, kind, **declared),
                 "register_config_groups": lambda group, **declared: self._add_group(info, group, **declared)}
        for hook_name in EXTENSION_HOOKS:
            function = getattr(plugin, hook_name, None)
            if function is not None and getattr(function, f"{hookspecs.PROJECT}_impl", None) is not None:
                function(calls[hook_name])

    def _add_hookspecs(self, info: PluginInfo, namespace: object) -> None:
        before = set(self.hooks.hook.__dict__)
        self.hooks.add_hookspecs(namespace)  # pluggy refuses a namespace without specs, or a hook specified twice
        for name in set(self.hooks.hook.__dict__) - before:
            self.hook_owners[name] = info.name

    def _add_kind(self, info: PluginInfo, kind: str, *, group: str, hook: str, many: bool = False,
                  contract: str = "", checks: dict | None = None, used_by: str | None = None) -> None:
        caller = getattr(self.hooks.hook, hook, None)
        if caller is None or caller.spec is None:
            raise PluginError(f"component kind {kind!r}: no hook specification is named {hook!r}; add it with the "
                              f"add_hookspecs hook first")
        self.registry.add_kind(Kind(kind, group, hook, many=many, plugin=info.name, contract=contract,
                                    checks=dict(checks or {}), used_by=used_by))
        info.declares.append(kind)

    def _add_group(self, info: PluginInfo, group: str, *, default: str | None = None, description: str = "",
                   test_overrides: Iterable[str] = (), engines: Iterable[str] = (), schema: type | None = None) -> None:
        self.registry.add_setting_group(SettingGroup(group, default, info.name, description, tuple(test_overrides),
                                                     tuple(engines), schema))
        info.declares.append(f"{group} group")

    def _register(self, info: PluginInfo, plugin: object) -> None:
        self.hooks.register(plugin, name=info.name)
        # a hookimpl whose name matches no hookspec (a typo) fails the plugin instead of being ignored
        self._check_hook_names(info)
        self._call_registrations(info)
        self._check_group_defaults(info)

    def _check_group_defaults(self, info: PluginInfo) -> None:
        """A settings group the plugin declared with a default option ships that option's file (or a schema, which
        is that option's node): every run composes it, so a missing one would break every run, not only the plugin's."""
        for group in self.registry.setting_groups.values():
            if group.plugin != info.name or group.default is None or group.schema is not None:
                continue
            if not any((Path(d) / group.name / f"{group.default}.yaml").is_file() for d in info.config_dirs):
                raise PluginError(f"config group {group.name!r}: its default option {group.default!r} has no file "
                                  f"{group.name}/{group.default}.yaml in the plugin's config directories "
                                  f"(register_config_dirs); ship it as package data, or declare no default")

    def _check_hook_names(self, info: PluginInfo) -> None:
        """Refuse a hook implementation that matches no hook specification, naming the closest hook (pluggy's
        own ``check_pending`` says only "unknown hook")."""
        from coupler.errors import did_you_mean

        specified = sorted(name for name, caller in vars(self.hooks.hook).items()
                           if hasattr(caller, "has_spec") and caller.has_spec())
        for caller in self.hooks.get_hookcallers(self.hooks.get_plugin(info.name)) or ():
            if caller.has_spec() or all(impl.optionalhook for impl in caller.get_hookimpls()):
                continue
            raise PluginError(f"unknown hook {caller.name!r}: no hook of Coupler has that name."
                              f"{did_you_mean(caller.name, specified)} The hooks are listed in coupler.hookspecs "
                              f"(docs/plugins.md, \"The hooks\").")

    def _roll_back(self, info: PluginInfo) -> None:
        """Undo whatever ``info``'s plugin registered: components, hook implementations, config directories."""
        self.registry.remove_plugin(info.name)
        self.registry.remove_kinds_of(info.name)
        if self.hooks.get_plugin(info.name) is not None:
            self.hooks.unregister(name=info.name)
        info.components, info.config_dirs, info.declares = {}, [], []

    def _settle_clash(self, kind: str, name: str, newcomer: PluginInfo) -> None:
        """Before ``newcomer`` registers ``kind`` ``name``: if another plugin has it, the one later in
        ``precedence`` fails. That is ``newcomer`` (raised) or the holder (rolled back, reported once
        ``newcomer`` is loaded), so the outcome does not depend on which of the two loaded first."""
        holder_name = self.registry.provider(kind, name)
        if holder_name is None or holder_name == newcomer.name or holder_name not in self.plugins:
            return  # a plugin registering a name twice: the registry's own error
        holder = self.plugins[holder_name]
        keeper, loser = sorted((holder, newcomer), key=precedence)
        clash = DuplicateComponentError(
            f"{kind} {name!r} is registered by two plugins, {_source(keeper)} and {_source(loser)}: "
            f"{keeper.name!r} keeps it ({PRECEDENCE_RULE}). Uninstall {loser.distribution} or disable it "
            f"(COUPLER_DISABLE_PLUGINS={loser.name}); to use its {kind} instead, "
            f"COUPLER_DISABLE_PLUGINS={keeper.name}."
        )
        if loser is newcomer:
            raise clash
        self._roll_back(holder)
        holder.status, holder.error = "failed", str(clash)
        self._displaced.append(holder)

    def _call_registrations(self, info: PluginInfo) -> None:
        self._check_hook_owners(info)
        for kind in list(self.registry.kinds.values()):
            for impl in getattr(self.hooks.hook, kind.hook).get_hookimpls():
                if impl.plugin_name != info.name:
                    continue

                def register(name, factory, description=None, default=False, *, schema=None, _kind=kind.name):
                    self._settle_clash(_kind, name, info)
                    self.registry.add(Component(_kind, name, factory, info.name, description or "", bool(default),
                                                schema))
                    info.components.setdefault(_kind, []).append(name)

                impl.function(register)
        for impl in self.hooks.hook.register_config_dirs.get_hookimpls():
            if impl.plugin_name != info.name:
                continue

            def register_dir(path):
                path = Path(path)
                if not path.is_dir():
                    raise PluginError(f"config directory {str(path)!r} does not exist")
                check_package_headers(path)
                info.config_dirs.append(str(path.resolve()))

            impl.function(register_dir)

    def _check_hook_owners(self, info: PluginInfo) -> None:
        """A plugin implementing a hook that another plugin added, which then failed: say so, instead of never
        calling the implementation."""
        for hook_name, owner in self.hook_owners.items():
            status = self.plugins[owner].status if owner in self.plugins else "gone"
            if owner != info.name and status != "ok" and any(
                    impl.plugin_name == info.name for impl in getattr(self.hooks.hook, hook_name).get_hookimpls()):
                raise PluginError(f"it implements {hook_name}, a hook of plugin {owner!r}, which is {status}; fix or "
                                  f"install that plugin, or disable this one")

    def default_choice(self, kind: str) -> str | None:
        """The component offered as ``kind``'s default (``register(..., default=True)``): of several offers, the
        one of the plugin first in ``precedence``, as for a name two plugins register. None: no offer."""
        offers = [c for c in self.registry.components(kind) if c.default and c.plugin in self.plugins]
        if not offers:
            return None
        return min(offers, key=lambda c: (precedence(self.plugins[c.plugin]), c.name)).name

    def _fail(self, info: PluginInfo, exc: BaseException) -> None:
        info.status = "failed"
        info.error = _failure_text(exc)
        self._report(info)

    def _report(self, info: PluginInfo) -> None:
        """A warning naming the plugin that failed; under ``strict``, the failure is kept and raised with every
        other one of the same load (``_raise_failures``), so that CI sees them all at once."""
        source = f"plugin {info.name!r} ({info.distribution} {info.version})"
        what = "is incompatible" if info.status == "incompatible" else "failed to load"
        if self.strict:
            self._failures.append(f"{source} {what}: {info.error}")
            return
        log.warning("%s %s and is skipped: %s", source, what, info.error)

    def _raise_failures(self) -> None:
        """Under ``strict``: one ``PluginError`` listing every plugin that failed in the load just over."""
        failures, self._failures = self._failures, []
        if len(failures) == 1:
            raise PluginError(f"{failures[0]} ({STRICT_ENV} is set, so this is an error)")
        if failures:
            raise PluginError(f"{len(failures)} plugins failed ({STRICT_ENV} is set, so these are errors): "
                              + "; ".join(f"{i}. {text}" for i, text in enumerate(failures, 1)))

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



_PACKAGE_HEADER = re.compile(r"#\s*@package\s+(\S+)")


def package_header(path: Path) -> str | None:
    """The package a config file's ``# @package X`` header names (Hydra reads it from the comments above the
    first key), or None without one."""
    with open(path, encoding="utf-8", errors="replace") as handle:
        for line in handle:
            stripped = line.strip()
            if stripped and not stripped.startswith("#"):
                return None
            match = _PACKAGE_HEADER.match(stripped)
            if match:
                return match.group(1)
    return None


def check_package_headers(config_dir: Path) -> None:
    """Refuse a config file of a list group (``callbacks/NAME.yaml``, ``metrics/``, ``exporters/``) without the
    header ``# @package GROUP.NAME``: Hydra would put its keys straight under ``GROUP`` instead of under
    ``GROUP.NAME``, and selecting it would fail far from the cause."""
    from coupler.registry import LIST_GROUPS

    for group in sorted(LIST_GROUPS):
        for path in sorted((Path(config_dir) / group).glob("*.yaml")):
            wanted = f"{group}.{path.stem}"
            found = package_header(path)
            if found not in (wanted, f"_global_.{wanted}"):
                now = f"its header says '# @package {found}'" if found else "it has no '# @package' header"
                raise PluginError(f"config file {str(path)!r}: {now}; a {group} config must start with the line "
                                  f"'# @package {wanted}' (a list group: each choice is a node of its own, "
                                  f"{group}.{path.stem}); add it as its first line")


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


def silenced_distributions(manager: PluginManager) -> list[metadata.Distribution]:
    """The distributions none of whose plugins may load: each is disabled (``COUPLER_DISABLE_PLUGINS``) or not
    allowed (``COUPLER_PLUGINS_ONLY``)."""
    plugins_of: dict[str, list[PluginInfo]] = {}
    for name in manager.distributions:  # the distribution's name as load_entry_points read it, not parsed again
        info = manager.plugins[name]
        plugins_of.setdefault(normalized_distribution(info.distribution or ""), []).append(info)
    return [manager.distributions[infos[0].name] for infos in plugins_of.values()
            if all(info.status in ("disabled", "blocked") for info in infos)]


def hydra_plugin_modules(dist: metadata.Distribution) -> dict[Path, set[str]]:
    """The modules ``dist`` installed in the ``hydra_plugins`` namespace package, by directory (from the
    distribution's file list, ``Distribution.files``)."""
    found: dict[Path, set[str]] = {}
    for file in dist.files or ():
        parts = file.parts
        if len(parts) < 2 or parts[0] != "hydra_plugins" or parts[1] == "__pycache__":
            continue
        name = parts[1] if len(parts) > 2 else inspect.getmodulename(parts[1])
        if name and name != "__init__":
            found.setdefault(Path(dist.locate_file("hydra_plugins")).resolve(), set()).add(name)
    return found


def _modules_in(directory: str) -> Iterator[tuple[str, bool]]:
    """(name, is a package) for each module of ``directory``, as ``pkgutil`` lists a plain directory."""
    seen = set()
    try:
        entries = sorted(os.scandir(directory), key=lambda entry: entry.name)
    except OSError:
        return
    for entry in entries:
        if entry.is_dir():
            name = entry.name
            try:
                is_package = any(inspect.getmodulename(f) == "__init__" for f in os.listdir(entry.path))
            except OSError:
                is_package = False
            if not is_package:
                continue
        else:
            name = inspect.getmodulename(entry.name)
            if not name or name == "__init__":
                continue
        if "." not in name and name not in seen:
            seen.add(name)
            yield name, entry.is_dir()


class _HidingFinder:
    """The path entry finder of one ``hydra_plugins`` directory, minus some of its modules: Hydra's plugin scan
    (``pkgutil.walk_packages`` over ``hydra_plugins.__path__``, then the finder's ``find_spec``) neither lists
    nor finds them, and neither does ``import hydra_plugins.NAME``."""

    def __init__(self, path: str, finder, hidden: set[str]):
        self.path, self._finder, self.hidden = path, finder, frozenset(hidden)

    def find_spec(self, fullname: str, target=None):
        if fullname.rpartition(".")[2] in self.hidden:
            return None
        return self._finder.find_spec(fullname, target)

    def iter_modules(self, prefix: str = ""):
        for name, is_package in _modules_in(self.path):
            if name not in self.hidden:
                yield prefix + name, is_package

    def invalidate_caches(self) -> None:
        if hasattr(self._finder, "invalidate_caches"):
            self._finder.invalidate_caches()


def hide_hydra_plugins(distributions: Iterable[metadata.Distribution]) -> list[str]:
    """Keep Hydra from importing the ``hydra_plugins`` modules of ``distributions`` (it imports every module of
    that namespace package when ``hydra.main`` runs). Each ``hydra_plugins`` directory holding one of them
    gets, in ``sys.path_importer_cache`` (the path-based import system's own cache), a finder that hides
    them; the other modules there stay as they were. Returns the hidden modules' names."""
    hidden: dict[Path, set[str]] = {}
    for dist in distributions:
        for directory, names in hydra_plugin_modules(dist).items():
            hidden.setdefault(directory, set()).update(names)
    if not hidden:
        return []
    try:
        namespace = importlib.import_module("hydra_plugins")
    except ImportError:
        return []
    import pkgutil

    for entry in list(getattr(namespace, "__path__", [])):
        names = hidden.get(Path(entry).resolve())
        finder = pkgutil.get_importer(entry) if names else None
        if finder is not None:
            if isinstance(finder, _HidingFinder):
                names, finder = names | finder.hidden, finder._finder
            sys.path_importer_cache[entry] = _HidingFinder(entry, finder, names)
    return sorted(f"hydra_plugins.{name}" for names in hidden.values() for name in names)


@functools.cache
def get_plugin_manager() -> PluginManager:
    """The process's plugin manager, loaded on first use (built-ins, then entry points); the Hydra plugin
    modules of distributions that may not load are hidden before Hydra looks for them."""
    only = os.environ.get(ONLY_ENV) or None  # set but empty: no allow-list, as COUPLER_DISABLE_PLUGINS= disables none
    manager = PluginManager(
        disabled=_names(os.environ.get(DISABLE_ENV)),
        strict=os.environ.get(STRICT_ENV, "") not in ("", "0", "false", "no"),
        only=None if only is None else _names(only),
        import_timeout=import_timeout(os.environ.get(IMPORT_TIMEOUT_ENV)),
    )
    manager.load_builtins()
    manager.load_entry_points()
    for variable, names in ((DISABLE_ENV, manager.disabled), (ONLY_ENV, manager.only or set())):
        for name in sorted(names - set(manager.plugins)):
            log.warning("%s names %r, which is not an installed plugin; installed: %s", variable, name,
                        ", ".join(sorted(manager.plugins)))
    hide_hydra_plugins(silenced_distributions(manager))
    return manager
