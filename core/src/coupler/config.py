"""Hydra composition: the primary config, the plugins' config directories, and checks on overrides.

The primary config (``coupler``) is built here, in code, from the installed plugins (its defaults and help); the
config directories they register join Hydra's search path through ``hydra_plugins.coupler_searchpath``, for this
primary config and for a user's that names it (``-cp DIR -cn NAME``). Every registered component that has no YAML
file of its own gets a minimal node ``{name: NAME}`` in Hydra's ConfigStore, so ``model=NAME`` works for any
registered model.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from coupler.errors import ConfigError, CouplerError
from coupler.registry import UnknownComponentError
from coupler.settings import CORE_SETTINGS

if TYPE_CHECKING:  # pragma: no cover
    from coupler.plugin_manager import PluginManager

PRIMARY = "coupler"
#: Coupler's own config files (csv / parquet data, callbacks): Hydra's primary directory
CORE_CONF = Path(__file__).parent / "conf"


def defaults_list(manager: PluginManager) -> list:
    """The primary config's defaults: each single group's default choice (the one a plugin offers, or none), empty
    list groups, each settings group's default option, Coupler's logging. The core names no component: the
    scikit-learn plugin offers ``model=logistic_regression``, the core's data sets ``data=iris``."""
    registry = manager.registry
    groups: list = [{kind.group: [] if kind.many else manager.default_choice(kind.name)}
                    for kind in registry.kinds.values()]
    groups += [{group.name: group.default} for group in registry.setting_groups.values()]
    # Coupler's logging: Hydra's own configs with the console on stderr; hydra/job_logging=... replaces it whole
    return [*groups, {"override hydra/job_logging": "coupler"}, {"override hydra/hydra_logging": "coupler"}, "_self_"]


def default_choices(manager: PluginManager) -> dict:
    """``{group: default choice}`` of the defaults list's groups (None: none)."""
    return {group: choice for entry in defaults_list(manager) if isinstance(entry, dict)
            for group, choice in entry.items() if not group.startswith("override ")}


def settings(registry) -> set[str]:
    """The top-level keys of a composed config: every kind's group, every settings group, the core's settings."""
    return {*registry.groups.values(), *registry.setting_groups, *CORE_SETTINGS}


def primary_config(manager: PluginManager, chosen: dict | None = None) -> dict:
    from coupler.schema import defaults
    from coupler.settings import CoreSettings

    return {
        "defaults": defaults_list(manager),
        **defaults(CoreSettings),
        "hydra": {
            "job": {"name": "train", "chdir": False},
            # Hydra writes nothing into the run directory before the job checks it (the run keeps its
            # own config.yaml and overrides.yaml)
            "output_subdir": None,
            "run": {"dir": "runs/${now:%Y-%m-%d}/${now:%H-%M-%S-%f}"},
            "help": {"app_name": "coupler train", "template": help_template(manager, chosen)},
            # a sweeper may choose its own default (hydra.sweeper.sweep_dir: a search's is one per study)
            "sweep": {"dir": "${oc.select:hydra.sweeper.sweep_dir,'multirun/${now:%Y-%m-%d}/${now:%H-%M-%S-%f}'}",
                      "subdir": "${hydra.job.num}"},
            # a run or sweep directory that cannot be created is one line, before Hydra tries; a sweep's
            # parameters are checked before its first job, and its jobs' outcomes collected after the last
            "callbacks": {"run_directory_check": {"_target_": "coupler.hydra_callbacks.RunDirectoryCheck"},
                          "sweep_outcomes": {"_target_": "coupler.hydra_callbacks.SweepOutcomes"}},
        },
    }


#: ``hydra/job_logging=coupler`` (the default): Hydra's default job logging with the console on stderr, so that
#: stdout holds only what a command prints (the metrics table). The log file of a secondary process of a
#: distributed job (a DDP rank other than 0) is os.devnull: only rank 0 writes the run directory.
JOB_LOGGING = {
    "version": 1,
    "formatters": {"simple": {"format": "[%(asctime)s][%(name)s][%(levelname)s] - %(message)s"}},
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "simple", "stream": "ext://sys.stderr"},
        "file": {"class": "logging.FileHandler", "formatter": "simple",
                 "filename": "${coupler_log_file:${hydra.runtime.output_dir}/${hydra.job.name}.log}"},
    },
    "root": {"level": "INFO", "handlers": ["console", "file"]},
    "disable_existing_loggers": False,
}
#: ``hydra/hydra_logging=coupler`` (the default): Hydra's own messages on stderr
HYDRA_LOGGING = {
    "version": 1,
    "formatters": {"simple": {"format": "[%(asctime)s][HYDRA] %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "simple", "stream": "ext://sys.stderr"}},
    "root": {"level": "INFO", "handlers": ["console"]},
    "disable_existing_loggers": False,
}


def register_resolvers() -> None:
    """``${coupler_log_file:PATH}``: PATH, or os.devnull in a secondary process of a distributed job."""
    import os

    from omegaconf import OmegaConf

    from coupler.distributed import secondary_process

    if not OmegaConf.has_resolver("coupler_log_file"):
        OmegaConf.register_new_resolver("coupler_log_file", lambda path: os.devnull if secondary_process() else path)


def help_template(manager: PluginManager, chosen: dict | None = None) -> str:
    """``coupler train --help``: every group's choices with their plugins (Hydra's own listing misses the
    directories that plugins add to the search path), the parameters of the chosen components (``chosen``:
    ``{group: option}`` from the command line, over the defaults), then the composed config and Hydra's flags."""
    lines = ["coupler train [OVERRIDES...]: train and write one run directory (-m: one per combination).", "",
             "== Config groups (group=option; option (plugin)) ==", ""]
    registry = manager.registry
    for group in [*registry.groups.values(), *registry.setting_groups]:
        options = group_options(manager, group)
        listing = ", ".join(f"{name} ({plugin})" for name, plugin in sorted(options.items())) or "(none installed)"
        lines.append(f"{group}{' (a list: ' + group + '=[a,b])' if group in registry.list_groups else ''}: {listing}")
    lines += ["", "== Parameters of the chosen components (GROUP.KEY=VALUE) ==", ""]
    lines += parameter_listing(manager, chosen)
    lines += ["", "== Config ==", "Override anything in the config (split.test=0.2, model.params.max_iter=500); add "
              "a key it does not list with + (+model.params.tol=0.001)", "",
              "$CONFIG", "", "== Hydra flags ==", "$FLAGS_HELP"]
    # Hydra's help template is an OmegaConf string: escape interpolation markers from option names
    return "\n".join(lines).replace("${", "\\${")


def parameter_listing(manager: PluginManager, chosen: dict | None = None) -> list[str]:
    """The parameters of each chosen component, from its schema (``coupler.schema.listing``); list groups name
    their components' keys under ``GROUP.NAME``."""
    from coupler.schema import listing

    registry = manager.registry
    choices = {**default_choices(manager), **(chosen or {})}
    lines: list[str] = []
    for group, option in choices.items():
        if group not in registry.kind_of_group:
            continue
        for one in (option if isinstance(option, list) else [option]):
            component = _component_of(manager, group, one)
            if component is None:
                continue
            prefix = f"{group}.{one}" if group in registry.list_groups else group
            lines += [f"{prefix}={one}:" if group not in registry.list_groups else f"{group}=[{one}]:",
                      *(listing(component.parameters, prefix) or ["  (no parameters)"])]
    for settings_group in registry.setting_groups.values():
        if settings_group.schema is not None:
            lines += [f"{settings_group.name} ({settings_group.description or settings_group.plugin}):",
                      *listing(settings_group.schema, settings_group.name)]
    from coupler.settings import CoreSettings

    return [*lines, "run settings:", *listing(CoreSettings, "")]


def config_directories(manager: PluginManager, extra: tuple[str, ...] = ()) -> list[tuple[str, str]]:
    """(provider, directory) of every config directory, in Hydra's search order: the core's, the plugins',
    then ``extra`` (the user's ``--config-dir``)."""
    return [("coupler", str(CORE_CONF)), *manager.config_dirs(), *(("your --config-dir", d) for d in extra)]


def file_options(manager: PluginManager, group: str, extra: tuple[str, ...] = ()) -> dict[str, str]:
    """Options of ``group`` that config files provide: option -> plugin ("coupler" for the core's own)."""
    options: dict[str, str] = {}
    for plugin, directory in config_directories(manager, extra):
        for path in sorted((Path(directory) / group).glob("*.yaml")):
            options.setdefault(path.stem, plugin)
    return options


def group_options(manager: PluginManager, group: str, extra: tuple[str, ...] = ()) -> dict[str, str]:
    """Every choice of ``group``: config files and registered components, each with the plugin that provides
    it. A file names its component (``name: ...``): the option is that component's plugin's, and a file
    whose component is not registered (its plugin is missing or disabled) offers no choice."""
    options = file_options(manager, group, extra)
    kind_of_group = manager.registry.kind_of_group
    if group not in kind_of_group:
        settings_group = manager.registry.setting_groups.get(group)
        if settings_group is not None and settings_group.schema is not None and settings_group.default:
            options.setdefault(settings_group.default, settings_group.plugin)  # its node is the schema
        return options
    kind = kind_of_group[group]
    registered = {c.name: c.plugin for c in manager.registry.components(kind)}
    for option in list(options):
        component = _named_component(manager, group, option, extra) or option
        if component in registered:
            options[option] = registered[component]
        else:
            del options[option]
    options.update(registered)
    return options


def _option_file(manager: PluginManager, group: str, option: str, extra: tuple[str, ...] = ()) -> Path | None:
    """The config file Hydra reads for ``group=option`` (the first on the search path), or None."""
    for _, directory in config_directories(manager, extra):
        path = Path(directory) / group / f"{option}.yaml"
        if path.is_file():
            return path
    return None


def _named_component(manager: PluginManager, group: str, option: str, extra: tuple[str, ...] = ()) -> str | None:
    """The component a config file names: its ``name:``, or the name of the option its defaults list extends."""
    node = _file_node(manager, group, option, extra)
    return node.get("name") if isinstance(node, dict) and isinstance(node.get("name"), str) else None


def _file_node(manager: PluginManager, group: str, option: str, extra: tuple[str, ...] = (), seen: tuple = ()):
    """The node the config file of ``group=option`` gives, or None where there is no file or it cannot be told
    without composing (a ``# @package`` header, bad YAML, a defaults list reaching another group). A defaults list of
    options of the same group (``defaults: [logistic_regression, _self_]``, the way a file extends a component's
    full node) is merged in its order, ``_self_`` last where it is not listed, as Hydra does."""
    import yaml
    from omegaconf import OmegaConf

    path = _option_file(manager, group, option, extra)
    if path is None or option in seen:
        return None
    text = path.read_text()
    if "@package" in text:
        return None
    try:
        node = yaml.safe_load(text)
    except yaml.YAMLError:
        return None
    if node is None:
        return {}
    if not isinstance(node, dict):
        return None
    entries = node.pop("defaults", None)
    if entries is None:
        return node
    if not isinstance(entries, list) or not all(isinstance(e, str) and "/" not in e and "@" not in e
                                                 for e in entries):
        return None
    merged = OmegaConf.create({})
    for entry in entries if "_self_" in entries else [*entries, "_self_"]:
        part = node if entry == "_self_" else default_node(manager, group, entry, extra, (*seen, option))
        if part is None:
            return None
        merged = OmegaConf.merge(merged, part)
    return OmegaConf.to_container(merged)


#: the config directories of the manager whose configs ``store_configs`` stored last: Hydra's search path gets them
#: through ``hydra_plugins.coupler_searchpath``
stored_directories: list[tuple[str, str]] = []


#: what ``store_configs`` stored last: the same entries again need no second conversion (0.2 s a call, and the
#: conformance kit and the tests compose hundreds of times in one process)
_last_stored: list = [None]


def store_configs(manager: PluginManager, chosen: dict | None = None) -> None:
    """Put the primary config, Coupler's logging configs and the generated component nodes into Hydra's ConfigStore,
    and the manager's config directories into ``stored_directories``.

    ``chosen`` (``{group: option or options}``): the command is ``--help``, whose listing shows the parameters of the
    chosen components. Hydra's help copies the whole ConfigStore for each group it lists (90 copies, 3.5 s with every
    component's node) and composes only the chosen and default components, so only theirs are stored (the help
    template lists every option itself: ``help_template``)."""
    from hydra.core.config_store import ConfigStore

    from coupler.schema import hydra_node

    stored_directories[:] = config_directories(manager)
    entries = [(None, PRIMARY, primary_config(manager, chosen), None, "coupler"),
               ("hydra/job_logging", "coupler", JOB_LOGGING, "hydra.job_logging", "coupler"),
               ("hydra/hydra_logging", "coupler", HYDRA_LOGGING, "hydra.hydra_logging", "coupler")]
    for group in manager.registry.setting_groups.values():
        if group.schema is not None and group.default and group.default not in file_options(manager, group.name):
            entries.append((group.name, group.default, (group.schema, None), group.name, group.plugin))
    composed = None
    if chosen is not None:
        composed = {**default_choices(manager), **chosen}
        composed = {group: set(c if isinstance(c, list) else [c]) for group, c in composed.items()}
    for kind, group in manager.registry.groups.items():
        with_files = file_options(manager, group)
        for component in manager.registry.components(kind):
            if component.name in with_files or (composed is not None and component.name not in composed.get(group, ())):
                continue
            package = f"{group}.{component.name}" if group in manager.registry.list_groups else group
            entries.append((group, component.name, (component.parameters, component.name), package, component.plugin))
    if _last_stored[0] == entries:  # the schemas compare by identity, the primary and logging configs by value
        return
    store = ConfigStore.instance()
    for group, name, node, package, provider in entries:
        node = hydra_node(*node) if isinstance(node, tuple) else node
        store.store(group=group, name=name, node=node, package=package, provider=provider)
    _last_stored[0] = entries


def default_node(manager: PluginManager, group: str, option: str, extra: tuple[str, ...] = (),
                 seen: tuple = ()) -> dict | None:
    """The config node ``group=option`` starts from, before overrides: its config file (``_file_node``), or the node
    generated for a component without one. None where it cannot be told without composing."""
    if _option_file(manager, group, option, extra) is not None:
        return _file_node(manager, group, option, extra, seen)
    from coupler.schema import defaults

    settings_group = manager.registry.setting_groups.get(group)
    if settings_group is not None and settings_group.schema is not None and option == settings_group.default:
        return defaults(settings_group.schema)
    kind_of_group = manager.registry.kind_of_group
    if group in kind_of_group:
        try:
            return {"name": option, **defaults(manager.registry.get(kind_of_group[group], option).parameters)}
        except CouplerError:
            return None
    return None


def check_settings(config: dict, registry) -> None:
    """The shape and type of the core's settings (``coupler.settings``) and of every chosen component's node, so that a
    bad value is a one-line error naming the key."""
    known = settings(registry)
    unknown = sorted(set(config) - known)
    if unknown:
        raise ConfigError(unknown[0], config[unknown[0]], f"top-level keys are {', '.join(sorted(known))} "
                          f"(a config file with a wrong '# @package' header puts its keys at the top)")
    from coupler.class_weight import check_setting
    from coupler.schema import check_node
    from coupler.settings import CoreSettings

    check_node({key: value for key, value in config.items() if key in CORE_SETTINGS}, CoreSettings, "")
    check_setting((config.get("train") or {}).get("class_weight"))
    for required in ("data", "model"):
        if not isinstance(config.get(required), dict) or not config[required].get("name"):
            raise ConfigError(required, config.get(required), f"a {required} choice: {required}=NAME (see coupler plugins)")
    list_groups = registry.list_groups
    for group in registry.groups.values():
        node = config.get(group)
        if node is None:
            continue
        nodes = node.values() if group in list_groups and isinstance(node, dict) else [node]
        if not all(isinstance(n, dict) for n in nodes):
            raise ConfigError(group, node, f"a choice from the {group} group ({group}=NAME"
                              f"{', or a list: ' + group + '=[a,b]' if group in list_groups else ''})")
    check_components(config, registry)


def check_components(config: dict, registry) -> None:
    """Check every chosen component's config node against its schema (``Component.check``), before any data is
    read, and every settings group's node against the group's schema. A name no plugin registers is left to the run,
    which says what exists."""
    from coupler.schema import check_node

    for settings_group in registry.setting_groups.values():
        node = config.get(settings_group.name)
        if settings_group.schema is not None and isinstance(node, dict):
            check_node(node, settings_group.schema, settings_group.name, what=f"the {settings_group.name} group")
    for kind, group in registry.groups.items():
        node = config.get(group)
        if not isinstance(node, dict):
            continue
        entries = node.items() if group in registry.list_groups else [(None, node)]
        for key, entry in entries:
            entry = entry or {}
            name = entry.get("name", key)
            if not isinstance(name, str):  # a node that names no component (+optimizer.lr=...): the engine's own
                continue
            try:
                component = registry.get(kind, name)
            except CouplerError:
                continue
            component.check(group if key is None else f"{group}.{key}", entry)


def check_overrides(overrides: list[str], manager: PluginManager, *, extra_dirs: tuple[str, ...] = (),
                    own_primary: bool = True) -> None:
    """Check the overrides of a command line before Hydra composes anything: a ``group=choice`` whose choice does
    not exist (with the valid choices, the plugin of each and the closest one), a key that is no Coupler setting,
    a component key its config does not list (without ``+``), a data value of the wrong type.

    ``extra_dirs``: the user's ``--config-dir``, whose files are choices too. ``own_primary``: False when the
    command line names another primary config (``-cn``), whose defaults Coupler does not know."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser = OverridesParser.create()
    parsed = []
    for line in overrides:
        try:
            parsed += parser.parse_overrides([line])
        except Exception as exc:  # Hydra's grammar error, for this override alone
            reason = str(exc).splitlines()[0]
            raise ConfigError("override", line, f"{reason}. Quote values holding special characters, "
                                                f"e.g. 'data.sep=\";\"'") from None
    registry = manager.registry
    overridden = {o.key_or_group for o in parsed}
    if own_primary:
        _check_default_choices(manager, overridden)
    known = settings(registry)
    for override in parsed:
        group = override.key_or_group
        top = group.split(".", 1)[0].split("@", 1)[0]
        value_text = override.input_line.split("=", 1)[-1]
        if top not in known:
            _refuse_missing_group(manager, override.input_line, top)  # +search=... too: its files are on the path
        if top not in known and top != "hydra" and not top.startswith("hydra/") and not override.is_add() \
                and not override.is_force_add():
            raise ConfigError(group, value_text, f"a key under one of {', '.join(sorted(known))} (or Hydra's: "
                                                 f"hydra.KEY, hydra/GROUP); {group!r} is not a Coupler setting")
        _check_core_key(group, value_text)
        if override.is_delete() or (group not in registry.groups.values() and group not in registry.setting_groups):
            continue
        options = group_options(manager, group, extra_dirs)
        for choice in _choices(override, registry.list_groups):
            if choice is None or (isinstance(choice, str) and choice in options):
                continue
            _refuse(manager, group, choice, extra_dirs)
    if own_primary:
        _check_component_keys(parsed, manager, extra_dirs)
    _check_component_values(parsed, manager, extra_dirs)


#: the config groups that Coupler's own plugins declare, by the distribution declaring each: a command line naming one
#: while that plugin is missing or off is told what to install, not that the key is unknown (the model plugins ship
#: search files, ``search=xgboost``, for the search group that coupler-optuna declares)
GROUP_DISTRIBUTIONS = {"search": "coupler-optuna", "optimizer": "coupler-torch", "scheduler": "coupler-torch",
                       "trainer": "coupler-torch"}


def _refuse_missing_group(manager: PluginManager, line: str, top: str) -> None:
    """``search=xgboost`` without coupler-optuna (not installed, disabled, left out or failed): one line saying
    what to do, where the key would otherwise be "not a Coupler setting" or Hydra's missing config."""
    distribution = GROUP_DISTRIBUTIONS.get(top)
    if distribution is None:
        return
    raise CouplerError(f"{line}: the {top} group comes with the plugin {distribution}, which "
                       f"{_unavailable(manager, distribution)}.")


#: the trackers Coupler's own plugins register (``tracking=NAME``), by distribution: named while it is missing or off
TRACKER_DISTRIBUTIONS = {"mlflow": "coupler-mlflow", "tensorboard": "coupler-tensorboard"}


def _unavailable(manager: PluginManager, distribution: str) -> str:
    """Why ``distribution``'s plugin offers nothing, and the fix: not installed, disabled, left out, or failed."""
    from coupler.plugin_manager import normalized_distribution

    plugin = next((p for p in manager.plugins.values() if normalized_distribution(p.distribution) == distribution), None)
    if plugin is None:
        why = f"is not installed: pip install {distribution}"
    elif plugin.status == "disabled":
        why = f"is disabled (COUPLER_DISABLE_PLUGINS names {plugin.name}); enable it"
    elif plugin.status == "blocked":
        why = f"is left out by COUPLER_PLUGINS_ONLY; allow {plugin.name} there"
    else:
        why = f"did not load ({plugin.error}); coupler plugins says why"
    return why


def _check_core_key(key: str, value_text: str) -> None:
    """``split.vall=0.1``: a key under one of the core's settings groups that it does not have."""
    import dataclasses

    from coupler.errors import did_you_mean
    from coupler.schema import field_at, nested_schema
    from coupler.settings import CoreSettings

    parts = key.split(".")
    if len(parts) < 2 or parts[0] not in CORE_SETTINGS or field_at(CoreSettings, parts) is not None:
        return
    parent = field_at(CoreSettings, parts[:-1])
    inner = nested_schema(parent[0]) if parent is not None else None
    if inner is not None:
        names = [f.name for f in dataclasses.fields(inner)]
        raise ConfigError(key, value_text, f"{'.'.join(parts[:-1])} has the keys {', '.join(names)}."
                                           f"{did_you_mean(parts[-1], names)}")


def _check_default_choices(manager: PluginManager, overridden: set[str]) -> None:
    """With no model installed, say what to install; a data or model choice the command line must make (no plugin
    offers a default) is asked for by name, before Hydra composes."""
    from coupler.errors import CouplerError

    registry = manager.registry
    if not [c for c in registry.components("model") if c.name != "ensemble"]:  # the core's ensemble needs others
        raise CouplerError("no model is installed: pip install coupler-sklearn (or another model plugin); coupler "
                           "plugins lists what is installed." + registry.unavailable_note().replace("\n", " "))
    for group, choice in default_choices(manager).items():
        if group in ("data", "model") and choice is None and group not in overridden:
            listing = ", ".join(sorted(group_options(manager, group))) or "none installed"
            raise CouplerError(f"no {group} is chosen and no installed plugin offers a default one: choose one with "
                               f"{group}=NAME ({listing}).{registry.unavailable_note()}")


def _choices(override, list_groups: frozenset[str]) -> list:
    """The choices a group override names: one, a list (``callbacks=[a,b]``), or every value of a sweep."""
    group = override.key_or_group
    if override.is_sweep_override():
        return list(override.sweep_string_iterator())
    value = override.value()
    if isinstance(value, list) and group not in list_groups:
        raise ConfigError(group, value, f"one choice; to train with each of several, sweep them: "
                                        f"-m {group}={','.join(map(str, value))}")
    if value is None and group in ("data", "model"):
        raise ConfigError(group, None, f"a {group} choice: {group}=NAME (see coupler plugins)")
    return value if isinstance(value, list) else [value]


def _given(override):
    """The value an override gives, as the user wrote it for a sweep (``1,2``)."""
    return override.input_line.split("=", 1)[1] if override.is_sweep_override() else override.value()


def _check_component_keys(parsed: list, manager: PluginManager, extra_dirs: tuple[str, ...]) -> None:
    """``model.KEY=VALUE`` changes a key of the chosen model's config; Hydra refuses a key the config does not
    list unless it is added with ``+``. Say so here, in Coupler's words, with the keys there are and the closest."""

    registry = manager.registry
    groups, list_groups = {*registry.groups.values(), *registry.setting_groups}, registry.list_groups
    chosen: dict[str, list] = {g: [c] for g, c in default_choices(manager).items() if g in groups}
    for override in parsed:
        if override.key_or_group in groups and not override.is_delete():
            chosen[override.key_or_group] = [c for c in _choices(override, list_groups) if isinstance(c, str)]
    for override in parsed:
        parts = override.key_or_group.split(".")
        group = parts[0]
        if group not in groups or len(parts) < 2 or override.is_force_add() or override.is_delete() \
                or (override.is_add() and not any(isinstance(c, str) for c in chosen.get(group, []))):
            continue  # (+optimizer.lr=... with no optimizer chosen sets a key on the model's default one)
        if group in list_groups:
            options, path = ([parts[1]] if parts[1] in chosen.get(group, []) else []), parts[2:]
        else:
            options, path = chosen.get(group, []), parts[1:]
            if not any(isinstance(option, str) for option in options):
                listing = ", ".join(sorted(group_options(manager, group, extra_dirs))) or "none installed"
                raise ConfigError(override.key_or_group, _given(override),
                                  f"no {group} is chosen (the model's default is used), so the config has no "
                                  f"{override.key_or_group}; set it in that default with +{override.input_line}, or "
                                  f"choose one first: {group}=NAME {override.input_line} ({group} choices: {listing})")
        for option in (o for o in options if isinstance(o, str)):
            node = default_node(manager, group, option, extra_dirs)
            prefix = f"{group}.{option}" if group in list_groups else group
            for depth, key in enumerate(path):
                if not isinstance(node, dict) or (override.is_add() and key not in node):
                    break
                if override.is_add() and depth == len(path) - 1:
                    raise ConfigError(override.key_or_group, _given(override),
                                      f"the config of {group}={option} lists {override.key_or_group} already: set it "
                                      f"without + ({override.input_line.lstrip('+')})")
                if key not in node:
                    _refuse_key(manager, override, group, option, path[:depth + 1], prefix, node, extra_dirs)
                node = node[key]


def _refuse_key(manager: PluginManager, override, group: str, option: str, path: list[str], prefix: str,
                node: dict, extra_dirs: tuple[str, ...] = ()) -> None:
    """``GROUP.PATH=VALUE`` names a key the chosen config does not list: where the schema has it but the user's file
    does not, say how the file extends the component's node; where the schema takes extra keys, say to add it with
    ``+``; where it takes none, say the component has no such parameter. Each lists the keys and the closest."""
    from coupler.errors import did_you_mean
    from coupler.schema import field_at, nested_schema

    key, where = path[-1], ".".join([prefix, *path[:-1]])
    keys = [str(k) for k in node if k != "name"]
    listed, close = ", ".join(sorted(keys)) or "nothing", did_you_mean(path[-1], keys)
    settings_group = manager.registry.setting_groups.get(group)
    component = _component_of(manager, group, option, extra_dirs) if settings_group is None else None
    schema = settings_group.schema if settings_group is not None else component.parameters if component else None
    own_file = _option_file(manager, group, option, extra_dirs)
    if schema is not None and own_file is not None and field_at(schema, path) is not None:
        name = component.name if component is not None else option
        raise ConfigError(override.key_or_group, _given(override),
                          f"{own_file} lists no {where}.{key}, which {name} has: start that file with "
                          f"'defaults: [{name}, _self_]' so that it holds every key of {name}, or add the key: "
                          f"+{override.input_line}")
    if schema is not None and len(path) > 1:
        found = field_at(schema, path[:-1])
        schema = nested_schema(found[0]) if found is not None else None
    if schema is not None and not getattr(schema, "extra_keys", None):
        raise ConfigError(override.key_or_group, _given(override), f"{where} of {group}={option} has no key {key!r} "
                          f"(it has {listed}).{close}")
    what = manager.registry.kind_of_group.get(group, "group")
    raise ConfigError(override.key_or_group, _given(override),
                      f"the config of {group}={option} lists no {where}.{key} ({where} holds {listed}).{close} Hydra "
                      f"sets only keys a config lists; to pass a key it does not list, add it: +{override.input_line} "
                      f"(the {what} then checks it)")


def _check_component_values(parsed: list, manager: PluginManager, extra_dirs: tuple[str, ...] = ()) -> None:
    """Check each ``GROUP.KEY=VALUE`` against the chosen component's schema, or the settings group's
    (``coupler.schema``), before Hydra composes: the type, range and choices, in one line naming the key, not Hydra's merge error or the library's."""
    from coupler.schema import check_value, field_at

    registry = manager.registry
    for override in parsed:
        parts = override.key_or_group.split(".")
        if len(parts) < 2 and parts[0] not in CORE_SETTINGS:
            continue
        if override.is_sweep_override() and not override.is_discrete_sweep():
            continue  # an interval a search draws from: each job's value is checked when it composes
        group = parts[0]
        settings_group = registry.setting_groups.get(group)
        if group in CORE_SETTINGS:
            from coupler.settings import CoreSettings

            schema, path = CoreSettings, parts
        elif settings_group is not None:
            schema, path = settings_group.schema, parts[1:]
        elif group in registry.kind_of_group:
            many = group in registry.list_groups
            option, path = (parts[1], parts[2:]) if many else (_chosen(parsed, manager, group), parts[1:])
            component = _component_of(manager, group, option, extra_dirs)
            schema = component.parameters if component is not None else None
        else:
            continue
        found = field_at(schema, path) if schema is not None and path else None
        if found is not None and override.is_delete():
            from coupler.errors import CouplerError

            raise CouplerError(f"~{override.key_or_group}: {override.key_or_group} is in the schema, so every run has it "
                               f"and it cannot be deleted; set it instead: "
                               f"{override.key_or_group}=VALUE (coupler train --help lists it)")
        if found is not None:
            values = list(override.sweep_iterator()) if override.is_sweep_override() else [override.value()]
            values = [v for v in values if not (isinstance(v, str) and "${" in v)]  # resolved, then checked
            for value in values:  # every job of a sweep, before the first one starts
                check_value(override.key_or_group, value, *found)


def _chosen(parsed: list, manager: PluginManager, group: str):
    """The option a command line chooses for a single group (the last override, else the default)."""
    chosen = [o for o in parsed if o.key_or_group == group and not o.is_delete()]
    if chosen:
        return None if chosen[-1].is_sweep_override() else chosen[-1].value()
    return default_choices(manager).get(group)


def _component_of(manager: PluginManager, group: str, option, extra: tuple[str, ...] = ()):
    """The registered component ``group=option`` builds (a config file names it), or None."""
    if not isinstance(option, str):
        return None
    try:
        kind = manager.registry.kind_of_group[group]
        return manager.registry.get(kind, _named_component(manager, group, option, extra) or option)
    except CouplerError:  # an unknown choice is refused elsewhere
        return None


def _refuse(manager: PluginManager, group: str, choice, extra_dirs: tuple[str, ...] = ()) -> None:
    options = group_options(manager, group, extra_dirs)
    if group in manager.registry.kind_of_group:
        kind = manager.registry.kind_of_group[group]
        if (kind, choice) in manager.registry.disabled:
            manager.registry.get(kind, choice)  # raises, naming the disabled plugin
        if kind == "tracker" and choice in TRACKER_DISTRIBUTIONS:  # tracking=mlflow without coupler-mlflow
            distribution = TRACKER_DISTRIBUTIONS[choice]
            raise CouplerError(f"tracking={choice}: the {choice} tracker comes with the plugin {distribution}, "
                               f"which {_unavailable(manager, distribution)}.")
        raise UnknownComponentError(manager.registry.unknown_message(kind, str(choice), options))
    raise ConfigError(group, choice, f"one of {', '.join(sorted(options))}")


def flat_settings(config: dict, prefix: str = "") -> dict:
    """A run's config as tracking tools record hyper-parameters: ``{"model.params.max_depth": 6, ...}``, nested
    mappings joined by dots, numbers, booleans and text as they are, anything else (lists, empty mappings, null) as
    JSON text. The ``tracking`` node is left out: a server URI may hold credentials, and where a run is logged is no
    hyper-parameter of it."""
    import json

    flat = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if name == "tracking":
            continue
        if isinstance(value, dict) and value:
            flat.update(flat_settings(value, f"{name}."))
        else:
            flat[name] = value if isinstance(value, (bool, int, float, str)) else json.dumps(value, default=str)
    return flat


def to_plain(cfg) -> dict:
    """The composed config as plain containers (safe to save and to load with weights_only), with every
    mandatory ``???`` value filled."""
    from omegaconf import MissingMandatoryValue, OmegaConf

    try:
        return OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
    except MissingMandatoryValue as exc:
        key = getattr(exc, "full_key", None) or str(exc)
        raise ConfigError(key, "???", f"a value is required: set it on the command line ({key}=...)") from None


def compose(overrides: list[str], manager: PluginManager) -> dict:
    """The config that ``overrides`` compose to, checked as ``coupler train`` checks them, without running
    anything (``coupler evaluate data=...``, the conformance kit, tests)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    store_configs(manager)
    check_overrides(overrides, manager)
    # the directory by its path: ``initialize(config_path=...)`` finds its caller with inspect.stack (60 ms a call)
    with initialize_config_dir(version_base="1.3", config_dir=str(CORE_CONF)):
        return to_plain(hydra_compose(PRIMARY, overrides=overrides))
