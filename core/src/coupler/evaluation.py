"""Measuring a model on a split: predictions, the selected metrics, and the files they go to."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from coupler.components import Metric, Model, gives_proba
from coupler.errors import ConfigError, CouplerError
from coupler.registry import Registry


def select_metrics(nodes: dict | None, task: str, model: Model, registry: Registry) -> list[Metric]:
    """The metrics a run computes: those ``metrics=[...]`` names, else the task's defaults.

    A metric that does not fit the task, or needs probabilities the model cannot give for it
    (``Model.proba_tasks``), is an error when named and silently left out when it is a default. This runs once the
    data gave the task, before ``fit``; ``coupler.capabilities`` refused what it could before reading the data.
    """
    from coupler.builtin.metrics import DEFAULTS

    explicit = bool(nodes)
    # a default metric whose plugin is disabled (COUPLER_DISABLE_PLUGINS=metrics) is left out, not an error
    nodes = nodes or {name: {"name": name} for name in DEFAULTS[task] if registry.provider("metric", name)}
    chosen = []
    for key, node in nodes.items():
        name = (node or {}).get("name", key)
        metric = registry.get("metric", name).build(f"metrics.{key}", node or {})
        if not isinstance(metric, Metric):
            raise ConfigError(f"metrics.{key}", name, "a factory returning coupler.components.Metric")
        if task not in metric.tasks:
            if explicit:
                fitting = [c.name for c in registry.components("metric") if task in _tasks(c)]
                raise ConfigError("metrics", name, f"metrics for a {task} task: {', '.join(sorted(fitting))}")
            continue
        if metric.needs_proba and not gives_proba(model, task):
            if explicit:
                raise ConfigError("metrics", name, f"metrics that need no class probabilities: this model gives none "
                                  f"for a {task} task; remove {name} from metrics")
            continue
        chosen.append(metric)
    return chosen


def _tasks(component) -> tuple:
    try:
        return tuple(component.factory().tasks)
    except Exception:  # a metric factory that needs arguments: not listed
        return ()


@dataclass
class Measured:
    scalars: dict[str, float | None] = field(default_factory=dict)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    prediction: np.ndarray | None = None
    proba: np.ndarray | None = None


def measure(model: Model, X, y: np.ndarray | None, metrics: list[Metric], n_classes: int = 0,
            task: str | None = None) -> Measured:
    """Predict ``X`` once and compute every metric against ``y``. NaN (undefined) becomes None. ``task``: the
    run's (by default the one ``n_classes`` implies), for which the model may give probabilities."""
    prediction = np.asarray(model.predict(X))
    task = task or ("regression" if not n_classes else "binary" if n_classes == 2 else "multiclass")
    proba = model.predict_proba(X) if gives_proba(model, task) else None
    if proba is not None:
        _check_proba(proba, len(prediction), n_classes)
    return score(y, prediction, None if proba is None else np.asarray(proba), metrics, n_classes)


def _check_proba(proba, rows: int, n_classes: int) -> None:
    if np.shape(proba) != (rows, n_classes):
        raise CouplerError(f"the model's predict_proba gave shape {np.shape(proba)}; a {n_classes}-class task needs "
                           f"({rows}, {n_classes}), one column per class (0 for a class it never saw).")


def measure_stream(model: Model, stream, metrics: list[Metric], n_classes: int = 0, task: str | None = None,
                   rows: int | None = None) -> tuple[Measured, np.ndarray]:
    """``measure`` for a ``coupler.streaming.RowStream``: the model predicts each partition (a matrix), and the
    metrics are computed once on the whole split's predictions. Returns the ``Measured`` and the split's targets.
    ``rows``: the split's exact row count when known (a scanned stream's, a finished run's manifest): the
    predictions are then written into arrays of that size, never held twice while they are joined."""
    task = task or ("regression" if not n_classes else "binary" if n_classes == 2 else "multiclass")
    with_proba = gives_proba(model, task)
    columns = _Columns(rows)
    for partition in stream.partitions():
        batch = partition.read()
        if not len(batch):  # a row group without rows of this split
            continue
        proba = None
        if with_proba:
            proba = np.asarray(model.predict_proba(batch.X))
            _check_proba(proba, len(batch), n_classes)
        columns.add(np.asarray(model.predict(batch.X)), proba, batch.y)
    if not columns.filled:
        raise CouplerError("the split has no rows to measure")
    prediction, proba, y = columns.arrays()
    return score(y, prediction, proba, metrics, n_classes), y


class _Columns:
    """Predictions, probabilities and targets gathered batch by batch: into arrays of ``rows`` rows when that is
    known, else (or once a batch does not fit them, or needs a wider type) joined at the end."""

    def __init__(self, rows: int | None):
        self.rows, self.filled, self.parts, self.arrays_ = rows, 0, [], None

    def add(self, *values) -> None:
        n = len(values[-1])
        widens = self.arrays_ is not None and any(  # a batch of a wider type than the first (floats after ints)
            a is not None and np.result_type(a.dtype, v.dtype) != a.dtype for a, v in zip(self.arrays_, values))
        if self.rows is None or self.filled + n > self.rows or widens:  # unknown (or wrong) count: join at the end
            if self.arrays_ is not None:
                self.parts, self.arrays_ = [tuple(None if a is None else a[:self.filled] for a in self.arrays_)], None
            self.rows = None
            self.parts.append(values)
        else:
            if self.arrays_ is None:
                self.arrays_ = tuple(None if v is None else np.empty((self.rows, *v.shape[1:]), v.dtype) for v in values)
            for array, value in zip(self.arrays_, values):
                if array is not None:
                    array[self.filled:self.filled + n] = value
        self.filled += n

    def arrays(self) -> tuple:
        if self.arrays_ is not None:
            return tuple(None if a is None else a[:self.filled] for a in self.arrays_)
        return tuple(None if parts[0] is None else np.concatenate(parts) for parts in zip(*self.parts))


def score(y: np.ndarray | None, prediction: np.ndarray, proba: np.ndarray | None, metrics: list[Metric],
          n_classes: int = 0) -> Measured:
    """Every metric of ``prediction`` (and ``proba``) against ``y``. NaN (undefined) becomes None."""
    result = Measured(prediction=prediction, proba=proba)
    for metric in metrics:
        value = metric(y, prediction, result.proba, n_classes)
        if np.ndim(value) == 0:
            value = float(value)
            result.scalars[metric.name] = None if math.isnan(value) else value
        else:
            result.arrays[metric.name] = np.asarray(value)
    return result


def predictions_frame(index, measured: Measured, classes: list, y_true=None):
    """A table of predictions in the user's labels: ``target`` (when known), ``prediction``, ``proba_CLASS``."""
    import pandas as pd

    columns = {}
    if y_true is not None:
        columns["target"] = [classes[int(c)] for c in y_true] if classes else y_true
    columns["prediction"] = [classes[int(c)] for c in measured.prediction] if classes else measured.prediction
    if measured.proba is not None:
        for k, label in enumerate(classes):
            columns[f"proba_{label}"] = measured.proba[:, k]
    return pd.DataFrame(columns, index=index)


def format_table(metrics: dict[str, dict[str, float | None]]) -> str:
    """The metrics as an aligned text table: a row per metric, a column per split."""
    splits = [s for s in metrics if metrics[s]]
    names = list(dict.fromkeys(n for s in splits for n in metrics[s]))
    if not names:
        return "(no metrics)"
    width = max(len("metric"), *(len(n) for n in names))
    lines = [f"{'metric':<{width}}  " + "  ".join(f"{s:>10}" for s in splits)]
    for name in names:
        cells = []
        for split in splits:
            value = metrics[split].get(name)
            value = value.get("mean") if isinstance(value, dict) else value  # the cv section: the folds' mean
            cells.append(f"{'n/a' if value is None else format(value, '.4f'):>10}")
        lines.append(f"{name:<{width}}  " + "  ".join(cells))
    return "\n".join(lines)
