"""The ``sklearn`` plugin: registers scikit-learn estimators as Coupler models.

This module is imported when plugins load, so it imports no scikit-learn: the factories import
``coupler_sklearn.model`` when a run builds a model.
"""

from __future__ import annotations

from pathlib import Path

from coupler import hookimpl
from coupler.components import CLASSIFICATION, Model, check_params
from coupler.errors import CouplerError

COUPLER_API = ">=1.1,<2"  # the plugin API versions this plugin supports (coupler.hookspecs.API_VERSION)

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


#: the named models whose estimator takes no ``sample_weight`` in fit (so no ``train.class_weight``)
NO_SAMPLE_WEIGHT = {"knn"}
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


def named_factory(name: str, classifier: str | None, regressor: str | None):
    def build(task: str, seed: int, params: dict | None = None):
        from coupler_sklearn.model import SklearnModel

        path = regressor if task == "regression" else classifier
        if path is None:
            fitting = sorted(n for n, (c, r, _) in ESTIMATORS.items() if (r if task == "regression" else c))
            raise CouplerError(f"model={name} cannot do a {task} task; models that can: {', '.join(fitting)}.")
        return SklearnModel(path, check_params(params), task=task, seed=seed)

    build.__name__ = f"build_{name}"
    build.returns = SklearnContract
    build.tasks = (CLASSIFICATION if classifier else ()) + (("regression",) if regressor else ())
    build.proba_tasks = () if name in NO_PROBA or not classifier else CLASSIFICATION
    build.sample_weights = name not in NO_SAMPLE_WEIGHT
    return build


def build_any(task: str, seed: int, estimator: str | None = None, params: dict | None = None):
    """``model=sklearn model.estimator=sklearn.ensemble.ExtraTreesClassifier``: any scikit-learn estimator."""
    from coupler_sklearn.model import SklearnModel

    if not estimator:
        raise CouplerError("model.estimator is required with model=sklearn, e.g. "
                           "model.estimator=sklearn.ensemble.ExtraTreesClassifier")
    return SklearnModel(estimator, check_params(params), task=task, seed=seed)


build_any.returns = SklearnContract


@hookimpl
def register_models(register):
    for name, (classifier, regressor, description) in ESTIMATORS.items():
        register(name, named_factory(name, classifier, regressor), description=f"scikit-learn {description}",
                 default=name == "logistic_regression")  # what a plain `coupler train` trains
    register("sklearn", build_any, description="any scikit-learn estimator: model.estimator=sklearn.MODULE.CLASS")


@hookimpl
def register_config_dirs(register):
    register(Path(__file__).parent / "conf")
