"""The core's own settings (``task``, ``seed``, ``split``, ``cv``, ``preprocess``, ``train``, ``plugins``, ``resume``) as one
schema (``coupler.schema``): the primary config's defaults, the checks of ``split.val=...`` on the command line and
of the composed config, and their listing in ``coupler train --help`` all come from it.

Rules across keys stay where the values are used: ``split.val + split.test < 1`` (``splitting.check_fractions``),
``split.stratify`` for regression, ``train.class_weight``'s labels (``coupler.class_weight``), the ``cv.*`` rules
across keys and against the data (``coupler.cross_validation``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from coupler.components import TASKS as MODEL_TASKS
from coupler.plots import DEFAULT as DEFAULT_PLOTS
from coupler.plots import Selection as PlotSelection
from coupler.schema import param

TASKS = ("auto", *MODEL_TASKS)
IMPUTE = ("median", "mean", "zero")
SCALE = ("standard", "minmax", "none")
ENCODE = ("onehot", "ordinal")
CV_KINDS = ("auto", "stratified", "plain", "group", "time")


@dataclass
class Split:
    val: float = param(0.2, help="fraction of all rows for validation", ge=0, lt=1)
    test: float = param(0.1, help="fraction of all rows for test; split.val + split.test < 1", ge=0, lt=1)
    stratify: Any = param("auto", help="stratify by class; auto: for classification (regression: auto or false)",
                          choices=("auto", True, False))
    measure_test: bool = param(True, help="false: the test rows stay held out and unread (no test metrics or "
                                          "predictions; coupler evaluate RUN measures them later), as in a search's trials")


@dataclass
class CvSettings:
    folds: int = param(0, help="k-fold cross-validation over the train+val rows (test stays held out); 0: off, "
                               "else K >= 2", ge=0)
    kind: str = param("auto", help="auto: time for ordered data, group with cv.group, stratified for classification, "
                                   "else plain", choices=CV_KINDS)
    group: str | None = param(None, help="a column of the data whose rows stay in one fold; it is not a feature")
    repeats: int = param(1, help="repeated K-fold, reshuffled each time (not for kind time)", ge=1)
    refit: bool = param(True, help="true: the final model trains on train+val rows; false: on train, validating on val")
    n_jobs: int = param(1, help="folds trained at once, in processes (results identical to 1)", ge=1)


@dataclass
class Preprocess:
    impute: str = param("median", help="fill for missing numbers (a missing category takes the most frequent)", choices=IMPUTE)
    scale: str = param("standard", help="standard: mean 0, std 1; minmax: [0, 1]", choices=SCALE)
    encode: str = param("onehot", help="how categorical columns are encoded", choices=ENCODE)


@dataclass
class Train:
    # its shape is checked by coupler.class_weight.check_setting (null, balanced, or a mapping of labels)
    class_weight: Any = param(None, help="null; balanced; or a mapping of classes to weights, train.class_weight={yes:10} (see below)")
    log_every: float = param(5.0, help="without a terminal, seconds between per-epoch log lines (the first and last "
                                       "epoch always logged); 0: every epoch", ge=0)


@dataclass
class Plugins:
    disable: list[str] = param(default_factory=list, help="plugin names whose components this run may not use")


@dataclass
class CoreSettings:
    task: str = param("auto", help="what to learn; auto: told from the target", choices=TASKS)
    seed: int = param(0, help="seeds the split, random_state of estimators that have one, XGBoost's seed", ge=0, lt=2**32)
    split: Split = param(default_factory=Split, help="how rows are split")
    cv: CvSettings = param(default_factory=CvSettings, help="k-fold cross-validation (see below)")
    preprocess: Preprocess = param(default_factory=Preprocess, help="fitted on the training rows")
    train: Train = param(default_factory=Train, help="training settings every engine honours")
    plugins: Plugins = field(default_factory=Plugins)
    resume: str | None = param(None, help="resume=RUN_DIR: continue an interrupted run (see below)")
    plots: PlotSelection = param(default_factory=lambda: list(DEFAULT_PLOTS),
                                 help="PNG plots under RUN/plots/, each where it applies: a list of names, all, or none")


#: the top-level keys of a composed config that are the core's own settings (the groups come from the registry)
CORE_SETTINGS = tuple(CoreSettings.__dataclass_fields__)
