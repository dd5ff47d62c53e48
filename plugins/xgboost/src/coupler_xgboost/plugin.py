"""The ``xgboost`` plugin: registers ``model=xgboost``. Imports no xgboost until a run builds the model."""

from __future__ import annotations

from pathlib import Path

from coupler import hookimpl
from coupler.components import CLASSIFICATION, Model, check_params

COUPLER_API = ">=1.0,<2"  # the plugin API versions this plugin supports (coupler.hookspecs.API_VERSION)


class XGBoostContract(Model):
    """What ``model=xgboost`` declares (``coupler.components``), readable without importing XGBoost:
    ``coupler_xgboost.model.XGBoostModel`` extends it."""

    input_format = "frame"
    tasks = ("binary", "multiclass", "regression")
    proba_tasks = CLASSIFICATION
    reports_epochs = True  # every boosting round, when the validation split has rows
    sample_weights = True  # DMatrix(weight=)
    engine = "xgboost"


def build_xgboost(task: str, seed: int, params: dict | None = None, num_boost_round: int = 500):
    from coupler_xgboost.model import XGBoostModel

    return XGBoostModel(task=task, seed=seed, params=check_params(params), num_boost_round=num_boost_round)


build_xgboost.returns = XGBoostContract


@hookimpl
def register_models(register):
    register("xgboost", build_xgboost,
             description="XGBoost gradient boosting (native API; early stopping, native categoricals)")


@hookimpl
def register_config_dirs(register):
    register(Path(__file__).parent / "conf")
