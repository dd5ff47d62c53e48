"""The core's own settings (``task``, ``seed``, ``split``, ``preprocess``, ``train``, ``plugins``, ``resume``) as one
schema (``coupler.schema``): the primary config's defaults, the checks of ``split.val=...`` on the command line and
of the composed config, and their listing in ``coupler train --help`` all come from it.

Rules across keys stay where the values are used: ``split.val + split.test < 1`` (``splitting.check_fractions``),
``split.stratify`` for regression, ``train.class_weight``'s labels (``coupler.class_weight``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from coupler.components import TASKS as MODEL_TASKS
from coupler.schema import param

TASKS = ("auto", *MODEL_TASKS)
IMPUTE = ("median", "mean", "zero")
SCALE = ("standard", "minmax", "none")
ENCODE = ("onehot", "ordinal")


@dataclass
class Split:
    val: float = param(0.2, help="fraction of the rows that validate", ge=0, lt=1)
    test: float = param(0.1, help="fraction of the rows held out to test", ge=0, lt=1)
    stratify: Any = param("auto", help="keep class proportions in each split; auto: for classification",
                          choices=("auto", True, False))


@dataclass
class Preprocess:
    impute: str = param("median", help="fills a missing number; a missing category takes the most frequent", choices=IMPUTE)
    scale: str = param("standard", help="scales numeric columns", choices=SCALE)
    encode: str = param("onehot", help="encodes categorical columns", choices=ENCODE)


@dataclass
class Train:
    # its shape is checked by coupler.class_weight.check_setting (null, balanced, or a mapping of labels)
    class_weight: Any = param(None, help="null, balanced, or {label: weight} (coupler.class_weight)")


@dataclass
class Plugins:
    disable: list[str] = param(default_factory=list, help="plugins to leave out of this run")


@dataclass
class CoreSettings:
    task: str = param("auto", help="what to learn; auto: told from the target", choices=TASKS)
    seed: int = param(0, help="seeds the split and every model", ge=0, lt=2**32)
    split: Split = param(default_factory=Split, help="how rows are split")
    preprocess: Preprocess = param(default_factory=Preprocess, help="fitted on the training rows")
    train: Train = param(default_factory=Train, help="training settings every engine honours")
    plugins: Plugins = field(default_factory=Plugins)
    resume: str | None = param(None, help="the directory of an interrupted run: resume=RUN_DIR")


#: the top-level keys of a composed config that are the core's own settings (the groups come from the registry)
CORE_SETTINGS = tuple(CoreSettings.__dataclass_fields__)
