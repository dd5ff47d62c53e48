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
SETTINGS = {*GROUPS.values(), *SETTING_GROUPS, "task", "seed", "split", "preprocess", "plugins"}


def primary_config(manager: PluginManager) -> dict:
    return {
        "defaults": DEFAULTS,
        "task": "auto",
        "seed": 0,
        "split": {"val": 0.2, "test": 0.1, "stratify": "auto"},
        "preprocess": {"impute": "median", "scale": "standard", "encode": "onehot"},
        "plugins": {"disable": []},
        "hydra": {
            "searchpath": [f"file://{d}" for _, d in manager.config_dirs()],
            "job": {"name": "train", "chdir": False},
            # logs go to stderr, so that stdout holds only what a command prints (the metrics table)
            "job_logging": {"handlers": {"console": {"stream": "ext://sys.stderr"}}},
            "hydra_logging": {"handlers": {"console": {"stream": "ext://sys.stderr"}}},
            "run": {"dir": "runs/${now:%Y-%m-%d}/${now:%H-%M-%S-%f}"},
            "help": {"app_name": "coupler train", "template": help_template(manager)},
            "sweep": {"dir": "multirun/${now:%Y-%m-%d}/${now:%H-%M-%S-%f}", "subdir": "${hydra.job.num}"},
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
    it (a component's own plugin, even when another plugin ships its config file)."""
    options = file_options(manager, group)
    if group in KIND_OF_GROUP:
        options.update({c.name: c.plugin for c in manager.registry.components(KIND_OF_GROUP[group])})
    return options


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


def check_overrides(overrides: list[str], manager: PluginManager) -> None:
    """Reject a ``group=choice`` override whose choice does not exist, before Hydra composes anything,
    with the list of valid choices, the plugin of each, and the closest one."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
    except Exception as exc:  # Hydra's own grammar errors read well; keep its text
        raise ConfigError("override", " ".join(overrides), str(exc).splitlines()[0]) from None
    overridden = {o.key_or_group for o in parsed}
    for default in DEFAULTS:  # a default whose plugin is missing or disabled fails here too, not in Hydra
        if isinstance(default, dict):
            ((group, choice),) = default.items()
            if isinstance(choice, str) and group not in overridden and choice not in group_options(manager, group):
                _refuse(manager, group, choice)
    for override in parsed:
        group = override.key_or_group
        top = group.split(".", 1)[0].split("@", 1)[0]
        if top not in SETTINGS and top != "hydra" and not override.is_add() and not override.is_force_add():
            raise ConfigError(group, override.input_line.split("=", 1)[-1],
                              f"a key under one of {', '.join(sorted(SETTINGS))} (or hydra.*); "
                              f"{group!r} is not a Coupler setting")
        if override.is_delete() or (group not in GROUPS.values() and group not in SETTING_GROUPS):
            continue
        if override.is_sweep_override():
            choices = list(override.sweep_string_iterator())
        else:
            value = override.value()
            choices = value if isinstance(value, list) else [value]
        options = group_options(manager, group)
        for choice in choices:
            if choice is None or (isinstance(choice, str) and choice in options):
                continue
            _refuse(manager, group, choice)


def _refuse(manager: PluginManager, group: str, choice) -> None:
    if group in KIND_OF_GROUP:
        kind = KIND_OF_GROUP[group]
        if (kind, choice) in manager.registry.disabled:
            manager.registry.get(kind, choice)  # raises, naming the disabled plugin
        raise UnknownComponentError(manager.registry.unknown_message(kind, str(choice), file_options(manager, group)))
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
