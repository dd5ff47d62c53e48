"""A trial's epochs reported to its study, from inside the trial's job (any process: through the storage).

The value reported is the search metric's ``val_METRIC`` when the engine measures it each epoch, else
``val_loss``, negated when the study maximizes, so that the pruner compares like with like whichever the
engine reports. Engine-neutral: it reads only the ``metrics`` of ``on_epoch_end``.
"""

from __future__ import annotations

import functools
import os


@functools.lru_cache(maxsize=8)
def _study(storage: str, study_name: str, pruner: str, identity: tuple | None):
    """The study a trial's job reports to, opened once per process, study and storage file (``identity``): opening a
    journal replays all of it, and the jobs of one search share a process under Hydra's basic launcher (once per
    trial, it cost 0.06 s of CPU a trial at 30 trials, growing with the journal). The storage reads what other
    processes wrote since at every call."""
    import optuna

    from coupler_optuna.study import make_pruner, open_storage

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    opened = open_storage(storage)
    study = optuna.load_study(study_name=study_name, storage=opened, pruner=make_pruner(pruner))
    return study, opened, opened.get_study_id_from_name(study_name)


def _file_identity(storage: str) -> tuple | None:
    """What tells the storage's file (a journal, an SQLite database) from one made again at the same path: its device,
    inode and first bytes (a journal's first line names the storage instance that created it, with a random id).
    None for a database server's storage."""
    path = storage[len("sqlite:///"):] if storage.startswith("sqlite:///") else None if "://" in storage else storage
    if not path:
        return None
    try:
        with open(path, "rb") as handle:
            stat = os.fstat(handle.fileno())
            return stat.st_dev, stat.st_ino, handle.read(256)
    except OSError:
        return None


def _trial(storage: str, study_name: str, number: int, pruner: str):
    """The trial numbered ``number`` (running: asked just now) and its study's direction."""
    import optuna

    key = (storage, study_name, pruner, _file_identity(storage))
    try:
        study, opened, study_id = _study(*key)
        trial_id = opened.get_trial_id_from_study_id_trial_number(study_id, number)
        if opened.get_trial(trial_id).state != optuna.trial.TrialState.RUNNING:
            raise KeyError(number)
    except Exception:  # noqa: BLE001 - the study opened earlier does not hold it (made again since): open it anew
        _study.cache_clear()
        study, opened, study_id = _study(*key)
        trial_id = opened.get_trial_id_from_study_id_trial_number(study_id, number)
    return optuna.trial.Trial(study, trial_id), study.direction


def monitored(metrics: dict, metric: str | None, maximize: bool) -> float | None:
    """The value the pruner sees for one epoch, or None when the epoch measured neither the metric nor a loss."""
    if metric and f"val_{metric}" in metrics:
        return metrics[f"val_{metric}"]
    if "val_loss" in metrics:
        return -metrics["val_loss"] if maximize else metrics["val_loss"]
    return None


#: the trial each (storage, study, number, pruner) reports to in this process, and the last epoch it reported
_reporting: dict[tuple, tuple] = {}


def report(node: dict, epoch: int, metrics: dict) -> bool:
    """Report ``epoch`` to the run's trial; return whether the pruner says stop (never with ``pruner=none``)."""
    import optuna

    key = (node["storage"], node["study_name"], int(node["trial"]), node["pruner"])
    known = _reporting.get(key)
    if known is None or epoch <= known[2]:  # a new run of that number (a study made again at the same path): look up
        known = _trial(*key)
        if len(_reporting) >= 8:
            _reporting.clear()
    trial, direction = known[:2]
    _reporting[key] = (trial, direction, epoch)
    value = monitored(metrics, node.get("metric"), direction == optuna.study.StudyDirection.MAXIMIZE)
    if value is None:
        return False
    trial.report(value, epoch)
    if node["pruner"] != "none" and trial.should_prune():
        trial.set_user_attr("pruned_after_epoch", epoch)
        return True
    return False
