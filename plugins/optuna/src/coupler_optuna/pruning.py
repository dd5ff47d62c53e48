"""A trial's epochs reported to its study, from inside the trial's job (any process: through the storage).

The value reported is the search metric's ``val_METRIC`` when the engine measures it each epoch, else
``val_loss``, negated when the study maximizes, so that the pruner compares like with like whichever the
engine reports. Engine-neutral: it reads only the ``metrics`` of ``on_epoch_end``.
"""

from __future__ import annotations

import functools


@functools.lru_cache(maxsize=8)
def _trial(storage: str, study_name: str, number: int, pruner: str):
    import optuna

    from coupler_optuna.study import make_pruner, open_storage

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    opened = open_storage(storage)
    study = optuna.load_study(study_name=study_name, storage=opened, pruner=make_pruner(pruner))
    study_id = opened.get_study_id_from_name(study_name)
    trial_id = opened.get_trial_id_from_study_id_trial_number(study_id, number)
    return optuna.trial.Trial(study, trial_id), study.direction


def monitored(metrics: dict, metric: str | None, maximize: bool) -> float | None:
    """The value the pruner sees for one epoch, or None when the epoch measured neither the metric nor a loss."""
    if metric and f"val_{metric}" in metrics:
        return metrics[f"val_{metric}"]
    if "val_loss" in metrics:
        return -metrics["val_loss"] if maximize else metrics["val_loss"]
    return None


def report(node: dict, epoch: int, metrics: dict) -> bool:
    """Report ``epoch`` to the run's trial; return whether the pruner says stop (never with ``pruner=none``)."""
    import optuna

    trial, direction = _trial(node["storage"], node["study_name"], int(node["trial"]), node["pruner"])
    value = monitored(metrics, node.get("metric"), direction == optuna.study.StudyDirection.MAXIMIZE)
    if value is None:
        return False
    trial.report(value, epoch)
    if node["pruner"] != "none" and trial.should_prune():
        trial.set_user_attr("pruned_after_epoch", epoch)
        return True
    return False
