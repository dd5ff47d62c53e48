"""Every built-in metric on inputs whose value is known by hand, and the task defaults."""

from __future__ import annotations

import numpy as np
import pytest

from coupler.builtin.metrics import DEFAULTS
from coupler.plugin_manager import get_plugin_manager

y_true = np.array([0, 0, 1, 1])
y_pred = np.array([0, 1, 1, 1])
proba = np.array([[0.9, 0.1], [0.4, 0.6], [0.2, 0.8], [0.3, 0.7]])


def metric(name):
    return get_plugin_manager().get("metric", name).build("metrics", {})


@pytest.mark.parametrize("name, expected", [
    ("accuracy", 0.75),
    ("balanced_accuracy", 0.75),
    ("precision_macro", (1.0 + 2 / 3) / 2),
    ("recall_macro", (0.5 + 1.0) / 2),
    ("f1_macro", (2 / 3 + 0.8) / 2),
    ("f1_weighted", (2 / 3 + 0.8) / 2),
    ("roc_auc", 1.0),
    ("log_loss", -np.mean(np.log([0.9, 0.4, 0.8, 0.7]))),
])
def test_classification_metrics(name, expected):
    assert metric(name)(y_true, y_pred, proba, 2) == pytest.approx(expected)


def test_multiclass_roc_auc_is_one_vs_rest_and_confusion_matrix_is_k_by_k():
    y = np.array([0, 1, 2, 2])
    p = np.eye(3)[[0, 1, 2, 1]] * 0.7 + 0.1
    # per class (one vs rest): 1, 5/6 (one tie), 3/4 (two ties); macro average
    assert metric("roc_auc")(y, p.argmax(1), p, 3) == pytest.approx((1 + 5 / 6 + 3 / 4) / 3)
    matrix = metric("confusion_matrix")(np.array([0, 0]), np.array([0, 0]), None, 3)
    assert matrix.shape == (3, 3) and matrix[0, 0] == 2


@pytest.mark.parametrize("name, expected", [("mse", 1.5), ("rmse", 1.5**0.5), ("mae", 1.0), ("r2", 1 - 6 / 5)])
def test_regression_metrics(name, expected):
    truth, pred = np.array([1.0, 2.0, 3.0, 4.0]), np.array([2.0, 1.0, 3.0, 6.0])
    assert metric(name)(truth, pred, None, 0) == pytest.approx(expected)


def test_every_default_metric_is_registered_for_its_task():
    for task, names in DEFAULTS.items():
        for name in names:
            assert task in metric(name).tasks


def test_confusion_matrix_is_written_to_the_run_directory(iris_run):
    import pandas as pd

    matrix = pd.read_csv(iris_run / "confusion_matrix_test.csv", index_col=0)
    assert list(matrix.index) == ["true_setosa", "true_versicolor", "true_virginica"]
    assert matrix.to_numpy().sum() == 15
