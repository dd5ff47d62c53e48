"""``SklearnModel``: a scikit-learn estimator behind Coupler's ``Model`` contract, saved with skops.

A run directory may come from someone else, so loading trusts exact type names, never a package prefix: skops
rebuilds whatever type a ``.skops`` file names (``builtins.eval`` included) once it is passed in ``trusted=``.
Beyond what skops trusts by itself (scikit-learn's estimators, NumPy arrays, plain containers), a file may hold
only the types in ``TRUSTED_TYPES``, the few that the shipped estimators need, and the run's own estimator class;
anything else is refused with the type's name, and nothing of the file is built. A fitted state that would not
load under that rule is refused when the run saves it, so a run that trains is a run that reloads.
"""

from __future__ import annotations

import contextlib
import importlib
import json
from pathlib import Path

import numpy as np
import skops.io
from coupler.components import Model, Split
from coupler.errors import CouplerError, did_you_mean
from sklearn.base import BaseEstimator, is_classifier, is_regressor
from sklearn.utils._param_validation import InvalidParameterError

#: Only estimators from these packages are built from a config: a config is data, not code to run.
ALLOWED_PREFIXES = ("sklearn.",)
#: The types, by exact name, that a .skops file may hold beyond what skops trusts by itself: what the estimators
#: of the shipped configs (conf/model/*.yaml) need on every task, as ``skops.io.get_untrusted_types`` reports them
#: (``plugins/sklearn/tests/test_trusted_types.py`` recomputes it). Never a package prefix: ``builtins.`` would admit ``eval``.
TRUSTED_TYPES = (
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",  # hist_gradient_boosting
    "sklearn.metrics._dist_metrics.EuclideanDistance64",  # knn
    "sklearn.neighbors._kd_tree.KDTree",  # knn
    "sklearn.tree._tree.Tree",  # random_forest
)
FILE = "model.skops"
#: the task's class count, which the estimator does not know when a class was absent from training
CLASSES_FILE = "classes.json"


def import_estimator(path: str) -> type:
    module_name, _, class_name = path.rpartition(".")
    if not module_name.startswith(ALLOWED_PREFIXES) and module_name != "sklearn":
        raise CouplerError(f"model.estimator={path}: only scikit-learn estimators (sklearn.MODULE.CLASS) can be "
                           f"built from a config. Ship other estimators as a plugin of your own.")
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError):
        raise CouplerError(f"model.estimator={path}: no such class in scikit-learn.") from None
    if not (isinstance(cls, type) and issubclass(cls, BaseEstimator) and hasattr(cls, "fit")
            and hasattr(cls, "predict")):
        raise CouplerError(f"model.estimator={path} is not a scikit-learn estimator with fit and predict.")
    return cls


@contextlib.contextmanager
def _single_thread(estimator):
    """Predict on one thread: parallel prediction sums trees in any order, so the last digits of a
    random forest's output would differ between the run and ``coupler evaluate``."""
    n_jobs = estimator.get_params(deep=False).get("n_jobs")
    if n_jobs in (None, 1):
        yield
        return
    estimator.set_params(n_jobs=1)
    try:
        yield
    finally:
        estimator.set_params(n_jobs=n_jobs)


class SklearnModel(Model):
    input_format = "matrix"

    def __init__(self, estimator: str, params: dict, task: str, seed: int):
        cls = import_estimator(estimator)
        self.task, self.path = task, estimator
        try:
            probe = cls()
        except TypeError as exc:
            raise CouplerError(f"model.estimator={estimator} cannot be built from a config: {exc}. Wrap it in a "
                               f"plugin of your own.") from None
        if task == "regression" and not is_regressor(probe):
            raise CouplerError(f"model.estimator={estimator} is not a regressor, and the task is regression.")
        if task != "regression" and not is_classifier(probe):
            raise CouplerError(f"model.estimator={estimator} is not a classifier, and the task is {task}.")
        valid = sorted(probe.get_params(deep=False))
        for key in params:
            if key not in valid:
                raise CouplerError(
                    f"model.params.{key}: {cls.__name__} has no parameter {key!r}.{did_you_mean(key, valid)} "
                    f"Valid parameters: {', '.join(valid)}."
                )
        settings = dict(params)
        if "random_state" in valid and settings.get("random_state") is None:
            settings["random_state"] = seed
        self.estimator = probe.set_params(**settings)
        try:
            self.estimator._validate_params()
        except InvalidParameterError as exc:
            raise CouplerError(f"model.params: {exc}") from None
        except AttributeError:  # an estimator without scikit-learn's parameter validation
            pass

    def fit(self, train: Split, val: Split | None, run) -> None:
        self.feature_names = run.feature_names
        self.n_classes = len(run.classes)
        try:
            self.estimator.fit(train.X, train.y)
        except ValueError as exc:  # a parameter combination the estimator rejects
            raise CouplerError(f"{type(self.estimator).__name__} could not fit with model.params "
                               f"{self.estimator.get_params(deep=False)}: {exc}") from None

    def predict(self, X) -> np.ndarray:
        with _single_thread(self.estimator):
            return self.estimator.predict(X)

    @property
    def supports_proba(self) -> bool:
        return self.task != "regression" and hasattr(self.estimator, "predict_proba")

    def predict_proba(self, X):
        if not self.supports_proba:
            return None
        with _single_thread(self.estimator):
            proba = self.estimator.predict_proba(X)
        if proba.shape[1] == self.n_classes:
            return proba
        # a class absent from the training rows gets no column from scikit-learn: give it probability 0
        full = np.zeros((len(proba), self.n_classes))
        full[:, self.estimator.classes_.astype(int)] = proba
        return full

    def feature_importances(self) -> dict[str, float] | None:
        """Impurity importances of tree ensembles, or |coefficient| of linear models (summed over classes)."""
        names = getattr(self, "feature_names", None)
        values = getattr(self.estimator, "feature_importances_", None)
        if values is None and hasattr(self.estimator, "coef_"):
            values = np.abs(np.atleast_2d(self.estimator.coef_)).sum(axis=0)
        if values is None or names is None or len(names) != len(values):
            return None
        return dict(zip(names, map(float, values)))

    # --- artifacts: skops, trusting exact type names ----------------------------------------------------

    def trusted_types(self) -> tuple[str, ...]:
        """The types a saved file of this model may hold beyond skops' own trusted ones: ``TRUSTED_TYPES`` and the
        estimator's own class (``import_estimator`` checked it is a scikit-learn estimator). A plugin that wraps an
        estimator needing more overrides this with the exact names it has reviewed."""
        cls = type(self.estimator)
        return (*TRUSTED_TYPES, f"{cls.__module__}.{cls.__qualname__}")

    def _refused(self, untrusted: list[str]) -> list[str]:
        allowed = set(self.trusted_types())
        return [name for name in untrusted if name not in allowed]

    def save(self, directory: Path) -> None:
        path = Path(directory) / FILE
        skops.io.dump(self.estimator, path)
        refused = self._refused(skops.io.get_untrusted_types(file=path))
        if refused:  # refused now, not when someone reloads the run
            raise CouplerError(
                f"model.estimator={self.path}: with these model.params its fitted state holds "
                f"{', '.join(refused)}, which Coupler does not trust when it reloads a run (a .skops file may hold "
                f"scikit-learn estimators, arrays and {', '.join(t.rpartition('.')[2] for t in TRUSTED_TYPES)}). "
                f"Choose other parameters or another estimator, or wrap it in a plugin whose model trusts that type.")
        (Path(directory) / CLASSES_FILE).write_text(json.dumps({"n_classes": self.n_classes}))

    def load(self, directory: Path) -> None:
        path = Path(directory) / FILE
        untrusted = _untrusted_types(path)
        refused = self._refused(untrusted)
        if refused:
            raise CouplerError(
                f"{path} holds {', '.join(refused)}, which Coupler does not trust: a .skops file of a "
                f"{type(self.estimator).__name__} run holds only scikit-learn estimators, arrays and known types. "
                f"Refusing to load it; retrain the run from its config (coupler train) or load the file only if you "
                f"wrote it yourself.")
        try:
            self.estimator = skops.io.load(path, trusted=untrusted)
        except Exception as exc:  # a file whose types are trusted but whose content does not construct
            raise CouplerError(f"{path} cannot be loaded ({type(exc).__name__}: {_first_line(exc)}); the file was "
                               f"changed or damaged: retrain the run (coupler train).") from None
        self.n_classes = json.loads((Path(directory) / CLASSES_FILE).read_text())["n_classes"]


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [""])[0]


def _untrusted_types(path: Path) -> list[str]:
    """The types in a .skops file that skops does not trust by itself; reading a file builds nothing from it."""
    try:
        return skops.io.get_untrusted_types(file=path)
    except Exception as exc:  # not a zip, no schema, a schema skops cannot read: the file is not a model
        raise CouplerError(f"{path} is not a skops file Coupler can read ({type(exc).__name__}: "
                           f"{_first_line(exc)}); the file was changed or damaged: retrain the run "
                           f"(coupler train).") from None
