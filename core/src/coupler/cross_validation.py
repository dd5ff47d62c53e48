"""k-fold cross-validation over the train+val rows, for any model, through the ``Model`` contract only.

``cv.folds=K`` (``coupler.settings.CvSettings``) splits the rows the split gave to train and val (the test rows stay
held out) with scikit-learn's splitters, seeded by ``seed``: ``StratifiedKFold`` / ``RepeatedStratifiedKFold`` for
classification, ``KFold`` / ``RepeatedKFold`` for regression, ``StratifiedGroupKFold`` / ``GroupKFold`` with
``cv.group=COLUMN``, ``TimeSeriesSplit`` (expanding window, the data set's ``gap``) for ordered data. The training
run (``coupler.training``) gives each fold a fresh preprocessor fitted on the fold's training rows, a fresh model
from the factory, ``model.fit(train_fold, val_fold, run)`` and the metrics on the fold's validation rows; this module
plans the folds, refuses what cannot work before any fold trains, runs the folds (in processes with
``cv.n_jobs``), and keeps the record: ``metrics.json``'s ``cv`` section and ``folds.csv``.

Callbacks are *reset*, not rebuilt: the run's callbacks are the objects registered with the plugin manager (and
those an engine looks up in ``run.callbacks``), so each one's attributes are snapshot before the first fold and
restored before every fold and before the final model's fit (``CallbackReset``): early stopping's patience count
starts afresh each time. Each fold gets its own ``RunContext`` (empty history, no best epoch, ``should_stop``
false) whose directory is a temporary one, so that what an engine writes during ``fit`` (checkpoints) neither
mixes between folds nor lands in the run directory. ``history.csv`` stays the final model's.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from coupler.errors import ConfigError
from coupler.splitting import SplitIndices

log = logging.getLogger("coupler")

FOLDS_FILE = "folds.csv"


@dataclass(frozen=True)
class Fold:
    """One fold: its repeat and number (from 1) and the data set's row positions it trains and validates on."""

    repeat: int
    number: int
    indices: SplitIndices


def settings(config: dict) -> dict:
    """The run's ``cv`` settings with the schema's defaults filled in (a config written before ``cv`` existed)."""
    from coupler.settings import CvSettings

    defaults = {f.name: (f.default if f.default is not dataclasses.MISSING else None)
                for f in dataclasses.fields(CvSettings)}
    return {**defaults, **(config.get("cv") or {})}


def check_settings(cv: dict) -> None:
    """The rules across ``cv`` keys, before any data is read."""
    folds, kind, group, repeats = cv["folds"], cv["kind"], cv["group"], cv["repeats"]
    if folds == 1:
        raise ConfigError("cv.folds", folds, "0 (no cross-validation) or a number of folds >= 2")
    if not folds:
        changed = [f"cv.{key}={cv[key]}" for key, off in (("kind", "auto"), ("group", None), ("repeats", 1))
                   if cv[key] != off]
        if changed:
            raise ConfigError("cv.folds", 0, f"a number of folds >= 2 for {', '.join(changed)} to take effect "
                                             f"(cv.folds=0: no cross-validation)")
        return
    if kind == "group" and not group:
        raise ConfigError("cv.kind", kind, "group with cv.group=COLUMN, the column whose rows stay in one fold")
    if group and kind not in ("auto", "group"):
        raise ConfigError("cv.kind", kind, f"auto or group with cv.group={group} (grouped folds)")
    if kind == "time" and repeats > 1:
        raise ConfigError("cv.repeats", repeats, "1 with cv.kind=time: time-ordered folds are the same each "
                                                 "repeat")


def check_refit(cv: dict, callbacks: dict) -> None:
    """``cv.refit=true`` fits the final model without validation rows: a callback that monitors a validation
    metric (early stopping on ``val_loss``) would have nothing to watch, so it is refused before any fold."""
    watching = [key for key, callback in callbacks.items() if str(getattr(callback, "monitor", "")).startswith("val")]
    if cv["refit"] and watching:
        raise ConfigError("cv.refit", True, f"false with callbacks {', '.join(watching)}: they monitor validation "
                                            f"metrics, and the refit on train+val has no validation rows (false: the "
                                            f"final model trains on train and validates on val)")


def take_group(dataset, cv: dict):
    """The data set without the ``cv.group`` column (it groups rows; it is no feature), and that column's values;
    ``(dataset, None)`` without ``cv.group``."""
    group = cv["group"] if cv["folds"] else None
    if not group:
        return dataset, None
    columns = list(dataset.X.columns)
    if group not in columns:
        raise ConfigError("cv.group", group, f"a column of data {dataset.name!r}: {', '.join(map(str, columns))}")
    if len(columns) == 1:
        raise ConfigError("cv.group", group, f"a column other than the only feature of data {dataset.name!r}")
    values = dataset.X[group].to_numpy()
    return dataclasses.replace(dataset, X=dataset.X.drop(columns=[group]),
                               categorical=[c for c in dataset.categorical if c != group]), values


def resolve_kind(cv: dict, task: str, ordered: bool) -> str:
    """The splitter ``cv.kind=auto`` means for this data, and the explicit kinds checked against it."""
    kind = cv["kind"]
    if kind == "auto":
        return "group" if cv["group"] else "time" if ordered else "plain" if task == "regression" else "stratified"
    if kind == "stratified" and task == "regression":
        raise ConfigError("cv.kind", kind, "auto, plain, group or time for a regression task (stratified folds "
                                           "keep each class's share)")
    if kind == "time" and not ordered:
        raise ConfigError("cv.kind", kind, "auto, stratified, plain or group: these rows are not declared in time "
                                           "order; a data loader declares it by returning Dataset(ordered=True)")
    return kind


def plan(cv: dict, task: str, ordered: bool, gap: int, y: np.ndarray, indices: SplitIndices, seed: int,
         classes: list, groups: np.ndarray | None = None) -> list[Fold]:
    """The folds over the train+val rows of ``indices``, refused (one ``ConfigError``) when they cannot be made."""
    rows = np.sort(np.concatenate([indices.train, indices.val]))
    kind = resolve_kind(cv, task, ordered)
    _check_fold_count(cv["folds"], kind, y[rows], classes, None if groups is None else groups[rows])
    folds, empty = [], np.empty(0, dtype=int)
    split = _splits(kind, cv["folds"], cv["repeats"], seed, gap, task, y[rows],
                    None if groups is None else groups[rows])
    for position, (train, val) in enumerate(split):
        repeat, number = divmod(position, cv["folds"])
        folds.append(Fold(repeat + 1, number + 1, SplitIndices(rows[train], rows[val], empty)))
    return folds


def _splits(kind: str, k: int, repeats: int, seed: int, gap: int, task: str, y: np.ndarray, groups):
    """scikit-learn's splitter for ``kind``: (train, val) positions, repeat after repeat."""
    from sklearn import model_selection as ms

    X = np.zeros((len(y), 1))
    if kind == "time":
        return ms.TimeSeriesSplit(n_splits=k, gap=gap).split(X)
    if kind == "stratified":
        splitter = (ms.StratifiedKFold(k, shuffle=True, random_state=seed) if repeats == 1
                    else ms.RepeatedStratifiedKFold(n_splits=k, n_repeats=repeats, random_state=seed))
        return splitter.split(X, y)
    if kind == "plain":
        splitter = (ms.KFold(k, shuffle=True, random_state=seed) if repeats == 1
                    else ms.RepeatedKFold(n_splits=k, n_repeats=repeats, random_state=seed))
        return splitter.split(X, y)
    grouped = ms.GroupKFold if task == "regression" else ms.StratifiedGroupKFold  # a new shuffle each repeat
    return (pair for r in range(repeats)
            for pair in grouped(k, shuffle=True, random_state=seed + r).split(X, y, groups))


def _check_fold_count(k: int, kind: str, y: np.ndarray, classes: list, groups) -> None:
    """Every fold needs validation rows: K at most the rows, the groups, or (stratified) the smallest class."""
    n = len(y)
    if kind == "time" and k >= n:
        raise ConfigError("cv.folds", k, f"at most {n - 1}: time-ordered folds need a row more than the folds, and "
                                         f"there are {n} train+val rows")
    if kind == "group":
        count = len(np.unique(groups.astype(str)))
        if k > count:
            raise ConfigError("cv.folds", k, f"at most {count}: cv.group has {count} distinct values in the "
                                             f"{n} train+val rows, and each fold validates on whole groups")
    if kind == "stratified":
        labels, counts = np.unique(y, return_counts=True)
        smallest = int(np.argmin(counts))
        if k > counts[smallest]:
            name = classes[labels[smallest]] if classes else labels[smallest]
            raise ConfigError("cv.folds", k, f"at most {counts[smallest]}: class {name!r} has {counts[smallest]} of "
                                             f"the {n} train+val rows, and stratified folds put one in each fold "
                                             f"(or set cv.kind=plain)")
    if k > n:
        raise ConfigError("cv.folds", k, f"at most {n}, the train+val rows")


class CallbackReset:
    """Puts callbacks back as they were built: a deep copy of each one's attributes, taken once, restored on
    ``reset()`` (before each fold and before the final fit), so that no state leaks from one fit to the next."""

    def __init__(self, callbacks):
        self.saved = [(callback, _copied(callback)) for callback in callbacks if hasattr(callback, "__dict__")]

    def reset(self) -> None:
        for callback, attributes in self.saved:
            vars(callback).clear()
            vars(callback).update(copy.deepcopy(attributes))


def _copied(callback) -> dict:
    """A deep copy of a callback's attributes; one it cannot copy (an open file, a lock) is refused, naming it."""
    try:
        return copy.deepcopy(vars(callback))
    except Exception as exc:
        from coupler.errors import CouplerError

        raise CouplerError(f"cv.folds: callback {type(callback).__name__} cannot be reset between folds: copying its "
                           f"attributes failed ({type(exc).__name__}: {exc}). Keep only plain state (numbers, lists, "
                           f"dicts) in its attributes and open files or locks in on_fit_start, or run without "
                           f"cv.folds") from None


def fold_context(run, directory: Path, fold: Fold):
    """The ``RunContext`` a fold's ``fit`` sees: the run's, with a copy of its config (what a model writes into it
    stays with the fold), a fresh history, no best epoch, ``directory``, and ``run.fold`` set, so that a plugin
    watching epochs (a search's pruner) can tell a fold's epochs from the run's own."""
    return dataclasses.replace(run, config=copy.deepcopy(run.config), directory=Path(directory), history=[],
                               should_stop=False, best_epoch=None, best_score=None, fold=(fold.repeat, fold.number))


# --- running the folds ------------------------------------------------------------------------------------

#: the job of the processes of ``run_folds``: they are forked, so they inherit it (a closure cannot be pickled)
_JOB: tuple | None = None


def run_folds(folds: list[Fold], fit_fold: Callable[[Fold], dict], n_jobs: int, reset: CallbackReset) -> list[dict]:
    """``fit_fold(fold)`` (the fold's metrics) for every fold, in order; ``n_jobs > 1``: in that many forked
    processes, which inherit the run's plugins, data and callbacks as they are (results identical to one process).
    Logs a line per fold."""
    global _JOB
    import multiprocessing

    parallel = n_jobs > 1 and len(folds) > 1
    if parallel and "fork" not in multiprocessing.get_all_start_methods():
        log.warning("cv.n_jobs=%d: this platform cannot fork processes; the folds run one after another", n_jobs)
        parallel = False
    if not parallel:
        results = (_fit_reset(fit_fold, reset, fold) for fold in folds)
        return [_logged(i, fold, result, len(folds)) for i, (fold, result) in enumerate(zip(folds, results))]
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    from coupler.errors import CouplerError

    _JOB = (fit_fold, reset)
    try:
        with ProcessPoolExecutor(min(n_jobs, len(folds)), mp_context=multiprocessing.get_context("fork")) as pool:
            outcomes = list(pool.map(_in_worker, folds))
    except BrokenProcessPool:
        raise CouplerError(f"a process training a fold died (out of memory?): lower cv.n_jobs={n_jobs}, or set "
                           f"cv.n_jobs=1") from None
    finally:
        _JOB = None
    return [_logged(i, fold, _unwrap(outcome), len(folds)) for i, (fold, outcome) in enumerate(zip(folds, outcomes))]


def _fit_reset(fit_fold, reset: CallbackReset, fold: Fold) -> dict:
    reset.reset()
    return fit_fold(fold)


def _in_worker(fold: Fold):
    """A fold in a worker process: its metrics, or a ``CouplerError``'s class and message (some of them cannot be
    pickled back whole: ``ConfigError`` takes three arguments)."""
    from coupler.errors import CouplerError

    fit_fold, reset = _JOB
    try:
        return "ok", _fit_reset(fit_fold, reset, fold)
    except CouplerError as exc:
        return "error", str(exc)


def _unwrap(outcome) -> dict:
    from coupler.errors import CouplerError

    status, value = outcome
    if status == "error":
        raise CouplerError(value)
    return value


def _logged(position: int, fold: Fold, metrics: dict, total: int) -> dict:
    shown = " ".join(f"{name}={'n/a' if value is None else format(value, '.4f')}" for name, value in metrics.items())
    log.info("cv fold %d/%d (repeat %d, fold %d): train=%d val=%d %s", position + 1, total, fold.repeat,
             fold.number, len(fold.indices.train), len(fold.indices.val), shown)
    return metrics


# --- the record -------------------------------------------------------------------------------------------

def summary(results: list[dict]) -> dict:
    """``metrics.json``'s ``cv`` section: each metric's mean and (population) std over the folds that gave it a
    value, and how many folds those are."""
    names = list(dict.fromkeys(name for result in results for name in result))
    section = {}
    for name in names:
        values = [r[name] for r in results if r.get(name) is not None and math.isfinite(r[name])]
        section[name] = ({"mean": float(np.mean(values)), "std": float(np.std(values)), "folds": len(values)}
                         if values else {"mean": None, "std": None, "folds": 0})
    return section


def folds_frame(folds: list[Fold], results: list[dict]):
    """``folds.csv``: a row per fold (repeat, fold, its train and val row counts, each metric)."""
    import pandas as pd

    rows = [{"repeat": fold.repeat, "fold": fold.number, "train_rows": len(fold.indices.train),
             "val_rows": len(fold.indices.val), **result} for fold, result in zip(folds, results)]
    return pd.DataFrame(rows).set_index(["repeat", "fold"])


def final_indices(indices: SplitIndices, refit: bool) -> SplitIndices:
    """The final model's rows: ``cv.refit=true`` trains on train+val (no validation rows), false as without cv."""
    if not refit:
        return indices
    return SplitIndices(np.sort(np.concatenate([indices.train, indices.val])), np.empty(0, dtype=int), indices.test)
