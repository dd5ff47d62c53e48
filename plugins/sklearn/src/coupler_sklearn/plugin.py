"""The ``sklearn`` plugin: registers scikit-learn estimators as Coupler models.

Each model declares its parameters once, as a schema (``coupler.schema``): ``model.params`` lists the parameters
users tune most, with their defaults, types, ranges and help from scikit-learn's documentation; any other parameter
of the estimator is added with ``+model.params.NAME=VALUE`` and checked by scikit-learn when the model is built
(``coupler_sklearn.model.SklearnModel``). A model with a classifier and a regressor lists the parameters both share.

This module is imported when plugins load, so it imports no scikit-learn: the factories import
``coupler_sklearn.model`` when a run builds a model.
"""

from __future__ import annotations

from dataclasses import dataclass, make_dataclass
from pathlib import Path
from typing import Literal

from coupler import hookimpl
from coupler.components import CLASSIFICATION, Model
from coupler.errors import CouplerError
from coupler.schema import param

COUPLER_API = ">=1.2,<2"  # the plugin API versions this plugin supports (coupler.hookspecs.API_VERSION)

#: model name -> (classifier, regressor, description); None where the model has no such variant
ESTIMATORS = {
    "logistic_regression": ("sklearn.linear_model.LogisticRegression", None, "logistic regression (classification)"),
    "linear_regression": (None, "sklearn.linear_model.LinearRegression", "ordinary least squares (regression)"),
    "ridge": ("sklearn.linear_model.RidgeClassifier", "sklearn.linear_model.Ridge", "L2-regularised linear model"),
    "random_forest": ("sklearn.ensemble.RandomForestClassifier", "sklearn.ensemble.RandomForestRegressor",
                      "random forest"),
    "hist_gradient_boosting": ("sklearn.ensemble.HistGradientBoostingClassifier",
                               "sklearn.ensemble.HistGradientBoostingRegressor", "histogram gradient boosting"),
    "svm": ("sklearn.svm.SVC", "sklearn.svm.SVR", "support vector machine (RBF kernel by default)"),
    "knn": ("sklearn.neighbors.KNeighborsClassifier", "sklearn.neighbors.KNeighborsRegressor", "k nearest neighbours"),
}


# --- the schemas: model.params of each model, at scikit-learn's defaults unless the help says otherwise ----------
# extra_keys names who receives (and checks) a key added with +model.params.NAME=VALUE.

@dataclass
class LogisticRegressionParams:
    extra_keys = "sklearn.linear_model.LogisticRegression, which checks it (e.g. +model.params.penalty=l1)"

    C: float = param(1.0, help="inverse regularisation strength: smaller regularises more", gt=0)
    max_iter: int = param(1000, help="most solver iterations; scikit-learn's default, 100, stops short on unscaled "
                                     "data", ge=1)


@dataclass
class LinearRegressionParams:
    extra_keys = "sklearn.linear_model.LinearRegression, which checks it (e.g. +model.params.positive=true)"

    fit_intercept: bool = param(True, help="fit an intercept; false: the fit goes through the origin")


@dataclass
class RidgeParams:
    extra_keys = ("sklearn.linear_model.RidgeClassifier (classification) or sklearn.linear_model.Ridge "
                  "(regression), which checks it (e.g. +model.params.solver=lsqr)")

    alpha: float = param(1.0, help="L2 regularisation strength; 0: none (ordinary least squares)", ge=0)


@dataclass
class RandomForestParams:
    extra_keys = ("sklearn.ensemble.RandomForestClassifier (classification) or sklearn.ensemble."
                  "RandomForestRegressor (regression), which checks it (e.g. +model.params.max_features=0.5)")

    n_estimators: int = param(200, help="trees in the forest; scikit-learn's default is 100", ge=1)
    max_depth: int | None = param(None, help="deepest level of a tree; null: grow until every leaf is pure or "
                                             "holds min_samples_leaf rows", ge=1)
    min_samples_leaf: int | float = param(1, help="least rows in a leaf: a count, or a fraction of the training "
                                                  "rows between 0 and 1", gt=0)
    n_jobs: int | None = param(-1, help="CPU cores used to fit; -1: every core, null: one (scikit-learn's default); "
                                        "prediction always uses one")


@dataclass
class HistGradientBoostingParams:
    extra_keys = ("sklearn.ensemble.HistGradientBoostingClassifier (classification) or sklearn.ensemble."
                  "HistGradientBoostingRegressor (regression), which checks it (e.g. +model.params.early_stopping=true)")

    learning_rate: float = param(0.1, help="shrinkage: how much each iteration's tree adds; 1: none", gt=0)
    max_iter: int = param(100, help="boosting iterations: one tree each, one per class for multiclass", ge=1)
    max_depth: int | None = param(None, help="deepest level of a tree; null: no limit but max_leaf_nodes", ge=1)
    max_leaf_nodes: int | None = param(31, help="most leaves of a tree; null: no limit", ge=2)
    min_samples_leaf: int = param(20, help="least rows in a leaf", ge=1)
    l2_regularization: float = param(0.0, help="L2 penalty on leaf values; 0: none", ge=0)


@dataclass
class SVMParams:
    extra_keys = ("sklearn.svm.SVC (classification) or sklearn.svm.SVR (regression), which checks it: the "
                  "parameters they do not share, e.g. +model.params.probability=true (SVC), +model.params.epsilon=0.2 "
                  "(SVR)")

    C: float = param(1.0, help="inverse regularisation strength: smaller regularises more", gt=0)
    kernel: str = param("rbf", help="the kernel function; scikit-learn's precomputed is left out: it takes a kernel "
                                    "matrix, not the features a run passes", choices=("linear", "poly", "rbf", "sigmoid"))
    gamma: Literal["scale", "auto"] | float = param(
        "scale", help="kernel coefficient of rbf, poly and sigmoid; scale: 1 / (n_features * X.var()), auto: "
                      "1 / n_features", ge=0)


@dataclass
class KNNParams:
    extra_keys = ("sklearn.neighbors.KNeighborsClassifier (classification) or sklearn.neighbors."
                  "KNeighborsRegressor (regression), which checks it (e.g. +model.params.p=1)")

    n_neighbors: int = param(5, help="neighbours that vote (or are averaged) for each prediction", ge=1)
    weights: str = param("uniform", help="how the neighbours' votes count; distance: closer ones count more",
                         choices=("uniform", "distance"))


@dataclass
class AnyEstimatorParams:
    extra_keys = "the estimator model.estimator names, which checks it (e.g. +model.params.n_estimators=50)"


def estimator_schema(name: str, params: type, passed_to: str) -> type:
    """The schema of a named model: its estimator's parameters under ``params`` (``model.params.*``)."""
    return make_dataclass(name, [("params", params, param(default_factory=params, help=f"passed to {passed_to}"))])


LogisticRegressionSchema = estimator_schema("LogisticRegressionSchema", LogisticRegressionParams,
                                            "LogisticRegression")
LinearRegressionSchema = estimator_schema("LinearRegressionSchema", LinearRegressionParams, "LinearRegression")
RidgeSchema = estimator_schema("RidgeSchema", RidgeParams, "RidgeClassifier or Ridge")
RandomForestSchema = estimator_schema("RandomForestSchema", RandomForestParams,
                                      "RandomForestClassifier or RandomForestRegressor")
HistGradientBoostingSchema = estimator_schema("HistGradientBoostingSchema", HistGradientBoostingParams,
                                              "HistGradientBoostingClassifier or HistGradientBoostingRegressor")
SVMSchema = estimator_schema("SVMSchema", SVMParams, "SVC or SVR")
KNNSchema = estimator_schema("KNNSchema", KNNParams, "KNeighborsClassifier or KNeighborsRegressor")


@dataclass
class AnyEstimatorSchema:
    """``model=sklearn``: any scikit-learn estimator, by import path."""

    estimator: str = param(help="import path of a scikit-learn estimator, sklearn.MODULE.CLASS (e.g. "
                                "sklearn.ensemble.ExtraTreesClassifier): a classifier, or a regressor for a "
                                "regression task")
    params: AnyEstimatorParams = param(default_factory=AnyEstimatorParams,
                                       help="passed to the estimator; add each with +model.params.NAME=VALUE")


#: model name -> its schema
SCHEMAS = {
    "logistic_regression": LogisticRegressionSchema,
    "linear_regression": LinearRegressionSchema,
    "ridge": RidgeSchema,
    "random_forest": RandomForestSchema,
    "hist_gradient_boosting": HistGradientBoostingSchema,
    "svm": SVMSchema,
    "knn": KNNSchema,
    "sklearn": AnyEstimatorSchema,
}


#: the named models whose estimator takes no ``sample_weight`` in fit (so no ``train.class_weight``)
NO_SAMPLE_WEIGHT = {"knn"}
#: the named models skl2onnx cannot convert with the pinned libraries (``coupler_sklearn.onnx.BROKEN``)
NO_ONNX = {"hist_gradient_boosting"}
#: the named classifiers without ``predict_proba`` (svm has it only with model.params.probability=true)
NO_PROBA = {"ridge"}


class SklearnContract(Model):
    """What a scikit-learn model of this plugin declares (``coupler.components``), readable without importing
    scikit-learn: ``coupler_sklearn.model.SklearnModel`` extends it, and each factory's ``returns`` names it. A
    built model narrows it to its estimator (no ``predict_proba``, no ``sample_weight``)."""

    tasks = ("binary", "multiclass", "regression")
    proba_tasks = CLASSIFICATION
    reports_epochs = False  # trains in one step
    sample_weights = True  # the estimator's fit(sample_weight=)
    engine = "sklearn"
    export_formats = ("onnx",)  # skl2onnx (coupler_sklearn.onnx); model=sklearn narrows it to what skl2onnx converts


def named_factory(name: str, classifier: str | None, regressor: str | None):
    def build(task: str, seed: int, params: dict):
        from coupler_sklearn.model import SklearnModel

        path = regressor if task == "regression" else classifier
        if path is None:
            fitting = sorted(n for n, (c, r, _) in ESTIMATORS.items() if (r if task == "regression" else c))
            raise CouplerError(f"model={name} cannot do a {task} task; models that can: {', '.join(fitting)}.")
        return SklearnModel(path, params, task=task, seed=seed)

    build.__name__ = f"build_{name}"
    build.returns = SklearnContract
    build.tasks = (CLASSIFICATION if classifier else ()) + (("regression",) if regressor else ())
    build.proba_tasks = () if name in NO_PROBA or not classifier else CLASSIFICATION
    build.sample_weights = name not in NO_SAMPLE_WEIGHT
    build.export_formats = () if name in NO_ONNX else ("onnx",)
    return build


def build_any(task: str, seed: int, estimator: str, params: dict):
    """``model=sklearn model.estimator=sklearn.ensemble.ExtraTreesClassifier``: any scikit-learn estimator."""
    from coupler_sklearn.model import SklearnModel

    return SklearnModel(estimator, params, task=task, seed=seed)


build_any.returns = SklearnContract


@hookimpl
def register_models(register):
    for name, (classifier, regressor, description) in ESTIMATORS.items():
        register(name, named_factory(name, classifier, regressor), schema=SCHEMAS[name],
                 description=f"scikit-learn {description}",
                 default=name == "logistic_regression")  # what a plain `coupler train` trains
    register("sklearn", build_any, schema=SCHEMAS["sklearn"],
             description="any scikit-learn estimator: model.estimator=sklearn.MODULE.CLASS")


@hookimpl
def register_config_dirs(register):
    """``conf/search/MODEL.yaml``: the search space of each model of this plugin (``coupler train -m search=MODEL``,
    with coupler-optuna installed). The plugin that knows a model's parameters ships its space, listed with it as
    the provider (``coupler train --help``, ``coupler plugins``)."""
    register(Path(__file__).parent / "conf")
