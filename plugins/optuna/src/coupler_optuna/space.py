"""The search space of ``search.space``: parsed and checked before any trial, and sampled into overrides.

Each entry is an override key and what it takes::

    model.params.C: {low: 0.001, high: 100, log: true}     # float (a float bound), log scale
    model.params.max_depth: {low: 2, high: 10}              # int (both bounds ints); step: N
    model.params.kernel: {choices: [rbf, linear]}           # categorical (a plain list works too)
    split.val: 0.25                                         # fixed for every trial
    model:                                                  # the component itself, each with its own space
      choices:
        logistic_regression: {model.params.C: {low: 0.01, high: 10, log: true}}
        xgboost: {model.params.eta: {low: 0.01, high: 0.3, log: true}}

A conditional parameter is sampled only under its choice, under the Optuna name ``KEY|GROUP=OPTION``, so that two
components may give one key different ranges.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from coupler.errors import ConfigError, CouplerError

RANGE_KEYS = frozenset({"low", "high", "log", "step"})


@dataclass
class Param:
    """One dimension: ``key`` is the override key; ``name`` Optuna's name for it."""

    key: str
    name: str
    low: float | int | None = None
    high: float | int | None = None
    log: bool = False
    step: float | int | None = None
    choices: list | None = None
    #: for a component choice: {option: its own Space}
    branches: dict = field(default_factory=dict)

    def suggest(self, trial) -> list[str]:
        """The overrides this dimension gives for ``trial`` (its branch's too)."""
        if self.choices is not None:
            value = trial.suggest_categorical(self.name, self.choices)
            overrides = [f"{self.key}={_text(value)}"]
            if self.branches:
                overrides += self.branches[value].suggest(trial)
            return overrides
        if isinstance(self.low, int) and isinstance(self.high, int) and not isinstance(self.step, float):
            value = trial.suggest_int(self.name, self.low, self.high, step=self.step or 1, log=self.log)
        else:
            value = trial.suggest_float(self.name, self.low, self.high, step=self.step, log=self.log)
        return [f"{self.key}={_text(value)}"]

    def extremes(self) -> list[list[str]]:
        """Override lists that reach every key and bound of this dimension: what the checks try before any trial."""
        if self.choices is not None:
            out = []
            for choice in self.choices:
                branch = self.branches.get(choice)
                tails = branch.extremes() if branch is not None else [[]]
                out += [[f"{self.key}={_text(choice)}", *tail] for tail in tails]
            return out
        return [[f"{self.key}={_text(self.low)}"], [f"{self.key}={_text(self.high)}"]]

    def grid(self) -> dict:
        """Optuna's GridSampler space for this dimension."""
        if self.branches:
            raise CouplerError(f"search.space.{self.key}: search.sampler=grid cannot search a component choice "
                               f"with its own parameters; use tpe or random, or list the options alone.")
        if self.choices is not None:
            return {self.name: list(self.choices)}
        if self.step is None:
            if isinstance(self.low, int) and isinstance(self.high, int):
                return {self.name: list(range(self.low, self.high + 1))}
            raise CouplerError(f"search.space.{self.key}: search.sampler=grid needs a step for a float range "
                               f"(add step: ...), or the values as choices: [...].")
        values, value = [], self.low
        while value <= self.high + 1e-12:
            values.append(value)
            value = value + self.step
        return {self.name: values}


@dataclass
class Space:
    params: list[Param]
    fixed: list[str]

    def suggest(self, trial) -> list[str]:
        overrides = list(self.fixed)
        for dimension in self.params:
            overrides += dimension.suggest(trial)
        return overrides

    def extremes(self) -> list[list[str]]:
        """One override list per bound and option (the fixed keys go before each)."""
        return [tail for dimension in self.params for tail in dimension.extremes()] or [[]]

    def grid(self) -> dict:
        out: dict = {}
        for dimension in self.params:
            out.update(dimension.grid())
        return out


def _text(value) -> str:
    """A value as an override writes it."""
    if isinstance(value, bool):
        return str(value).lower()
    if value is None:
        return "null"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def parse(space, prefix: str = "search.space", suffix: str = "") -> Space:
    """``search.space`` checked for shape (an empty space, ``low > high``, a range of the wrong type) and parsed."""
    if not isinstance(space, dict) or not space:
        raise CouplerError(f"{prefix} is empty: a search needs at least one dimension, e.g. "
                           f"search.space: {{model.params.C: {{low: 0.01, high: 10, log: true}}}} (docs/search.md).")
    params, fixed = [], []
    for key, spec in space.items():
        where = f"{prefix}.{key}"
        if not isinstance(key, str) or not key or key.startswith(("+", "~", "hydra")):
            raise ConfigError(prefix, key, "a Coupler override key (model.params.C, split.val); Hydra's keys cannot "
                                            "be searched")
        if isinstance(spec, list):
            spec = {"choices": spec}
        if not isinstance(spec, dict):
            fixed.append(f"{key}={_text(spec)}")
            continue
        params.append(_dimension(key, spec, where, suffix))
    if not params:
        raise CouplerError(f"{prefix} fixes every key and searches none: give at least one a range "
                           f"{{low, high}} or choices [...].")
    return Space(params, fixed)


def _dimension(key: str, spec: dict, where: str, suffix: str) -> Param:
    name = f"{key}{suffix}"
    if "choices" in spec:
        extra = set(spec) - {"choices"}
        if extra:
            raise ConfigError(where, spec, f"either choices or low/high, not both ({', '.join(sorted(extra))})")
        choices = spec["choices"]
        if isinstance(choices, dict):
            if not choices:
                raise CouplerError(f"{where}.choices is empty: list at least one option.")
            branches = {option: _branch(sub, f"{where}.choices.{option}", f"|{key}={option}")
                        for option, sub in choices.items()}
            return Param(key, name, choices=list(choices), branches=branches)
        if not isinstance(choices, list) or not choices:
            raise CouplerError(f"{where}.choices is empty: list at least one value.")
        if not all(c is None or isinstance(c, (str, int, float, bool)) for c in choices):
            raise ConfigError(f"{where}.choices", choices, "a list of plain values (text, numbers, true/false, null)")
        return Param(key, name, choices=list(choices))
    unknown = set(spec) - RANGE_KEYS
    if unknown or "low" not in spec or "high" not in spec:
        raise ConfigError(where, spec, "{low: L, high: H} (log: true, step: S optional) or {choices: [...]}")
    low, high = spec["low"], spec["high"]
    for bound, value in (("low", low), ("high", high), ("step", spec.get("step"))):
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise ConfigError(f"{where}.{bound}", value, "a number")
    if low > high:
        raise CouplerError(f"{where}: low={_text(low)} is above high={_text(high)}; swap them.")
    log = spec.get("log", False)
    if not isinstance(log, bool):
        raise ConfigError(f"{where}.log", log, "true or false")
    if log and low <= 0:
        raise ConfigError(f"{where}.low", low, "above 0 on a log scale (log: true)")
    if log and spec.get("step") is not None:
        raise CouplerError(f"{where}: a log scale takes no step; drop one of them.")
    step = spec.get("step")
    if step is not None and step <= 0:
        raise ConfigError(f"{where}.step", step, "above 0")
    return Param(key, name, low=low, high=high, log=log, step=step)


def _branch(sub, where: str, suffix: str) -> Space:
    if sub is None or sub == {}:
        return Space([], [])
    if not isinstance(sub, dict):
        raise ConfigError(where, sub, "a mapping of this option's own dimensions ({} for none)")
    space = Space([], [])
    for key, spec in sub.items():
        if isinstance(spec, list):
            spec = {"choices": spec}
        if isinstance(spec, dict):
            space.params.append(_dimension(key, spec, f"{where}.{key}", suffix))
        else:
            space.fixed.append(f"{key}={_text(spec)}")
    return space
