"""The component registry: every registered component by kind and name, and the plugin that provided it."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass

from coupler.errors import CouplerError, did_you_mean

#: Component kinds, in the order ``coupler plugins`` lists them, with the config group that selects each.
GROUPS: dict[str, str] = {
    "data": "data",
    "model": "model",
    "optimizer": "optimizer",
    "scheduler": "scheduler",
    "callback": "callbacks",
    "metric": "metrics",
    "exporter": "exporters",
}
#: Groups that select several components at once (``metrics=[a,b]``); the others select one.
LIST_GROUPS = frozenset({"callbacks", "metrics", "exporters"})
KIND_OF_GROUP = {group: kind for kind, group in GROUPS.items()}


@dataclass(frozen=True)
class Component:
    kind: str
    name: str
    factory: Callable
    plugin: str
    description: str = ""

    def build(self, key: str, config: dict, **context):
        """Call the factory with the component's config node (``name`` dropped) and ``context`` (a model's
        ``task`` and ``seed``), after checking every config key against the factory's signature."""
        kwargs = {k: v for k, v in config.items() if k != "name"}
        try:
            parameters = inspect.signature(self.factory).parameters.values()
        except (TypeError, ValueError):  # a builtin or C callable: let it check its own arguments
            parameters = None
        if parameters is not None and not any(p.kind is p.VAR_KEYWORD for p in parameters):
            valid = [p.name for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
            unknown = [k for k in kwargs if k not in valid or k in context]
            if unknown:
                allowed = [v for v in valid if v not in context]
                raise CouplerError(
                    f"{key}.{unknown[0]}: {self.kind} {self.name!r} has no parameter {unknown[0]!r}."
                    f"{did_you_mean(unknown[0], allowed)} Its parameters are: {', '.join(allowed) or '(none)'}."
                )
        return self.factory(**kwargs, **context)


class UnknownComponentError(CouplerError):
    """A config names a component that no loaded plugin registers."""


class DuplicateComponentError(CouplerError):
    """Two plugins register the same component name."""


class Registry:
    """Components by (kind, name). Filled by the plugin manager; read by the runner and the CLI."""

    def __init__(self) -> None:
        self._components: dict[tuple[str, str], Component] = {}
        #: (kind, name) -> plugin, for components of plugins disabled after they were loaded
        self.disabled: dict[tuple[str, str], str] = {}
        #: plugins disabled before loading (COUPLER_DISABLE_PLUGINS): their components are unknown
        self.disabled_plugins: set[str] = set()
        #: plugins not allowed by COUPLER_PLUGINS_ONLY (never imported): their components are unknown
        self.blocked_plugins: set[str] = set()

    def add(self, component: Component) -> None:
        if component.kind not in GROUPS:
            raise CouplerError(f"unknown component kind {component.kind!r}; kinds are {', '.join(GROUPS)}")
        if not component.name or not isinstance(component.name, str):
            raise CouplerError(f"a {component.kind} name must be a non-empty string, not {component.name!r}")
        if not callable(component.factory):
            raise CouplerError(f"{component.kind} {component.name!r}: the factory must be callable")
        key = (component.kind, component.name)
        if key in self._components:
            other = self._components[key].plugin
            raise DuplicateComponentError(
                f"{component.kind} {component.name!r} is registered by two plugins: {other!r} and "
                f"{component.plugin!r}. Uninstall or disable one of them (COUPLER_DISABLE_PLUGINS={other} or "
                f"COUPLER_DISABLE_PLUGINS={component.plugin})."
            )
        self._components[key] = component

    def provider(self, kind: str, name: str) -> str | None:
        """The plugin that registered ``kind`` ``name``, or None."""
        component = self._components.get((kind, name))
        return component.plugin if component else None

    def get(self, kind: str, name: str) -> Component:
        try:
            return self._components[(kind, name)]
        except KeyError:
            pass
        group = GROUPS[kind]
        if (kind, name) in self.disabled:
            plugin = self.disabled[(kind, name)]
            raise UnknownComponentError(
                f"{group}={name}: {kind} {name!r} is provided by plugin {plugin!r}, which is disabled "
                f"(COUPLER_DISABLE_PLUGINS or plugins.disable). Enable it, or choose another {kind}."
            )
        raise UnknownComponentError(self.unknown_message(kind, name))

    def unknown_message(self, kind: str, name: str, extra_options: dict[str, str] | None = None) -> str:
        """The message for an unknown ``name``: every valid choice with its plugin, and the closest one."""
        options = {c.name: c.plugin for c in self.components(kind)}
        options.update(extra_options or {})
        group = GROUPS[kind]
        note = (f"\nPlugins disabled by COUPLER_DISABLE_PLUGINS, whose components are not listed: "
                f"{', '.join(sorted(self.disabled_plugins))}." if self.disabled_plugins else "")
        if self.blocked_plugins:
            note += (f"\nPlugins not allowed by COUPLER_PLUGINS_ONLY, whose components are not listed: "
                     f"{', '.join(sorted(self.blocked_plugins))}.")
        if not options:
            return f"{group}={name}: no {kind} is registered. Install a plugin that provides one.{note}"
        listing = "\n".join(f"  {option:<28} (plugin: {plugin})" for option, plugin in sorted(options.items()))
        return (
            f"{group}={name}: unknown {kind} {name!r}.{did_you_mean(name, options)}\n"
            f"Valid choices for {group}:\n{listing}{note}"
        )

    def snapshot(self) -> tuple:
        """What ``restore`` puts back: the components and the record of disabled ones."""
        return dict(self._components), dict(self.disabled)

    def restore(self, snapshot: tuple) -> None:
        self._components, self.disabled = dict(snapshot[0]), dict(snapshot[1])

    def components(self, kind: str | None = None) -> list[Component]:
        return [c for c in self._components.values() if kind is None or c.kind == kind]

    def names(self, kind: str) -> list[str]:
        return sorted(c.name for c in self.components(kind))

    def remove_plugin(self, plugin: str, *, disabled: bool = False) -> None:
        """Drop every component of ``plugin`` (a failed registration's rollback, or a disabling)."""
        for key, component in list(self._components.items()):
            if component.plugin == plugin:
                del self._components[key]
                if disabled:
                    self.disabled[key] = plugin
