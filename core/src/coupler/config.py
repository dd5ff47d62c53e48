"""Hydra composition: the primary config, the plugins' config directories, and checks on overrides.

The primary config (``coupler``) is built here, in code, so that its ``hydra.searchpath`` holds the config
directories the installed plugins register. Every registered component that has no YAML file of its own
gets a minimal node ``{name: NAME}`` in Hydra's ConfigStore, so ``model=NAME`` works for any registered model.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from coupler.errors import ConfigError
from coupler.registry import GROUPS, KIND_OF_GROUP, LIST_GROUPS, UnknownComponentError

if TYPE_CHECKING:  # pragma: no cover
    from coupler.plugin_manager import PluginManager

PRIMARY = "coupler"
#: Coupler's own config files (csv / parquet data, trainer presets, callbacks): Hydra's primary directory
CORE_CONF = Path(__file__).parent / "conf"
DEFAULTS = [
    {"data": "iris"},
    {"model": "logistic_regression"},
    {"optimizer": None},
    {"scheduler": None},
    {"callbacks": []},
    {"metrics": []},
    {"exporters": []},
    {"trainer": "default"},
    "_self_",
]
#: config groups that are not component kinds
SETTING_GROUPS = ("trainer",)
#: the top-level keys of a composed config
SETTINGS = {*GROUPS.values(), *SETTING_GROUPS, "task", "seed", "split", "preprocess", "plugins", "resume"}
#: the keys of the core's own settings nodes
SETTING_KEYS = {"split": ("val", "test", "stratify"), "preprocess": ("impute", "scale", "encode"), "plugins": ("disable",)}


def primary_config(manager: PluginManager) -> dict:
    return {
        "defaults": DEFAULTS,
        "task": "auto",
        "seed": 0,
        "split": {"val": 0.2, "test": 0.1, "stratify": "auto"},
        "preprocess": {"impute": "median", "scale": "standard", "encode": "onehot"},
        "plugins": {"disable": []},
        "resume": None,
        "hydra": {
            "searchpath": [f"file://{d}" for _, d in manager.config_dirs()],
            "job": {"name": "train", "chdir": False},
            # Hydra writes nothing into the run directory before the job checks it (the run keeps its
            # own config.yaml and overrides.yaml)
            "output_subdir": None,
            # logs go to stderr, so that stdout holds only what a command prints (the metrics table)
            "job_logging": {"handlers": {"console": {"stream": "ext://sys.stderr"}}},
            "hydra_logging": {"handlers": {"console": {"stream": "ext://sys.stderr"}}},
            "run": {"dir": "runs/${now:%Y-%m-%d}/${now:%H-%M-%S-%f}"},
            "help": {"app_name": "coupler train", "template": help_template(manager)},
            "sweep": {"dir": "multirun/${now:%Y-%m-%d}/${now:%H-%M-%S-%f}", "subdir": "${hydra.job.num}"},
            # a run or sweep directory that cannot be created is one line, before Hydra tries
            "callbacks": {"run_directory_check": {"_target_": "coupler.hydra_callbacks.RunDirectoryCheck"}},
        },
    }


def help_template(manager: PluginManager) -> str:
    """``coupler train --help``: every group's choices with their plugins (Hydra's own listing misses the
    directories that plugins add to the search path), then the composed config and Hydra's flags."""
    lines = ["coupler train [OVERRIDES...]: train and write one run directory (-m: one per combination).", "",
             "== Config groups (group=option; option (plugin)) ==", ""]
    for group in [*GROUPS.values(), *SETTING_GROUPS]:
        options = group_options(manager, group)
        listing = ", ".join(f"{name} ({plugin})" for name, plugin in sorted(options.items())) or "(none installed)"
        lines.append(f"{group}{' (a list: ' + group + '=[a,b])' if group in LIST_GROUPS else ''}: {listing}")
    lines += ["", "== Config ==", "Override anything in the config (model.params.C=0.5, split.test=0.2)", "",
              "$CONFIG", "", "== Hydra flags ==", "$FLAGS_HELP"]
    # Hydra's help template is an OmegaConf string: escape interpolation markers from option names
    return "\n".join(lines).replace("${", "\\${")


def file_options(manager: PluginManager, group: str) -> dict[str, str]:
    """Options of ``group`` that config files provide: option -> plugin ("coupler" for the core's own)."""
    options: dict[str, str] = {}
    for plugin, directory in [("coupler", str(CORE_CONF)), *manager.config_dirs()]:
        for path in sorted((Path(directory) / group).glob("*.yaml")):
            options.setdefault(path.stem, plugin)
    return options


def group_options(manager: PluginManager, group: str) -> dict[str, str]:
    """Every choice of ``group``: config files and registered components, each with the plugin that provides
    it. A file names its component (``name: ...``): the option is that component's plugin's, and a file
    whose component is not registered (its plugin is missing or disabled) offers no choice."""
    options = file_options(manager, group)
    if group not in KIND_OF_GROUP:
        return options
    kind = KIND_OF_GROUP[group]
    registered = {c.name: c.plugin for c in manager.registry.components(kind)}
    for option in list(options):
        component = _named_component(manager, group, option) or option
        if component in registered:
            options[option] = registered[component]
        else:
            del options[option]
    options.update(registered)
    return options


def _named_component(manager: PluginManager, group: str, option: str) -> str | None:
    import re

    for _, directory in [("coupler", str(CORE_CONF)), *manager.config_dirs()]:
        path = Path(directory) / group / f"{option}.yaml"
        if path.is_file():
            match = re.search(r"^name:\s*([\w.-]+)", path.read_text(), re.MULTILINE)
            return match.group(1) if match else None
    return None


def store_configs(manager: PluginManager) -> None:
    """Put the primary config and the generated component nodes into Hydra's ConfigStore."""
    from hydra.core.config_store import ConfigStore

    store = ConfigStore.instance()
    store.store(name=PRIMARY, node=primary_config(manager))
    for kind, group in GROUPS.items():
        with_files = file_options(manager, group)
        for component in manager.registry.components(kind):
            if component.name in with_files:
                continue
            package = f"{group}.{component.name}" if group in LIST_GROUPS else group
            store.store(group=group, name=component.name, node={"name": component.name}, package=package,
                        provider=component.plugin)


def check_settings(config: dict) -> None:
    """The shape and type of the core's settings, so that a bad value is a one-line error naming the key."""
    unknown = sorted(set(config) - SETTINGS)
    if unknown:
        raise ConfigError(unknown[0], config[unknown[0]], f"top-level keys are {', '.join(sorted(SETTINGS))} "
                          f"(a config file with a wrong '# @package' header puts its keys at the top)")
    for key, allowed in SETTING_KEYS.items():
        node = config.get(key)
        if not isinstance(node, dict):
            raise ConfigError(key, node, f"a group of settings ({', '.join(allowed)}): set one as {key}.{allowed[0]}=...")
        for name in node:
            if name not in allowed:
                raise ConfigError(f"{key}.{name}", node[name], f"{key} has the keys {', '.join(allowed)}")
    resume = config.get("resume")
    if resume is not None and not isinstance(resume, str):
        raise ConfigError("resume", resume, "the directory of an interrupted run: resume=RUN_DIR")
    seed = config.get("seed")
    if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed < 2**32:
        raise ConfigError("seed", seed, "a whole number from 0 to 4294967295")
    for required in ("data", "model"):
        if not isinstance(config.get(required), dict) or not config[required].get("name"):
            raise ConfigError(required, config.get(required), f"a {required} choice: {required}=NAME (see coupler plugins)")
    for group in GROUPS.values():
        node = config.get(group)
        if node is None:
            continue
        nodes = node.values() if group in LIST_GROUPS and isinstance(node, dict) else [node]
        if not all(isinstance(n, dict) for n in nodes):
            raise ConfigError(group, node, f"a choice from the {group} group ({group}=NAME"
                              f"{', or a list: ' + group + '=[a,b]' if group in LIST_GROUPS else ''})")


def check_overrides(overrides: list[str], manager: PluginManager) -> None:
    """Reject a ``group=choice`` override whose choice does not exist, before Hydra composes anything,
    with the list of valid choices, the plugin of each, and the closest one."""
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
    overridden = {o.key_or_group for o in parsed}
    for default in DEFAULTS:  # a default whose plugin is missing or disabled fails here too, not in Hydra
        if isinstance(default, dict):
            ((group, choice),) = default.items()
            if isinstance(choice, str) and group not in overridden and choice not in group_options(manager, group):
                _refuse(manager, group, choice)
    for override in parsed:
        group = override.key_or_group
        top = group.split(".", 1)[0].split("@", 1)[0]
        value_text = override.input_line.split("=", 1)[-1]
        if top not in SETTINGS and top != "hydra" and not override.is_add() and not override.is_force_add():
            raise ConfigError(group, value_text, f"a key under one of {', '.join(sorted(SETTINGS))} (or hydra.*); "
                                                 f"{group!r} is not a Coupler setting")
        parts = group.split(".")
        if top in SETTING_KEYS and len(parts) > 1 and parts[1] not in SETTING_KEYS[top]:
            raise ConfigError(group, value_text, f"{top} has the keys {', '.join(SETTING_KEYS[top])}")
        if override.is_delete() or (group not in GROUPS.values() and group not in SETTING_GROUPS):
            continue
        if override.is_sweep_override():
            choices = list(override.sweep_string_iterator())
        else:
            value = override.value()
            if isinstance(value, list) and group not in LIST_GROUPS:
                raise ConfigError(group, value, f"one choice; to train with each of several, sweep them: "
                                                f"-m {group}={','.join(map(str, value))}")
            if value is None and group in ("data", "model"):
                raise ConfigError(group, None, f"a {group} choice: {group}=NAME (see coupler plugins)")
            choices = value if isinstance(value, list) else [value]
        options = group_options(manager, group)
        for choice in choices:
            if choice is None or (isinstance(choice, str) and choice in options):
                continue
            _refuse(manager, group, choice)
    _check_data_values(parsed, manager)


def _check_data_values(parsed: list, manager: PluginManager) -> None:
    """Check ``data.KEY=VALUE`` against the data loader's annotations (``coupler.dataset.typed_parameters``) before
    Hydra composes: a mapping given where the loader's config file holds a list (``data.na_values={a:1}``) would
    fail inside Hydra's merge, in Hydra's words, and never reach the loader's own check."""
    import inspect
    import typing

    from coupler.dataset import check_value
    from coupler.errors import CouplerError

    chosen = [o for o in parsed if o.key_or_group == "data" and not o.is_delete()]
    if chosen and chosen[-1].is_sweep_override():
        return  # several loaders: each job's loader checks its own values
    choice = chosen[-1].value() if chosen else next(d["data"] for d in DEFAULTS if isinstance(d, dict) and "data" in d)
    if not isinstance(choice, str):
        return
    try:
        factory = manager.registry.get("data", _named_component(manager, "data", choice) or choice).factory
        hints = typing.get_type_hints(inspect.unwrap(factory), include_extras=True)
    except (CouplerError, NameError, TypeError):  # an unknown choice is refused elsewhere; unreadable hints: unchecked
        return
    for override in parsed:
        parts = override.key_or_group.split(".")
        if len(parts) == 2 and parts[0] == "data" and parts[1] in hints and not override.is_delete() \
                and not override.is_sweep_override():
            check_value(f"data.{parts[1]}", override.value(), hints[parts[1]])


def _refuse(manager: PluginManager, group: str, choice) -> None:
    if group in KIND_OF_GROUP:
        kind = KIND_OF_GROUP[group]
        if (kind, choice) in manager.registry.disabled:
            manager.registry.get(kind, choice)  # raises, naming the disabled plugin
        raise UnknownComponentError(manager.registry.unknown_message(kind, str(choice), group_options(manager, group)))
    raise ConfigError(group, choice, f"one of {', '.join(sorted(group_options(manager, group)))}")


def loosen(overrides: list[str]) -> list[str]:
    """``model.params.C=1`` -> ``++model.params.C=1``: a component's parameters need not exist in its config
    file to be set; the component checks every key it receives and names an unknown one."""
    component_groups = tuple(f"{g}." for g in GROUPS.values())
    out = []
    for override in overrides:
        key = override.split("=", 1)[0]
        if "=" in override and not override.startswith(("+", "~")) and key.startswith(component_groups):
            override = "++" + override
        out.append(override)
    return out


def to_plain(cfg) -> dict:
    """The composed config as plain containers (safe to save and to load with weights_only), with every
    mandatory ``???`` value filled."""
    from omegaconf import MissingMandatoryValue, OmegaConf

    try:
        return OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
    except MissingMandatoryValue as exc:
        key = getattr(exc, "full_key", None) or str(exc)
        raise ConfigError(key, "???", f"a value is required: set it on the command line ({key}=...)") from None
