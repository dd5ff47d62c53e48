"""The ``xgboost`` plugin: registers ``model=xgboost``. Imports no xgboost until a run builds the model."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from coupler import hookimpl
from coupler.components import CLASSIFICATION, Model
from coupler.schema import param

COUPLER_API = ">=1.2,<2"  # the plugin API versions this plugin supports (coupler.hookspecs.API_VERSION)


class XGBoostContract(Model):
    """What ``model=xgboost`` declares (``coupler.components``), readable without importing XGBoost:
    ``coupler_xgboost.model.XGBoostModel`` extends it."""

    input_format = "frame"
    input_formats = ("frame", "matrix")  # alone, a frame; beside matrix models (model=ensemble), a float matrix
    tasks = ("binary", "multiclass", "regression")
    proba_tasks = CLASSIFICATION
    reports_epochs = True  # every boosting round, when the validation split has rows
    sample_weights = True  # DMatrix(weight=)
    engine = "xgboost"
    export_formats = ("onnx",)  # onnxmltools (coupler_xgboost.onnx); not with categorical columns (refused before fit)


@dataclass
class XGBoostParams:
    """``model.params``: the parameters users tune most, at XGBoost's defaults but ``max_depth`` and ``eta``."""

    extra_keys = "xgboost.train (any parameter XGBoost documents; a one-round fit checks it)"

    max_depth: int = param(6, help="deepest level of a tree (0: no limit)", ge=0)
    eta: float = param(0.1, help="learning rate: how much each round adds", gt=0, le=1)
    tree_method: str = param("hist", help="how trees are grown", choices=("hist", "approx", "exact", "auto"))
    subsample: float = param(1.0, help="fraction of the rows each tree sees", gt=0, le=1)
    colsample_bytree: float = param(1.0, help="fraction of the columns each tree sees", gt=0, le=1)
    min_child_weight: float = param(1.0, help="least weight (hessian) a leaf holds", ge=0)
    reg_lambda: float = param(1.0, help="L2 penalty on leaf weights (XGBoost's lambda)", ge=0)
    reg_alpha: float = param(0.0, help="L1 penalty on leaf weights (XGBoost's alpha)", ge=0)


@dataclass
class XGBoostSchema:
    """``model=xgboost``. The objective and ``num_class`` follow the task; early stopping: callbacks=[early_stopping]
    (monitor val_loss, or val_EVAL_METRIC)."""

    num_boost_round: int = param(500, help="boosting rounds (early stopping may stop sooner)", ge=1)
    params: XGBoostParams = param(default_factory=XGBoostParams, help="passed to xgboost.train")


def build_xgboost(task: str, seed: int, params: dict, num_boost_round: int):
    from coupler_xgboost.model import XGBoostModel

    # XGBoost's own names of two schema fields (+model.params.lambda=50, an older run's config): the value given wins
    params = {f"reg_{k}" if k in ("lambda", "alpha") else k: v for k, v in params.items()
              if not (k in ("reg_lambda", "reg_alpha") and k.removeprefix("reg_") in params)}
    return XGBoostModel(task=task, seed=seed, params=params, num_boost_round=num_boost_round)


build_xgboost.returns = XGBoostContract


@hookimpl
def register_models(register):
    register("xgboost", build_xgboost, schema=XGBoostSchema,
             description="XGBoost gradient boosting (native API; early stopping, native categoricals)")


@hookimpl
def register_config_dirs(register):
    """``conf/search/MODEL.yaml``: the search space of each model of this plugin (``coupler train -m search=MODEL``,
    with coupler-optuna installed). The plugin that knows a model's parameters ships its space, listed with it as
    the provider (``coupler train --help``, ``coupler plugins``)."""
    register(Path(__file__).parent / "conf")
