"""Component schemas: one dataclass per component is the single source of its parameters.

A plugin declares a component's parameters once, as a dataclass whose fields are made with ``param`` (the default,
a line of help, the values or range allowed) and registers it beside the factory::

    @dataclass
    class ForestParams:
        n_estimators: int = param(200, help="number of trees", ge=1)
        max_depth: int | None = param(None, help="deepest split; null: unlimited", ge=1)

    register("forest", build_forest, schema=ForestSchema)

From the schema come:

- the component's config node in Hydra's ConfigStore, a structured config (``hydra_node``), so that Hydra's own
  checks stay on: a key the schema does not list needs ``+``, a value is converted to the field's type;
- validation (``check_node``): each value's type, range and choices, a missing value, an unknown key with the
  closest one, each one line naming the key, the value and what is allowed. It runs on the command line before
  Hydra composes, before any data is read, and again whenever the component is built;
- the parameter listing of ``coupler train --help`` and the docs' parameter tables (``rows``, ``markdown_table``);
- the scaffold's example.

A component registered without a schema gets one derived from its factory's keyword parameters (``derived``): the
annotation is the type (``Annotated[TYPE, "help"]`` or ``Annotated[TYPE, Rule(...)]`` adds help and limits), the
default the default. A nested schema may set ``extra_keys`` (a class attribute naming who receives them) to accept
keys it does not list, added with ``+`` (``+model.params.criterion=entropy``): they pass to the library unchecked.
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from dataclasses import MISSING, dataclass
from typing import Any

from coupler.errors import ConfigError, plain

#: the metadata key of a field's ``Rule``
RULE = "coupler"


@dataclass(frozen=True)
class Rule:
    """What a parameter allows beyond its type, and a line of help."""

    help: str = ""
    #: the only values allowed (empty: any value of the type)
    choices: tuple = ()
    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None

    def problem(self, value) -> str | None:
        """What is wrong with ``value`` (of the right type), or None."""
        if self.choices and value not in self.choices:
            return self.allowed_choices()
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            limits = self.limits()
            if (self.ge is not None and value < self.ge) or (self.gt is not None and value <= self.gt) \
                    or (self.le is not None and value > self.le) or (self.lt is not None and value >= self.lt):
                return limits
        return None

    def allowed_choices(self) -> str:
        """``one of auto, true, false``: the choices as a command line writes them."""
        return "one of " + ", ".join(_shown_default(choice) for choice in self.choices)

    def limits(self) -> str:
        """The range in words: ``>= 1 and < 0.5``; empty without one."""
        bounds = [f"{sign} {plain(limit)}" for sign, limit in ((">=", self.ge), (">", self.gt), ("<=", self.le),
                                                              ("<", self.lt)) if limit is not None]
        return " and ".join(bounds)


def param(default=MISSING, *, help: str, choices=(), ge=None, gt=None, le=None, lt=None,
          default_factory=MISSING):
    """A schema field: its default (none: the value is required), a line of help, and what it allows (``choices``,
    bounds). A mutable default (a list, a dict, a nested schema) is given as ``default_factory``."""
    rule = Rule(help, tuple(choices), ge, gt, le, lt)
    if isinstance(default, (list, dict, set)):
        raise TypeError("a mutable default goes in default_factory=, e.g. default_factory=lambda: [1, 2]")
    return dataclasses.field(default=default, default_factory=default_factory, metadata={RULE: rule})


@dataclass(frozen=True)
class Row:
    """One parameter of a schema, flattened: its full key, type in words, default and rule."""

    key: str
    type: str
    default: Any
    rule: Rule
    required: bool = False
    #: the field's annotation, without ``Annotated``
    hint: Any = None


# --- reading a schema ----------------------------------------------------------------------------------------

def hints(schema: type) -> dict:
    """The schema's field annotations, resolved (a schema module may use ``from __future__ import annotations``)."""
    return typing.get_type_hints(schema, include_extras=True)


def nested_schema(hint) -> type | None:
    """The dataclass a field holds (through ``Optional`` and ``Annotated``), or None."""
    hint = _bare(hint)
    if dataclasses.is_dataclass(hint):
        return hint
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if typing.get_origin(hint) in (typing.Union, types.UnionType) and len(args) == 1:
        return nested_schema(args[0])
    return None


def rule_of(field: dataclasses.Field, hint=None) -> Rule:
    """A field's rule: from ``param``, or from an ``Annotated`` hint's ``Rule``."""
    if RULE in field.metadata:
        return field.metadata[RULE]
    if typing.get_origin(hint) is typing.Annotated:
        for extra in typing.get_args(hint)[1:]:
            if isinstance(extra, Rule):
                return extra
    return Rule()  # an Annotated string says what the value may be: ``described`` shows it


def default_of(field: dataclasses.Field):
    """A field's default as a config holds it (a nested schema as a dict), or MISSING."""
    if field.default is not MISSING:
        value = field.default
    elif field.default_factory is not MISSING:
        value = field.default_factory()
    else:
        return MISSING
    return plain(dataclasses.asdict(value) if dataclasses.is_dataclass(value) else value)


def defaults(schema: type) -> dict:
    """The node a schema gives before overrides: each field's default (``???`` where one is required)."""
    return {f.name: ("???" if (d := default_of(f)) is MISSING else d) for f in dataclasses.fields(schema)}


def rows(schema: type, prefix: str) -> list[Row]:
    """Every parameter of ``schema`` under ``prefix`` (``model``), nested schemas flattened (``model.params.x``)."""
    found: list[Row] = []
    resolved = hints(schema)
    for field in dataclasses.fields(schema):
        hint, key = resolved[field.name], joined(prefix, field.name)
        inner = nested_schema(hint)
        if inner is not None:
            found += rows(inner, key)
            continue
        default = default_of(field)
        found.append(Row(key, described(hint), None if default is MISSING else default, rule_of(field, hint),
                         default is MISSING, _bare(hint)))
    return found


def described(hint) -> str:
    """A type annotation in words: ``a whole number or null``."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Annotated:
        extra = [a for a in args[1:] if isinstance(a, str)]
        return extra[0] if extra else described(args[0])
    if origin is typing.Literal:
        return "one of " + ", ".join(map(str, args))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(dict.fromkeys(described(arg) for arg in args))
    if origin in (list, tuple):
        return f"a list of {described(args[0])} values" if args else "a list"
    if origin is dict:
        return "a mapping"
    words = {type(None): "null", None: "null", bool: "true or false", int: "a whole number", float: "a number",
             str: "text", dict: "a mapping", list: "a list", tuple: "a list", Any: "any value"}
    if dataclasses.is_dataclass(hint):
        return "a mapping of " + ", ".join(f.name for f in dataclasses.fields(hint))
    return words.get(hint, "a path" if isinstance(hint, type) else str(hint))


def fits(value, hint) -> bool:
    """Whether ``value``, as a config holds it, has the type ``hint`` says."""
    import os

    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Annotated:
        return fits(value, args[0])
    if origin is typing.Literal:
        return value in args
    if origin in (typing.Union, types.UnionType):
        return any(fits(value, arg) for arg in args)
    if hint is type(None) or hint is None:
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    if isinstance(hint, type) and issubclass(hint, os.PathLike):
        return isinstance(value, os.PathLike)
    if origin in (list, tuple) or hint in (list, tuple):
        return isinstance(value, (list, tuple)) and (all(fits(v, args[0]) for v in value) if args else True)
    if origin is dict or hint is dict or dataclasses.is_dataclass(hint):
        return isinstance(value, dict)
    return True  # a type this check does not know (Any): the component checks it


# --- checking a node -----------------------------------------------------------------------------------------

def check_value(key: str, value, hint, rule: Rule = Rule()) -> None:
    """Refuse ``value`` for ``key`` unless it has the type ``hint`` says and ``rule`` allows it."""
    inner = nested_schema(hint)
    if inner is not None and not fits(value, hint):
        names = [f.name for f in dataclasses.fields(inner)]
        if not names:
            raise ConfigError(key, plain(value), f"a mapping of keys for {getattr(inner, 'extra_keys', None) or key}: "
                                                 f"add one as +{key}.NAME=VALUE")
        raise ConfigError(key, plain(value), f"a group of settings ({', '.join(names)}): set one as {key}.{names[0]}=...")
    if not fits(value, hint):
        worded = typing.get_origin(hint) is typing.Annotated and any(isinstance(a, str) for a in typing.get_args(hint))
        raise ConfigError(key, plain(value), described(hint) if worded else _allowed(described(hint), rule))
    problem = rule.problem(value)
    if problem:
        what = problem if rule.choices else _limited(_bare(hint), problem)
        raise ConfigError(key, plain(value), _allowed(what, rule))


def _limited(hint, limits: str) -> str:
    """``a whole number >= 0``, and ``null, or a whole number >= 0`` for an optional one."""
    if _optional(hint):
        others = [a for a in typing.get_args(hint) if a is not type(None)]
        return "null, or " + " or ".join(described(a) for a in others) + f" {limits}"
    return f"{described(hint)} {limits}"


def _allowed(what: str, rule: Rule) -> str:
    return f"{what} ({rule.help})" if rule.help else what


def _bare(hint):
    return typing.get_args(hint)[0] if typing.get_origin(hint) is typing.Annotated else hint


def check_node(node: dict, schema: type, prefix: str, *, what: str | None = None) -> None:
    """Check a component's config node (``name`` left out) against its schema: every key is a field (or the schema
    takes extra keys), every value fits its field, every required field is set. ``what`` names the component in
    the message for an unknown key (``model 'xgboost'``)."""
    from coupler.errors import did_you_mean

    fields = {f.name: f for f in dataclasses.fields(schema)}
    resolved = hints(schema)
    for key, value in node.items():
        if key not in fields:
            if getattr(schema, "extra_keys", None):
                continue
            listing = ", ".join(fields) or "(none)"
            raise ConfigError(joined(prefix, key), plain(value), f"{what or prefix} has no parameter {key!r}."
                              f"{did_you_mean(key, fields)} Its parameters are: {listing}")
        hint = resolved[key]
        inner = nested_schema(hint)
        if inner is not None and isinstance(value, dict):
            check_node(value, inner, joined(prefix, key))
        elif value != "???":
            check_value(joined(prefix, key), value, hint, rule_of(fields[key], hint))
    for name, field in fields.items():
        if (node.get(name, "???") == "???") and default_of(field) is MISSING:
            raise ConfigError(joined(prefix, name), "???", f"a value is required: set it on the command line "
                              f"({joined(prefix, name)}=...)")


def joined(prefix: str, key: str) -> str:
    """``prefix.key``, or ``key`` at the top (an empty prefix)."""
    return f"{prefix}.{key}" if prefix else key


def field_at(schema: type, path: list[str]) -> tuple[Any, Rule] | None:
    """The (hint, rule) of the field at ``path`` under ``schema`` (``["params", "eta"]``), or None (an unknown key,
    or one inside a mapping the schema does not describe)."""
    resolved = hints(schema)
    fields = {f.name: f for f in dataclasses.fields(schema)}
    if not path or path[0] not in fields:
        return None
    hint = resolved[path[0]]
    if len(path) == 1:
        return hint, rule_of(fields[path[0]], hint)
    inner = nested_schema(hint)
    return field_at(inner, path[1:]) if inner is not None else None


# --- schemas for components that declare none, and for Hydra -------------------------------------------------

#: what a factory receives from the run, not from its config node, by kind
CONTEXT_PARAMETERS = {"model": ("task", "seed")}


def derived(factory, kind: str) -> type:
    """The schema of a factory registered without one: a dataclass of its keyword parameters, with their annotations
    (unannotated: any value) and defaults (none: required). A ``**kwargs`` factory's schema takes extra keys."""
    import inspect

    try:
        signature = inspect.signature(factory)
    except (TypeError, ValueError):  # a builtin or C callable: no signature to read; it checks its own arguments
        return dataclasses.make_dataclass("AnyParameters", [], namespace={"extra_keys": "the factory"})
    try:
        annotations = typing.get_type_hints(inspect.unwrap(factory), include_extras=True)
    except (NameError, TypeError):  # an annotation that cannot be resolved: that parameter is unchecked
        annotations = {}
    fields = []
    for parameter in signature.parameters.values():
        if parameter.kind not in (parameter.POSITIONAL_OR_KEYWORD, parameter.KEYWORD_ONLY) \
                or parameter.name in CONTEXT_PARAMETERS.get(kind, ()) or parameter.name == "name":
            continue
        hint = annotations.get(parameter.name, Any)
        if parameter.default is parameter.empty:
            fields.append((parameter.name, hint))
        else:
            default = parameter.default
            fields.append((parameter.name, hint, dataclasses.field(default_factory=lambda d=default: d)))
    fields.sort(key=lambda f: len(f) == 3)  # a dataclass lists required fields first
    takes_more = any(p.kind is p.VAR_KEYWORD for p in signature.parameters.values())
    namespace = {"extra_keys": "the factory's **kwargs"} if takes_more else {}
    return dataclasses.make_dataclass(f"{getattr(factory, '__name__', 'factory')}_parameters", fields,
                                      namespace=namespace)


@functools.cache
def hydra_node(schema: type, name: str | None = None):
    """The structured config Hydra stores for ``schema``: the same fields and defaults (``name`` first, when given),
    each typed as OmegaConf can hold it (a type it cannot, such as ``str | list[str]``, becomes ``Any``; ``check_node``
    checks it), so that Hydra converts and checks values and refuses a key the schema does not list."""
    fields: list = [("name", str, dataclasses.field(default=name))] if name is not None else []
    resolved = hints(schema)
    for field in dataclasses.fields(schema):
        hint = resolved[field.name]
        inner = nested_schema(hint)
        stored = (hydra_node(inner) if inner is not None else _omegaconf_type(_bare(hint)))
        if inner is not None and _optional(hint):
            stored = typing.Optional[stored]
        default = default_of(field)
        if default is not MISSING and inner is None:
            default = config_value(default)
            if default is MISSING:  # an object a config cannot hold: the factory's default stays; set it with +
                continue
            if not fits(default, stored):  # `x: int = None`: OmegaConf would refuse it in every compose, not only
                stored = Any               # this component's; check_node refuses it when the component is built
        if default is MISSING:
            fields.append((field.name, stored, dataclasses.field(default="???")))
        elif inner is not None and default is not None:
            fields.append((field.name, stored, dataclasses.field(
                default_factory=lambda s=stored, d=default: _instance(s, d))))
        else:
            fields.append((field.name, stored, dataclasses.field(default_factory=lambda d=default: d)))
    return dataclasses.make_dataclass(f"{schema.__name__}Node", fields)


def config_value(value):
    """``value`` as a config holds it (a tuple becomes a list), or ``MISSING`` where a config cannot hold it (an
    object, a string with an interpolation marker, which Hydra would resolve)."""
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, str):
        return value if "${" not in value else MISSING
    if isinstance(value, (list, tuple)):
        items = [config_value(v) for v in value]
        return MISSING if any(v is MISSING for v in items) else items
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        items = {k: config_value(v) for k, v in value.items()}
        return MISSING if any(v is MISSING for v in items.values()) else items
    return MISSING


def _instance(node_type: type, values: dict):
    """An instance of a generated node type holding ``values`` (nested nodes built from their dicts)."""
    resolved = {f.name: f.type for f in dataclasses.fields(node_type)}
    kwargs = {}
    for key, value in values.items():
        if key not in resolved:
            continue
        inner = nested_schema(resolved[key])
        kwargs[key] = _instance(inner, value) if inner is not None and isinstance(value, dict) else value
    return node_type(**kwargs)


def _optional(hint) -> bool:
    hint = _bare(hint)
    return typing.get_origin(hint) in (typing.Union, types.UnionType) and type(None) in typing.get_args(hint)


#: the types OmegaConf holds as they are
_PRIMITIVES = (int, float, bool, str)


def _omegaconf_type(hint):
    """``hint`` as a structured config can hold it: a primitive, an optional primitive, a list or mapping of
    primitives; anything else is ``Any``."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint in _PRIMITIVES:
        return hint
    if origin in (typing.Union, types.UnionType):
        others = [a for a in args if a is not type(None)]
        if len(others) == 1 and len(args) == 2 and others[0] in _PRIMITIVES:
            return typing.Optional[others[0]]
        return Any
    if origin in (list, tuple) and len(args) >= 1 and args[0] in _PRIMITIVES and (origin is list or
                                                                                 args[1:] in ((), (Ellipsis,))):
        return list[args[0]]
    if origin is dict and args and args[0] is str and args[1] in _PRIMITIVES:
        return dict[str, args[1]]
    return Any


# --- showing a schema ----------------------------------------------------------------------------------------

def listing(schema: type, prefix: str) -> list[str]:
    """One line per parameter, for ``coupler train --help``: ``model.params.eta = 0.1  a number (>= 0): help``."""
    lines = []
    for row in rows(schema, prefix):
        default = "(required)" if row.required else f"= {_shown_default(row.default)}"
        limits = row.rule.limits()
        detail = row.rule.allowed_choices() if row.rule.choices else _limited(row.hint, limits) if limits else row.type
        lines.append(f"  {row.key} {default}  {detail}{': ' + row.rule.help if row.rule.help else ''}")
    if getattr(schema, "extra_keys", None):
        lines.append(f"  {prefix}.*: any other key, added with +, goes to {schema.extra_keys}")
    for field in dataclasses.fields(schema):
        inner = nested_schema(hints(schema)[field.name])
        if inner is not None and getattr(inner, "extra_keys", None):
            lines.append(f"  +{prefix}.{field.name}.NAME=VALUE: any other key goes to {inner.extra_keys}")
    return lines


def markdown_table(schema: type, prefix: str) -> str:
    """The docs' parameter table of a component (``tests/test_docs.py`` checks the docs hold it as generated)."""
    lines = ["| key | default | allowed | meaning |", "| --- | --- | --- | --- |"]
    for row in rows(schema, prefix):
        default = "required" if row.required else f"`{_shown_default(row.default)}`"
        limits = row.rule.limits()
        allowed = row.rule.allowed_choices() if row.rule.choices else _limited(row.hint, limits) if limits else row.type
        lines.append(f"| `{row.key}` | {default} | {allowed} | {row.rule.help} |")
    return "\n".join(lines)


def _shown_default(value) -> str:
    import json

    return "null" if value is None else json.dumps(value) if not isinstance(value, str) else value
