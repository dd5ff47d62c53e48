"""Capability checks: what a run asks of its model, against what the model declares, before any data is read.

A callback, exporter, metric or ``train.class_weight`` that the chosen model cannot honour is refused with a
``ConfigError`` naming what would work (the models, exporters or metrics that would, or the fix). The checks read
declared class attributes only (``coupler.components``: ``Model.tasks``, ``proba_tasks``, ``reports_epochs``,
``sample_weights``, ``engine``; ``Exporter.supports``; ``Metric.tasks`` / ``needs_proba``; ``Callback.requires``
/ ``engines``), so they run twice, cheaply:

1. **before any data is read** (``check_before_data``), on the class the model's factory declares
   (``declared_model``), with the task when ``task=`` names one, else every task the model declares;
2. **once the model is built, before it is fitted** (``check_built``), on the model itself and the task the data
   gave; a factory that declares no class is checked only here. Here too each exporter's ``check_data`` (when it
   has one: ``coupler.onnx_export.FormatExporter``) sees the data's categorical columns and the input format the
   model will read, so that what it cannot export is refused before a full training, not after.

Lists of alternatives name the components whose declarations can be read without building them.
"""

from __future__ import annotations

from typing import Any

from coupler.components import CLASSIFICATION, TASKS, Metric, declared_model, gives_proba
from coupler.errors import ConfigError
from coupler.registry import Registry

#: what a model that has a capability does, for messages
DOES = {"reports_epochs": "reports epochs (calls run.epoch_end)", "sample_weights": "takes row weights in fit"}
#: what a model without it does instead
LACKS = {"reports_epochs": "trains in one step and reports no epoch", "sample_weights": "takes no row weights"}


def check_before_data(config: dict, registry: Registry, model_name: str, factory: Any, callbacks: dict,
                      exporters: dict, default_of) -> None:
    """Refuse what the model declared by ``factory`` cannot honour (see the module docstring). ``callbacks`` and
    ``exporters``: ``{name: built component}``; ``default_of``: as for ``check_setting_groups``."""
    model = declared_model(factory)
    if model is None:
        return
    check_setting_groups(config, registry, model, model_name, default_of)
    check_kinds_used(config, registry, model, model_name)
    task = config.get("task") if config.get("task") not in (None, "auto") else None
    learns = tuple(getattr(model, "tasks", None) or TASKS)  # a class that is no Model subclass declares nothing
    if task and task not in learns:
        fitting = models_that(registry, model_name, lambda m: task in getattr(m, "tasks", TASKS))
        raise ConfigError("model", model_name, f"a model for a {task} task (task={task}), e.g. {_choices(fitting)}; "
                          f"{model_name!r} learns {', '.join(learns)}")
    tasks = (task,) if task else learns
    _check_common(model, model_name, config, registry, callbacks, exporters, tasks)
    for key, node in (config.get("metrics") or {}).items():
        name = (node or {}).get("name", key)
        metric = registry.get("metric", name).build(f"metrics.{key}", node or {})
        if isinstance(metric, Metric):
            _check_metric(model, model_name, metric, tasks, registry)


def check_kinds_used(config: dict, registry: Registry, model: Any, model_name: str) -> None:
    """A group of a plugin's kind that only some models use (``Kind.used_by``, e.g. the torch engine's ``optimizer``)
    given to another model is refused: it would do nothing."""
    for kind in registry.kinds.values():
        node = config.get(kind.group)
        if kind.used_by and node and not getattr(model, kind.used_by, False):
            article = "an" if kind.name[0] in "aeiou" else "a"
            raise ConfigError(kind.group, node.get("name", node) if isinstance(node, dict) else node,
                              f"nothing: model {model_name!r} does not use {article} {kind.name} (the {kind.name}s of plugin "
                              f"{kind.plugin!r} are for models with {kind.used_by}); remove {kind.group}=...")


def check_setting_groups(config: dict, registry: Registry, model: Any, model_name: str, default_of) -> None:
    """A settings group that only some engines read (``SettingGroup.engines``: the torch engine's ``trainer``),
    changed from its default for a model of another engine, is refused: the change would do nothing.
    ``default_of(group)`` is the node of the group's default option, or None when it cannot be told."""
    engine = getattr(model, "engine", None)
    engines = set(getattr(model, "engines", None) or (engine,))  # an ensemble's: every member's engine
    for group in registry.setting_groups.values():
        default = default_of(group) if group.engines and not engines & set(group.engines) else None
        if default is None:
            continue
        node = config.get(group.name) or {}
        changed = sorted(k for k in set(node) | set(default) if node.get(k) != default.get(k))
        if changed:
            key, engines = changed[0], "/".join(group.engines)
            raise ConfigError(f"{group.name}.{key}", node.get(key),
                              f"its default ({default.get(key)!r}): the {group.name} settings are read only by {engines} "
                              f"models, and model {model_name!r} {f'trains with {engine}' if engine else 'names no engine'}; "
                              f"remove the {group.name} overrides, or choose a {engines} model (its own settings are "
                              f"model.KEY=VALUE)")


def check_built(model: Any, model_name: str, config: dict, registry: Registry, callbacks: dict, exporters: dict,
                task: str, categorical: list | None = None, input_format: str | None = None) -> None:
    """The same checks on the built model and the data's task, before ``fit`` (metrics: ``select_metrics``); and
    each exporter's ``check_data`` (if it has one) on the data's ``categorical`` columns and the ``input_format``
    the model will read: what it cannot export is refused now, not after a full training."""
    _check_common(model, model_name, config, registry, callbacks, exporters, (task,))
    if input_format is None:
        return
    for exporter in exporters.values():
        check = getattr(exporter, "check_data", None)
        if callable(check):
            check(model, model_name, list(categorical or ()), input_format, registry)


def _check_common(model, model_name: str, config: dict, registry: Registry, callbacks: dict, exporters: dict,
                  tasks: tuple) -> None:
    for name, callback in callbacks.items():
        _check_callback(model, model_name, name, callback, registry)
    for name, exporter in exporters.items():
        _check_exporter(model, model_name, name, exporter, registry)
    _check_class_weight(model, model_name, (config.get("train") or {}).get("class_weight"), tasks, registry)


def _check_callback(model, model_name: str, name: str, callback, registry: Registry) -> None:
    engines = getattr(callback, "engines", None)
    engine = getattr(model, "engine", None)
    if engines and engine not in engines:
        fitting = models_that(registry, model_name, lambda m: getattr(m, "engine", None) in engines)
        raise ConfigError("callbacks", name, f"callbacks that model {model_name!r} can honour: {name!r} acts only "
                          f"inside the {' or '.join(engines)} engine, and {model_name!r} "
                          f"{f'trains with {engine}' if engine else 'names no engine'}; remove {name} from callbacks, "
                          f"or choose a {'/'.join(engines)} model{f' ({_choices(fitting)})' if fitting else ''}")
    for capability in getattr(callback, "requires", None) or ():
        if getattr(model, capability, None) is False:
            fitting = models_that(registry, model_name, lambda m: bool(getattr(m, capability, False)))
            raise ConfigError("callbacks", name, f"callbacks that model {model_name!r} can honour: {name!r} needs a "
                              f"model that {DOES.get(capability, f'declares {capability}')}, and {model_name!r} "
                              f"{LACKS.get(capability, 'does not')}; remove {name} from callbacks, or choose a "
                              f"model that does{f' ({_choices(fitting)})' if fitting else ''}")


def _check_exporter(model, model_name: str, name: str, exporter, registry: Registry) -> None:
    supports = getattr(exporter, "supports", None)
    if not callable(supports) or supports(model, model_name):
        return
    fitting = []
    for component in registry.components("exporter"):
        declared = component.factory if isinstance(component.factory, type) else getattr(component.factory, "returns", None)
        check = getattr(declared, "supports", None)
        if callable(check) and check(model, model_name):
            fitting.append(component.name)
    raise ConfigError("exporters", name, f"exporters that support model {model_name!r}: "
                      f"{', '.join(sorted(fitting)) or 'none is installed'}; exporter {name!r} does not "
                      f"(it exports {_exported(exporter, registry, model_name)}): remove {name} from exporters, or "
                      f"choose a model it exports")


def _exported(exporter, registry: Registry | None = None, chosen: str = "") -> str:
    fmt = getattr(exporter, "format", None)
    if isinstance(fmt, str) and fmt:  # a format exporter (coupler.onnx_export): the models that declare the format
        fitting = models_that(registry, chosen, lambda m: fmt in (getattr(m, "export_formats", None) or ())) \
            if registry is not None else []
        return f"the models that declare {fmt} in export_formats{f': {_choices(fitting)}' if fitting else ''}"
    models, engines = getattr(exporter, "models", None), getattr(exporter, "engines", None)
    parts = ([f"models {', '.join(models)}"] if models else []) + ([f"{'/'.join(engines)} models"] if engines else [])
    return " and ".join(parts) or "the models its supports() accepts"


def _check_metric(model, model_name: str, metric: Metric, tasks: tuple, registry: Registry) -> None:
    fitting_tasks = [t for t in tasks if t in metric.tasks]
    if not fitting_tasks:
        from coupler.evaluation import _tasks

        fitting = sorted(c.name for c in registry.components("metric") if set(_tasks(c)) & set(tasks))
        raise ConfigError("metrics", metric.name, f"metrics for a {' or '.join(tasks)} task"
                          f"{f', which model {model_name!r} learns' if len(tasks) > 1 else ''}: {', '.join(fitting)}; "
                          f"{metric.name!r} measures {', '.join(metric.tasks)}")
    if metric.needs_proba and not any(gives_proba(model, t) for t in fitting_tasks):
        fitting = models_that(registry, model_name, lambda m: any(gives_proba(m, t) for t in fitting_tasks))
        raise ConfigError("metrics", metric.name, f"metrics that need no class probabilities: model {model_name!r} "
                          f"gives none{'' if len(tasks) > 1 else f' for a {tasks[0]} task'}; remove {metric.name} "
                          f"from metrics, or choose a model that gives them{f' ({_choices(fitting)})' if fitting else ''}")


def _check_class_weight(model, model_name: str, value, tasks: tuple, registry: Registry) -> None:
    if value is None:
        return
    if not any(t in CLASSIFICATION for t in tasks):
        learns_classes = any(t in CLASSIFICATION for t in getattr(model, "tasks", ()))
        which = "a regression task" if learns_classes else f"model {model_name!r}, which learns only regression"
        raise ConfigError("train.class_weight", value, f"null for {which}: class weights weigh the rows of each "
                          f"class; remove train.class_weight, or choose a classifier")
    if not getattr(model, "sample_weights", False):
        fitting = models_that(registry, model_name, lambda m: bool(getattr(m, "sample_weights", False))
                              and any(t in CLASSIFICATION for t in getattr(m, "tasks", TASKS)))
        raise ConfigError("train.class_weight", value, f"null with model {model_name!r}, which "
                          f"{LACKS['sample_weights']} (Model.sample_weights); remove train.class_weight, or choose a "
                          f"model that takes them{f' ({_choices(fitting)})' if fitting else ''}")


def models_that(registry: Registry, chosen: str, predicate) -> list[str]:
    """The model components but ``chosen`` whose declared class (``declared_model``) satisfies ``predicate``."""
    names = []
    for component in registry.components("model"):
        if component.name == chosen:
            continue
        declared = declared_model(component.factory)
        try:
            if declared is not None and predicate(declared):
                names.append(component.name)
        except Exception:  # a declaration that cannot be read is not listed
            continue
    return sorted(names)


def _choices(names: list[str], most: int = 10) -> str:
    shown = ", ".join(f"model={n}" for n in names[:most])
    return shown + (f" and {len(names) - most} more" if len(names) > most else "")
