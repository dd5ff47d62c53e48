"""Built-in metrics, computed with scikit-learn (imported when a metric is computed, not before)."""

from __future__ import annotations

from coupler.components import Metric
from coupler.hookspecs import hookimpl

COUPLER_API = ">=1.0,<2"  # the plugin API versions this plugin supports (coupler.hookspecs.API_VERSION)

CLASSIFICATION = ("binary", "multiclass")
REGRESSION = ("regression",)

#: the metrics a run computes when ``metrics`` selects none
DEFAULTS = {
    "binary": ["accuracy", "balanced_accuracy", "precision_macro", "recall_macro", "f1_macro", "roc_auc",
               "log_loss", "confusion_matrix"],
    "multiclass": ["accuracy", "balanced_accuracy", "f1_macro", "f1_weighted", "roc_auc", "log_loss",
                   "confusion_matrix"],
    "regression": ["rmse", "mae", "r2", "mse"],
}


def _averaged(function: str, average: str):
    def compute(y_true, y_pred, y_proba, n_classes):
        import sklearn.metrics as m

        return getattr(m, function)(y_true, y_pred, average=average, zero_division=0)

    return compute


def _accuracy(y_true, y_pred, y_proba, n_classes):
    from sklearn.metrics import accuracy_score

    return accuracy_score(y_true, y_pred)


def _balanced_accuracy(y_true, y_pred, y_proba, n_classes):
    from sklearn.metrics import balanced_accuracy_score

    return balanced_accuracy_score(y_true, y_pred)


def _roc_auc(y_true, y_pred, y_proba, n_classes):
    import numpy as np
    from sklearn.metrics import roc_auc_score

    if len(np.unique(y_true)) < 2:
        return float("nan")  # undefined on a split holding one class
    if n_classes == 2:
        return roc_auc_score(y_true, y_proba[:, 1])
    return roc_auc_score(y_true, y_proba, multi_class="ovr", average="macro", labels=list(range(n_classes)))


def _log_loss(y_true, y_pred, y_proba, n_classes):
    from sklearn.metrics import log_loss

    return log_loss(y_true, y_proba, labels=list(range(n_classes)))


def _confusion_matrix(y_true, y_pred, y_proba, n_classes):
    from sklearn.metrics import confusion_matrix

    return confusion_matrix(y_true, y_pred, labels=list(range(n_classes)))


def _mse(y_true, y_pred, y_proba, n_classes):
    from sklearn.metrics import mean_squared_error

    return mean_squared_error(y_true, y_pred)


def _rmse(y_true, y_pred, y_proba, n_classes):
    return _mse(y_true, y_pred, y_proba, n_classes) ** 0.5


def _mae(y_true, y_pred, y_proba, n_classes):
    from sklearn.metrics import mean_absolute_error

    return mean_absolute_error(y_true, y_pred)


def _r2(y_true, y_pred, y_proba, n_classes):
    from sklearn.metrics import r2_score

    return r2_score(y_true, y_pred)


METRICS = [
    Metric("accuracy", _accuracy, CLASSIFICATION),
    Metric("balanced_accuracy", _balanced_accuracy, CLASSIFICATION),
    *(Metric(f"{short}_{avg}", _averaged(f"{short}_score", avg), CLASSIFICATION)
      for short in ("precision", "recall", "f1") for avg in ("macro", "weighted")),
    Metric("roc_auc", _roc_auc, CLASSIFICATION, needs_proba=True),
    Metric("log_loss", _log_loss, CLASSIFICATION, needs_proba=True, greater_is_better=False),
    Metric("confusion_matrix", _confusion_matrix, CLASSIFICATION),
    Metric("mse", _mse, REGRESSION, greater_is_better=False),
    Metric("rmse", _rmse, REGRESSION, greater_is_better=False),
    Metric("mae", _mae, REGRESSION, greater_is_better=False),
    Metric("r2", _r2, REGRESSION),
]


def _factory(metric: Metric):
    def build() -> Metric:
        return metric

    return build


@hookimpl
def register_metrics(register):
    for metric in METRICS:
        tasks = "classification" if metric.tasks == CLASSIFICATION else "regression"
        register(metric.name, _factory(metric), description=f"{tasks}{', needs probabilities' if metric.needs_proba else ''}")
