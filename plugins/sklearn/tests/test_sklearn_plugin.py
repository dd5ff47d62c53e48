"""The scikit-learn plugin: every named model trains through the harness, parameters pass through and are
checked, any estimator can be named by import path (scikit-learn's only), and models round-trip through
skops without pickle."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from coupler.errors import CouplerError
from coupler.finished_run import FinishedRun
from coupler.plugin_manager import get_plugin_manager
from coupler.testing import train_run
from coupler_sklearn.model import SklearnModel
import coupler_sklearn
from coupler_sklearn.plugin import ESTIMATORS


@pytest.mark.parametrize("model", [m for m, (c, _, _) in ESTIMATORS.items() if c])
def test_every_classifier_trains_and_reloads_with_the_same_numbers(model, tmp_path):
    results, run_dir = train_run(tmp_path, "data=wine", f"model={model}")
    assert results["test"]["accuracy"] > 0.8, results
    assert FinishedRun(run_dir, get_plugin_manager()).evaluate() == results


@pytest.mark.parametrize("model", [m for m, (_, r, _) in ESTIMATORS.items() if r])
def test_every_regressor_beats_the_mean_predictor(model, tmp_path):
    results, run_dir = train_run(tmp_path, "data=diabetes", f"model={model}")
    assert results["test"]["r2"] > 0, results  # R² of the mean predictor is 0
    assert FinishedRun(run_dir, get_plugin_manager()).evaluate() == results, "reloaded numbers are exact"


def test_parameters_pass_through_to_the_estimator(tmp_path):
    _, run_dir = train_run(tmp_path, "data=iris", "model=random_forest", "model.params.n_estimators=7",
                     "model.params.max_depth=2")
    model = FinishedRun(run_dir, get_plugin_manager()).model.estimator
    assert (model.n_estimators, model.max_depth, len(model.estimators_)) == (7, 2, 7)
    assert model.random_state == 0, "the run's seed reaches the estimator"


def test_any_scikit_learn_estimator_by_import_path(tmp_path):
    results, run_dir = train_run(tmp_path, "data=breast_cancer", "model=sklearn",
                           "model.estimator=sklearn.ensemble.ExtraTreesClassifier", "+model.params.n_estimators=50")
    assert results["test"]["accuracy"] > 0.9
    assert type(FinishedRun(run_dir, get_plugin_manager()).model.estimator).__name__ == "ExtraTreesClassifier"


@pytest.mark.parametrize("path, message", [
    ("os.system", "only scikit-learn estimators"),
    ("sklearn.ensemble.NoSuchForest", "no such class in scikit-learn"),
    ("sklearn.preprocessing.StandardScaler", "not a scikit-learn estimator with fit and predict"),
    ("sklearn.ensemble.RandomForestRegressor", "not a classifier"),
])
def test_estimator_paths_outside_the_allow_list_or_of_the_wrong_kind_are_refused(path, message):
    with pytest.raises(CouplerError, match=message):
        SklearnModel(path, {}, task="binary", seed=0)


def test_an_unknown_parameter_is_named_with_the_valid_ones():
    with pytest.raises(CouplerError, match=r"model.params.n_estimator: .* Did you mean 'n_estimators'\?.*max_depth"):
        SklearnModel("sklearn.ensemble.RandomForestClassifier", {"n_estimator": 3}, task="binary", seed=0)


def test_models_are_saved_with_skops_not_pickle(tmp_path):
    _, run_dir = train_run(tmp_path, "data=iris", "model=hist_gradient_boosting")
    files = sorted(p.name for p in (run_dir / "model").iterdir())
    assert files == ["classes.json", "model.skops"]
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["libraries"]["skops"] and manifest["libraries"]["scikit-learn"]


def test_loading_refuses_a_file_holding_untrusted_types(tmp_path):
    import skops.io
    from sklearn.preprocessing import FunctionTransformer

    (tmp_path / "model").mkdir()
    skops.io.dump(FunctionTransformer(func=json.loads), tmp_path / "model" / "model.skops")
    model = SklearnModel("sklearn.linear_model.LogisticRegression", {}, task="binary", seed=0)
    with pytest.raises(CouplerError, match="holds json.loads, which Coupler does not trust.*Refusing to load it"):
        model.load(tmp_path / "model")


def test_classifiers_without_probabilities_skip_probability_metrics(tmp_path):
    results, _ = train_run(tmp_path, "data=breast_cancer", "model=ridge")
    assert "accuracy" in results["test"] and "roc_auc" not in results["test"]
    assert np.isfinite(results["test"]["f1_macro"])


def test_a_class_absent_from_training_gets_probability_zero(tmp_path):
    import pandas as pd

    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"x": rng.normal(size=60), "label": ["a"] * 29 + ["b"] * 29 + ["rare", "rare"]})
    frame.to_csv(tmp_path / "d.csv", index=False)
    results, run_dir = train_run(tmp_path, "data=csv", f"data.path={tmp_path / 'd.csv'}", "data.target=label",
                                 "split.stratify=false", "split.test=0.2", "split.val=0.1", "seed=6")
    finished = FinishedRun(run_dir, get_plugin_manager())
    assert finished.model.estimator.classes_.tolist() == [0, 1], "seed 6 leaves both 'rare' rows out of training"
    assert "log_loss" in results["test"]
    assert finished.evaluate() == results
    predictions = pd.read_csv(run_dir / "predictions_test.csv")
    assert {"proba_a", "proba_b", "proba_rare"} <= set(predictions.columns)


#: values a model's config file sets on purpose, not at scikit-learn's default
DELIBERATE = {("logistic_regression", "max_iter"), ("random_forest", "n_estimators"), ("random_forest", "n_jobs")}


@pytest.mark.parametrize("name", sorted(ESTIMATORS))
def test_config_files_list_parameters_at_scikit_learns_defaults(name):
    """A model's config file lists the parameters users tune most (so model.params.C=0.5 needs no +); each
    holds scikit-learn's default unless it is one of DELIBERATE, for both the classifier and the regressor."""
    import importlib

    import yaml

    node = yaml.safe_load((Path(coupler_sklearn.__file__).parent / "conf" / "model" / f"{name}.yaml").read_text())
    assert node["name"] == name and node["params"], f"{name}.yaml lists no parameter"
    for path in filter(None, ESTIMATORS[name][:2]):
        module, _, cls = path.rpartition(".")
        defaults = getattr(importlib.import_module(module), cls)().get_params()
        for key, value in node["params"].items():
            assert key in defaults, f"{name}.yaml: {cls} has no parameter {key}"
            if (name, key) not in DELIBERATE:
                assert value == defaults[key], f"{name}.yaml: {key}={value!r}, but {cls}'s default is {defaults[key]!r}"
