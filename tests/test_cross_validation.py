"""k-fold cross-validation (``cv.*``, ``coupler.cross_validation``): the record a run keeps, parity with
scikit-learn's ``cross_validate`` on the same folds, processes giving the sequential numbers, the splitters'
promises, and bad settings refused in one line before any fold trains."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from coupler.testing import read_metrics, train_run

CV = ("cv.folds=3",)


@pytest.fixture(scope="module")
def breast_cancer_cv(tmp_path_factory):
    """logistic_regression on breast_cancer with 3 folds, sequentially: shared by the parity and n_jobs tests."""
    return train_run(tmp_path_factory.mktemp("cv"), "data=breast_cancer", "model=logistic_regression", *CV)[1]


def test_a_run_keeps_each_fold_and_their_summary_and_refits_on_train_and_val(tmp_path):
    from coupler.finished_run import FinishedRun
    from coupler.run_directory import read_manifest

    metrics, run_dir = train_run(tmp_path, "data=iris", "model=logistic_regression", *CV)
    folds = pd.read_csv(run_dir / "folds.csv")
    assert list(folds.columns[:4]) == ["repeat", "fold", "train_rows", "val_rows"]
    assert list(folds["fold"]) == [1, 2, 3]
    manifest = read_manifest(run_dir)  # folds.csv is sealed with the run's other files
    assert "folds.csv" in manifest["files"]
    # the folds cover the train+val rows (150 - 15 test), each row validated once; the final model trains on them all
    assert folds["val_rows"].sum() == 135 and (folds["train_rows"] + folds["val_rows"] == 135).all()
    assert manifest["rows"] == {"train": 135, "val": 0, "test": 15}
    section = read_metrics(run_dir)["cv"]
    assert section == metrics["cv"]
    for name, summary in section.items():
        assert summary["folds"] == 3
        assert summary["mean"] == pytest.approx(folds[name].mean(), abs=1e-12)
        assert summary["std"] == pytest.approx(folds[name].std(ddof=0), abs=1e-12)
    assert metrics["test"] and not metrics["val"]  # tested once; no val score for a model that trained on val
    finished = FinishedRun(run_dir)
    assert finished.evaluate()["test"] == pytest.approx(metrics["test"])
    assert len(finished.predict(pd.DataFrame([[5.1, 3.5, 1.4, 0.2]], columns=manifest["features"]["columns"]))) == 1


def test_fold_scores_equal_sklearn_cross_validate_on_the_same_folds(breast_cancer_cv):
    """Parity: the same fold indices (StratifiedKFold seeded by ``seed`` over the train+val rows), Coupler's
    preprocessing as a pipeline step, the run's estimator: every fold's score equal to 1e-9."""
    from sklearn.base import BaseEstimator, TransformerMixin, clone
    from sklearn.model_selection import StratifiedKFold, cross_validate
    from sklearn.pipeline import make_pipeline

    from coupler.config import compose
    from coupler.dataset import encode_target
    from coupler.finished_run import FinishedRun
    from coupler.plugin_manager import get_plugin_manager
    from coupler.preprocessing import Preprocessor
    from coupler.splitting import split_rows

    class CouplerPreprocessing(TransformerMixin, BaseEstimator):
        def fit(self, X, y=None):
            self.fitted_ = Preprocessor().fit(X, [])
            return self

        def transform(self, X):
            return self.fitted_.transform(X)

    manager = get_plugin_manager()
    config = compose(["data=breast_cancer"], manager)
    dataset = manager.registry.get("data", "breast_cancer").build("data", config["data"])
    y, classes = encode_target(dataset.y, "binary")
    indices = split_rows(y, "binary", config["split"], 0, classes)
    rows = np.sort(np.concatenate([indices.train, indices.val]))
    folds = list(StratifiedKFold(3, shuffle=True, random_state=0).split(rows, y[rows]))
    estimator = clone(FinishedRun(breast_cancer_cv).model.estimator)
    expected = cross_validate(make_pipeline(CouplerPreprocessing(), estimator), dataset.X.iloc[rows], y[rows],
                              cv=folds, scoring=["accuracy", "balanced_accuracy", "roc_auc", "neg_log_loss"])
    measured = pd.read_csv(breast_cancer_cv / "folds.csv")
    assert list(measured["val_rows"]) == [len(val) for _, val in folds]
    gap = max(np.max(np.abs(measured[name].to_numpy() - sign * expected[f"test_{key}"]))
              for name, key, sign in (("accuracy", "accuracy", 1), ("balanced_accuracy", "balanced_accuracy", 1),
                                      ("roc_auc", "roc_auc", 1), ("log_loss", "neg_log_loss", -1)))
    print(f"largest difference from sklearn.model_selection.cross_validate: {gap:.3g}")
    assert gap <= 1e-9


def test_folds_in_two_processes_give_the_sequential_numbers(tmp_path, breast_cancer_cv):
    _, run_dir = train_run(tmp_path, "data=breast_cancer", "model=logistic_regression", *CV, "cv.n_jobs=2")
    assert (run_dir / "folds.csv").read_text() == (breast_cancer_cv / "folds.csv").read_text()
    assert read_metrics(run_dir) == read_metrics(breast_cancer_cv)


def _plan(kind="auto", folds=3, repeats=1, task="binary", ordered=False, groups=None, n=24):
    from coupler.cross_validation import plan, settings
    from coupler.splitting import SplitIndices

    y = np.arange(n) % 2 if task != "regression" else np.linspace(0, 1, n)
    cv = settings({"cv": {"folds": folds, "kind": kind, "repeats": repeats, "group": "g" if groups is not None else None}})
    indices = SplitIndices(np.arange(0, n - 6), np.arange(n - 6, n - 2), np.arange(n - 2, n))  # last 2 rows: test
    return plan(cv, task, ordered, 0, y, indices, 0, ["a", "b"], groups), y


def test_splitters_keep_their_promises():
    stratified, y = _plan(repeats=2)
    assert len(stratified) == 6 and [(f.repeat, f.number) for f in stratified][:4] == [(1, 1), (1, 2), (1, 3), (2, 1)]
    for fold in stratified:  # the test rows are never in a fold; each fold keeps both classes' share
        assert not {22, 23} & (set(fold.indices.train) | set(fold.indices.val))
        assert set(np.bincount(y[fold.indices.val]).tolist()) <= {3, 4}
    groups = np.repeat(np.arange(8), 3)
    for fold in _plan(groups=groups)[0]:  # no group straddles training and validation
        assert not set(groups[fold.indices.train]) & set(groups[fold.indices.val])
    for fold in _plan(ordered=True, task="regression")[0]:  # expanding window: validation after all training rows
        assert fold.indices.train.max() < fold.indices.val.min() and fold.indices.train.min() == 0


def test_callbacks_start_afresh_each_fold():
    from coupler.builtin.callbacks import EarlyStopping
    from coupler.cross_validation import CallbackReset

    callback = EarlyStopping("val_loss", patience=2, mode="min", min_delta=0.0)
    reset = CallbackReset([callback])
    callback.wait = 1  # a fold that did not improve for an epoch
    reset.reset()
    assert callback.wait == 0
    import threading

    from coupler.errors import CouplerError

    class Holding:  # a lock cannot be copied: the callback is named, not a traceback from copy
        lock = None

        def __init__(self):
            self.lock = threading.Lock()

    with pytest.raises(CouplerError, match="callback Holding cannot be reset between folds: copying its attributes"):
        CallbackReset([Holding()])


@pytest.mark.parametrize("overrides, expected", [
    (["cv.folds=1"], "cv.folds=1 is not allowed: 0 (no cross-validation) or a number of folds >= 2"),
    (["cv.folds=46"], "cv.folds=46 is not allowed: at most 45: class 'setosa' has 45 of the 135 train+val rows"),
    (["cv.folds=3", "cv.group=nope"], "cv.group='nope' is not allowed: a column of data 'iris': sepal length (cm), "),
])
def test_bad_cv_settings_are_one_line_before_any_fold(coupler_cli, overrides, expected):
    result = coupler_cli("train", "data=iris", *overrides, "hydra.run.dir=run")
    assert result.rc == 2, result.err
    assert len(result.error_lines) == 1 and expected in result.error_lines[0], result.err
    assert "cv fold" not in result.err


@pytest.mark.parametrize("cv, task, ordered, expected", [
    ({"folds": 3, "kind": "group"}, "binary", False, "cv.kind='group' is not allowed: group with cv.group=COLUMN"),
    ({"folds": 3, "kind": "time", "repeats": 2}, "binary", True, "cv.repeats=2 is not allowed: 1 with cv.kind=time"),
    ({"folds": 3, "kind": "time"}, "binary", False, "returning Dataset(ordered=True)"),
    ({"folds": 3, "kind": "stratified"}, "regression", False, "auto, plain, group or time for a regression task"),
    ({"folds": 0, "group": "g"}, "binary", False, "a number of folds >= 2 for cv.group=g to take effect"),
])
def test_settings_that_cannot_make_folds_are_refused(cv, task, ordered, expected):
    from coupler.cross_validation import check_settings, resolve_kind, settings
    from coupler.errors import ConfigError

    cv = settings({"cv": cv})
    with pytest.raises(ConfigError) as error:
        check_settings(cv)
        resolve_kind(cv, task, ordered)
    assert expected in str(error.value)


def test_refit_without_validation_rows_refuses_callbacks_that_monitor_them():
    from coupler.builtin.callbacks import EarlyStopping
    from coupler.cross_validation import check_refit
    from coupler.errors import ConfigError

    stopping = {"early_stopping": EarlyStopping("val_loss", patience=2, mode="min", min_delta=0.0)}
    with pytest.raises(ConfigError, match="false with callbacks early_stopping"):
        check_refit({"refit": True}, stopping)
    check_refit({"refit": False}, stopping)  # the final model validates on val: allowed


def test_the_group_column_groups_rows_and_is_no_feature():
    from coupler.cross_validation import settings, take_group
    from coupler.dataset import Dataset

    X = pd.DataFrame({"patient": ["a", "a", "b", "c"], "dose": [1.0, 2.0, 3.0, 4.0]})
    dataset = Dataset(X, pd.Series([0, 1, 0, 1], name="y"), name="visits", categorical=["patient"])
    features, groups = take_group(dataset, settings({"cv": {"folds": 2, "group": "patient"}}))
    assert list(features.X.columns) == ["dose"] and features.categorical == []
    assert groups.tolist() == ["a", "a", "b", "c"]
