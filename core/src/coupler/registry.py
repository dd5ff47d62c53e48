"""The component registry: every registered component by kind and name, and the plugin that provided it."""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from coupler.errors import CouplerError, did_you_mean

NAME = re.compile(r"^[a-z][a-z0-9_]*$")
#: top-level config keys of the core that no plugin's group may take
RESERVED_GROUPS = frozenset({"task", "seed", "split", "preprocess", "plugins", "resume", "hydra"})

@dataclass(frozen=True)
class Kind:
    """A component kind: the config group that selects its components and the hook that registers them.

    The core declares ``CORE_KINDS``; a plugin declares kinds of its own with the ``register_kinds`` hook (the
    torch engine's ``optimizer`` and ``scheduler``), which then work exactly as the core's: listed by
    ``coupler plugins`` and ``coupler train --help``, chosen with ``group=NAME``, checked by name."""

    name: str
    group: str
    hook: str
    #: a list group selects several components at once (``metrics=[a,b]``); the others select one
    many: bool = False
    #: the plugin that declared it ("coupler" for the core's own)
    plugin: str = "coupler"
    #: one line on what a factory returns (the conformance kit's message when it returns something else)
    contract: str = ""
    #: the conformance kit's extra rules for this kind: rule -> ``check(component)``, which raises
    #: ``coupler.conformance.RuleBroken(problem, fix)`` when the built component breaks the rule
    checks: dict = field(default_factory=dict, compare=False)
    #: the ``Model`` attribute that says a model uses this kind; a model without it given ``group=NAME`` is
    #: refused before it trains (None: every model may be given one)
    used_by: str | None = None


@dataclass(frozen=True)
class SettingGroup:
    """A config group of settings that selects no component (``trainer=default``), declared by a plugin with the
    ``register_config_groups`` hook; its options are the config files ``GROUP/OPTION.yaml`` of its config
    directories."""

    name: str
    default: str | None
    plugin: str
    description: str = ""
    #: overrides that make a run as short as a test allows; the conformance kit adds them to every run
    test_overrides: tuple[str, ...] = ()
    #: the engines (``Model.engine``) whose models read the group; empty: every model. A run of another model
    #: that changes the group from its default is refused (``coupler.capabilities.check_setting_groups``).
    engines: tuple[str, ...] = ()
    #: the dataclass of its settings (``coupler.schema``): the default option's node when no file provides it, and
    #: the check of every option's node; None: the option files are taken as they are
    schema: type | None = None


CORE_KINDS = (
    Kind("data", "data", "register_data_loaders", contract="a coupler.dataset.Dataset"),
    Kind("model", "model", "register_models", contract="a coupler.components.Model (fit, predict, save, load)"),
    Kind("callback", "callbacks", "register_callbacks", many=True,
         contract="an object with lifecycle hook implementations"),
    Kind("metric", "metrics", "register_metrics", many=True, contract="a coupler.components.Metric"),
    Kind("exporter", "exporters", "register_exporters", many=True,
         contract="a coupler.components.Exporter (export(model, run, directory) -> paths)"),
    # experiment trackers (coupler-mlflow, coupler-tensorboard): callbacks chosen apart from callbacks=, so that
    # tracking=[mlflow,tensorboard] in a config or on the command line leaves the run's own callbacks alone
    Kind("tracker", "tracking", "register_trackers", many=True,
         contract="a callback: an object with lifecycle hook implementations (coupler.Callback)"),
)
#: The core's component kinds with the config group that selects each (a registry adds the plugins' own kinds:
#: ``Registry.groups``).
GROUPS: dict[str, str] = {kind.name: kind.group for kind in CORE_KINDS}
#: The core's groups that select several components at once (``metrics=[a,b]``); the others select one.
LIST_GROUPS = frozenset(kind.group for kind in CORE_KINDS if kind.many)
KIND_OF_GROUP = {group: kind for kind, group in GROUPS.items()}


@dataclass(frozen=True)
class Component:
    kind: str
    name: str
    factory: Callable
    plugin: str
    description: str = ""
    #: offered as the default choice of its kind (``register(..., default=True)``); of several offers, the plugin
    #: first in precedence wins (``PluginManager.default_choice``)
    default: bool = False
    #: the dataclass of its parameters (``coupler.schema``), as registered; None: derived from the factory
    schema: type | None = None
    #: the ``Registry`` holding it (set by ``Registry.add``): a component made of other components (an ensemble)
    #: checks and builds them here. Its factory asks for it with ``factory.takes_registry = True``; its schema
    #: checks them with a ``check_parts(node, key, registry)`` static method.
    registry: "Registry | None" = field(default=None, compare=False, repr=False)

    @functools.cached_property
    def parameters(self) -> type:
        """The component's schema: the one registered, or the one derived from its factory's signature."""
        from coupler.schema import derived

        return self.schema if self.schema is not None else derived(self.factory, self.kind)

    def node(self, config: dict) -> dict:
        """The config node (``name`` dropped) over the schema's defaults: a key the node lacks takes the default."""
        from coupler.schema import defaults

        return _merged(defaults(self.parameters), {k: v for k, v in config.items() if k != "name"})

    def check(self, key: str, config: dict) -> None:
        """Check a config node against the schema (``coupler.schema.check_node``): the key, type, range and choices
        of every value, each error one line naming the key."""
        from coupler.schema import check_node

        node = self.node(config)
        check_node(node, self.parameters, key, what=f"{self.kind} {self.name!r}")
        check_parts = getattr(self.parameters, "check_parts", None)
        if check_parts is not None:
            check_parts(node, key, self.registry)

    def build(self, key: str, config: dict, **context):
        """Call the factory with the component's config node checked against its schema and completed with the
        schema's defaults (``name`` dropped), and ``context`` (a model's ``task`` and ``seed``)."""
        self.check(key, config)
        if getattr(self.factory, "takes_registry", False):
            context = {**context, "registry": self.registry}
        return self.factory(**self.node(config), **context)


def _check_schema(component: Component) -> None:
    """A registered schema is a dataclass whose every field the factory takes (by keyword)."""
    import inspect

    what = f"{component.kind} {component.name!r}"
    if not (isinstance(component.schema, type) and dataclasses.is_dataclass(component.schema)):
        raise CouplerError(f"{what}: schema= must be a dataclass (coupler.schema), not {component.schema!r}")
    try:
        parameters = inspect.signature(component.factory).parameters
    except (TypeError, ValueError):
        return
    if any(p.kind is p.VAR_KEYWORD for p in parameters.values()):
        return
    missing = [f.name for f in dataclasses.fields(component.schema) if f.name not in parameters]
    if missing:
        raise CouplerError(f"{what}: the factory takes no parameter {missing[0]!r} of its schema "
                           f"{component.schema.__name__}; add it to the factory's signature (or take **params)")


def _merged(defaults: dict, given: dict) -> dict:
    """``given`` over ``defaults``, nested mappings merged key by key."""
    merged = dict(defaults)
    for key, value in given.items():
        merged[key] = _merged(merged[key], value) if isinstance(value, dict) and isinstance(merged.get(key), dict) \
            else value
    return merged


class UnknownComponentError(CouplerError):
    """A config names a component that no loaded plugin registers."""


class DuplicateComponentError(CouplerError):
    """Two plugins register the same component name."""


class Registry:
    """Components by (kind, name). Filled by the plugin manager; read by the runner and the CLI."""

    def __init__(self) -> None:
        self._components: dict[tuple[str, str], Component] = {}
        #: component kinds by name: the core's, then those plugins declared (``add_kind``)
        self.kinds: dict[str, Kind] = {kind.name: kind for kind in CORE_KINDS}
        #: settings groups plugins declared (``add_setting_group``), by group
        self.setting_groups: dict[str, SettingGroup] = {}
        #: (kind, name) -> plugin, for components of plugins disabled after they were loaded
        self.disabled: dict[tuple[str, str], str] = {}
        #: plugins disabled before loading (COUPLER_DISABLE_PLUGINS): their components are unknown
        self.disabled_plugins: set[str] = set()
        #: plugins not allowed by COUPLER_PLUGINS_ONLY (never imported): their components are unknown
        self.blocked_plugins: set[str] = set()

    # --- kinds and groups -------------------------------------------------------------------------------

    @property
    def groups(self) -> dict[str, str]:
        """Every component kind with the config group that selects it, the plugins' kinds included."""
        return {kind.name: kind.group for kind in self.kinds.values()}

    @property
    def list_groups(self) -> frozenset[str]:
        return frozenset(kind.group for kind in self.kinds.values() if kind.many)

    @property
    def kind_of_group(self) -> dict[str, str]:
        return {kind.group: kind.name for kind in self.kinds.values()}

    def group(self, kind: str) -> str:
        try:
            return self.kinds[kind].group
        except KeyError:
            raise CouplerError(f"no installed plugin declares the component kind {kind!r}; kinds are "
                               f"{', '.join(self.kinds)}") from None

    def add_kind(self, kind: Kind) -> None:
        """Declare a plugin's component kind; a kind, group or hook name already in use is an error."""
        if not NAME.match(kind.name) or not NAME.match(kind.group) or not kind.hook.startswith("register_"):
            raise CouplerError(f"a component kind needs lowercase names and a register_* hook, not kind="
                               f"{kind.name!r}, group={kind.group!r}, hook={kind.hook!r}")
        for other in self.kinds.values():
            for what, mine, theirs in (("kind", kind.name, other.name), ("config group", kind.group, other.group),
                                       ("hook", kind.hook, other.hook)):
                if mine == theirs:
                    raise CouplerError(f"component kind {kind.name!r}: the {what} name {mine!r} is taken by kind "
                                       f"{other.name!r} (plugin {other.plugin!r}); choose another name")
        if kind.group in self.setting_groups or kind.group in RESERVED_GROUPS:
            raise CouplerError(f"component kind {kind.name!r}: the config group {kind.group!r} is taken; choose "
                               f"another name")
        self.kinds[kind.name] = kind

    def add_setting_group(self, group: SettingGroup) -> None:
        """Declare a plugin's settings group; a name a kind or another group uses is an error."""
        holder = next((k for k in self.kinds.values() if group.name in (k.name, k.group)), None) \
            or self.setting_groups.get(group.name)
        if holder is not None or group.name in RESERVED_GROUPS or not NAME.match(group.name):
            owner = f" (plugin {holder.plugin!r})" if holder is not None else ""
            raise CouplerError(f"the config group {group.name!r} is taken{owner} or not a lowercase name; choose "
                               f"another name")
        if group.schema is not None and not (isinstance(group.schema, type) and dataclasses.is_dataclass(group.schema)):
            raise CouplerError(f"config group {group.name!r}: schema= must be a dataclass (coupler.schema), not "
                               f"{group.schema!r}")
        self.setting_groups[group.name] = group

    def remove_kinds_of(self, plugin: str) -> None:
        """Drop the kinds and settings groups ``plugin`` declared, and every component of those kinds."""
        gone = [name for name, kind in self.kinds.items() if kind.plugin == plugin]
        for name in gone:
            del self.kinds[name]
        self._components = {k: c for k, c in self._components.items() if c.kind not in gone}
        self.setting_groups = {n: g for n, g in self.setting_groups.items() if g.plugin != plugin}

    # --- components ---------------------------------------------------------------------------------------

    def add(self, component: Component) -> None:
        if component.kind not in self.kinds:
            raise CouplerError(f"unknown component kind {component.kind!r}; kinds are {', '.join(self.kinds)}")
        if not component.name or not isinstance(component.name, str):
            raise CouplerError(f"a {component.kind} name must be a non-empty string, not {component.name!r}")
        if not callable(component.factory):
            raise CouplerError(f"{component.kind} {component.name!r}: the factory must be callable")
        if component.schema is not None:
            _check_schema(component)
        component = dataclasses.replace(component, registry=self)
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
        group = self.group(kind)
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
        group = self.group(kind)
        note = self.unavailable_note()
        if not options:
            return f"{group}={name}: no {kind} is registered. Install a plugin that provides one.{note}"
        listing = "\n".join(f"  {option:<28} (plugin: {plugin})" for option, plugin in sorted(options.items()))
        return (
            f"{group}={name}: unknown {kind} {name!r}.{did_you_mean(name, options)}\n"
            f"Valid choices for {group}:\n{listing}{note}"
        )

    def unavailable_note(self) -> str:
        """The lines naming the plugins whose components are not listed (COUPLER_DISABLE_PLUGINS,
        COUPLER_PLUGINS_ONLY), for a message listing choices."""
        note = (f"\nPlugins disabled by COUPLER_DISABLE_PLUGINS, whose components are not listed: "
                f"{', '.join(sorted(self.disabled_plugins))}." if self.disabled_plugins else "")
        if self.blocked_plugins:
            note += (f"\nPlugins not allowed by COUPLER_PLUGINS_ONLY, whose components are not listed: "
                     f"{', '.join(sorted(self.blocked_plugins))}.")
        return note

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
