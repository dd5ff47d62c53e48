"""The ``optuna`` plugin: the ``search`` settings group (``coupler train -m search=NAME``), ``search=model_choice``
(``conf/search/model_choice.yaml``: the model itself searched, across the sklearn and xgboost plugins), and pruning
through the run's epoch events. Each model plugin ships the search file of each of its models
(``coupler_xgboost/conf/search/xgboost.yaml``, ...), in a config directory of its own.

A search file chooses Coupler's sweeper (``override /hydra/sweeper: coupler_optuna`` in its defaults list) and
holds the settings below; the sweeper (``hydra_plugins.coupler_optuna_sweeper``) runs the study and gives each
trial's job ``search.trial``, ``search.storage`` and ``search.study_name``, so that ``on_epoch_end`` here, in
whichever process the launcher runs the job, reports to that trial through the study's storage. Pruning knows
no engine: any model that fires ``run.epoch_end`` (XGBoost rounds, torch epochs, a third-party model) is
pruned; a pruned run stops after its epoch (``run.should_stop``) and raises ``coupler.errors.RunPruned`` when
its fit returns, so that no library sees the exception. Imports no Optuna until a trial reports.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from coupler import hookimpl
from coupler.schema import param

COUPLER_API = ">=1.2,<2"

log = logging.getLogger("coupler.search")

SAMPLERS = ("tpe", "random", "grid", "cmaes")
PRUNERS = ("median", "hyperband", "none")


@dataclass
class SearchSettings:
    """``search=NAME``: an Optuna study over ``search.space`` (run it with ``coupler train -m search=NAME``)."""

    n_trials: int = param(20, help="trials the study runs to (finished, pruned or failed; an interrupted one is "
                                   "run again)", ge=1)
    sampler: str = param("tpe", help="how trials are chosen", choices=SAMPLERS)
    pruner: str = param("median", help="how unpromising trials are stopped early (models that report epochs)",
                        choices=PRUNERS)
    metric: str | None = param(None, help="the validation metric to optimize (null: the run's first metric, the "
                                          "first of metrics=[...] or the task's first default; the CV mean when "
                                          "cv.folds is set)")
    storage: str | None = param(None, help="the study's storage: an Optuna URL (sqlite:///FILE, "
                                           "postgresql://...) or a journal file path (null: the journal file "
                                           "study.journal in the sweep directory)")
    study_name: str | None = param(None, help="the study's name in its storage (null: the search file's name)")
    n_jobs: int = param(1, help="worker processes on this machine sharing the study; each starts a new trial as "
                                "soon as its last one ends", ge=1)
    refit: bool = param(False, help="retrain the best configuration on train+val and test it once")
    seed: int | None = param(None, help="the sampler's seed (null: the run's seed)", ge=0)
    space: dict = param(default_factory=dict, help="the search space: KEY: {low, high[, log, step]} or "
                                                   "{choices: [...]} or {choices: {OPTION: {KEY: ...}}} (docs/search.md)")
    trial: int | None = param(None, help="set by the sweeper for each trial's job: the trial it reports to")


@hookimpl
def register_config_groups(register):
    register("search", default=None, description="an Optuna search: coupler train -m search=NAME",
             schema=SearchSettings)


@hookimpl
def register_config_dirs(register):
    register(Path(__file__).parent / "conf")


#: runs whose trial was pruned (by id of the run): their fit is told to stop, and ``on_fit_end`` raises
_pruned: dict[int, tuple] = {}


def _trial_of(run):
    """The search node of a run that is a trial of a study, or None. A cross-validation fold's fit is none: its
    epochs repeat the steps of the fold before, and the trial's value is the folds' mean, known only after the last
    one, so a trial with ``cv.folds`` is not pruned (said once)."""
    node = run.config.get("search") or {}
    if node.get("trial") is None or not node.get("storage"):
        return None
    if getattr(run, "fold", None) is not None:
        if "cv" not in _said:
            _said.add("cv")
            log.info("cv.folds is set: trials are not pruned (a trial's value is the mean over its folds)")
        return None
    return {"pruner": "median", **node}


#: the models of this process's trials already said to report no epochs (said once, not once per trial)
_said: set = set()


@hookimpl
def on_fit_start(run, model):
    node = _trial_of(run)
    name = run.config["model"]["name"]
    if node is not None and not getattr(model, "reports_epochs", False) and node.get("pruner") != "none" \
            and name not in _said:
        _said.add(name)
        log.info("model %r reports no epochs: pruning does not apply to its trials", name)


@hookimpl
def on_epoch_end(run, epoch, metrics):
    node = _trial_of(run)
    if node is None:  # every epoch is reported, pruned or not: the study keeps each trial's learning curve
        return
    from coupler_optuna.pruning import report

    if report(node, epoch, metrics):
        _pruned[id(run)] = (run, epoch)  # the run held: its id is not reused while the entry stays
        run.should_stop = True


@hookimpl
def on_fit_end(run, model):
    entry = _pruned.pop(id(run), None)
    epoch = entry[1] if entry is not None and entry[0] is run else None
    if epoch is not None:
        from coupler.errors import RunPruned

        raise RunPruned(f"trial {run.config['search']['trial']} pruned after epoch {epoch} (its validation score "
                        f"trailed the other trials')")
