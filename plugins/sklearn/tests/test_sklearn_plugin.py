"""The scikit-learn plugin: every named model trains through the harness, parameters pass through and are
checked, any estimator can be named by import path (scikit-learn's only), and models round-trip through
skops without pickle."""

from __future__ import annotations

import json

import numpy as np
import pytest

from coupler.config import compose, parameter_listing
from coupler.errors import ConfigError, CouplerError
from coupler.finished_run import FinishedRun
from coupler.plugin_manager import get_plugin_manager
from coupler.schema import check_node, defaults, hints, rows
from coupler.testing import train_run
from coupler_sklearn.model import SklearnModel
from coupler_sklearn.plugin import ESTIMATORS, SCHEMAS


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


#: values a model's schema sets on purpose, not at scikit-learn's default
DELIBERATE = {("logistic_regression", "max_iter"), ("random_forest", "n_estimators"), ("random_forest", "n_jobs")}
#: bounds a schema draws tighter than scikit-learn: LogisticRegression takes max_iter=0, which fits nothing
TIGHTER = {("logistic_regression", "max_iter")}


def estimator_classes(name: str) -> list[type]:
    """The scikit-learn classes a named model builds: its classifier and its regressor, where it has them."""
    import importlib

    return [getattr(importlib.import_module(path.rpartition(".")[0]), path.rpartition(".")[2])
            for path in filter(None, ESTIMATORS[name][:2])]


def params_schema(name: str) -> type:
    return hints(SCHEMAS[name])["params"]


@pytest.mark.parametrize("name", sorted(ESTIMATORS))
def test_schemas_list_parameters_at_scikit_learns_defaults(name):
    """A model's schema lists the parameters users tune most (so model.params.C=0.5 needs no +); each holds
    scikit-learn's default unless it is one of DELIBERATE, for both the classifier and the regressor, and the schema
    names both as the receivers of any other key."""
    node = defaults(SCHEMAS[name])
    assert set(node) == {"params"} and node["params"], f"model={name} lists no parameter"
    for cls in estimator_classes(name):
        assert cls.__name__ in params_schema(name).extra_keys, f"model={name}: extra_keys does not name {cls.__name__}"
        scikit_learn = cls().get_params()
        for key, value in node["params"].items():
            assert key in scikit_learn, f"model={name}: {cls.__name__} has no parameter {key}"
            if (name, key) not in DELIBERATE:
                assert value == scikit_learn[key], f"model={name}: {key}={value!r}, {cls.__name__}'s is {scikit_learn[key]!r}"


def outside(rule) -> list:
    """The whole numbers just outside a rule's lower bounds (the schemas here set no upper one)."""
    return [value for value in (None if rule.ge is None else rule.ge - 1, rule.gt) if value is not None]


@pytest.mark.parametrize("name", sorted(ESTIMATORS))
def test_what_a_schema_refuses_scikit_learn_refuses_and_what_it_offers_scikit_learn_takes(name):
    """The schema's ranges and choices are scikit-learn's own (no fitting: the estimator checks its parameters when
    it is built), so refusing a value early never refuses one the estimator would take, but for TIGHTER."""
    for row in rows(params_schema(name), "model.params"):
        key = row.key.rsplit(".", 1)[1]
        for value in row.rule.choices:
            for cls in estimator_classes(name):
                SklearnModel(f"{cls.__module__}.{cls.__name__}", {key: value}, task=task_of(cls), seed=0)
        for value in outside(row.rule):
            with pytest.raises(ConfigError, match=rf"model.params.{key}={value} is not allowed"):
                check_node({"params": {key: value}}, SCHEMAS[name], "model")
            if (name, key) in TIGHTER:
                continue
            for cls in estimator_classes(name):
                with pytest.raises(CouplerError, match=f"'{key}' parameter of {cls.__name__} must be"):
                    SklearnModel(f"{cls.__module__}.{cls.__name__}", {key: value}, task=task_of(cls), seed=0)


def task_of(cls) -> str:
    from sklearn.base import is_regressor

    return "regression" if is_regressor(cls()) else "binary"


@pytest.mark.parametrize("override, message", [
    ("model.params.C=0", "model.params.C=0 is not allowed: a number > 0 (inverse regularisation strength"),
    ("model.params.kernel=precomputed", "model.params.kernel='precomputed' is not allowed: one of linear, poly, rbf, "
                                        "sigmoid"),
    ("model.params.gamma=fast", "model.params.gamma='fast' is not allowed: one of scale, auto or a number"),
], ids=["range", "choices", "type"])
def test_a_bad_value_is_one_line_before_any_data_is_read(coupler_cli, tmp_path, override, message):
    # the data file does not exist: reading it would be a different error
    result = coupler_cli("train", "data=csv", "data.path=absent.csv", "data.target=y", "model=svm", override,
                         "hydra.run.dir=run")
    lines = result.err.strip().splitlines()
    assert result.rc == 2 and len(lines) == 1 and lines[0].startswith("coupler: error: ") and message in lines[0], lines
    assert "absent.csv" not in result.err
    assert not (tmp_path / "run").exists()


def test_a_bad_value_in_a_config_file_is_refused_when_the_node_is_checked():
    """A value that reaches the model through a config file, not the command line, is checked before the model is
    built (``Component.build``), with the same message."""
    component = get_plugin_manager().get("model", "random_forest")
    with pytest.raises(ConfigError, match=r"model.params.n_estimators=0 is not allowed: a whole number >= 1"):
        component.build("model", {"name": "random_forest", "params": {"n_estimators": 0}}, task="binary", seed=0)


def test_a_key_added_with_plus_reaches_the_estimator_and_scikit_learn_checks_it():
    manager = get_plugin_manager()
    config = compose(["model=svm", "+model.params.probability=true", "+model.params.tol=0.01"], manager)
    model = manager.get("model", "svm").build("model", config["model"], task="binary", seed=0)
    assert (model.estimator.probability, model.estimator.tol, model.estimator.C) == (True, 0.01, 1.0)
    bad = compose(["model=svm", "+model.params.tol=fine"], manager)["model"]
    with pytest.raises(CouplerError, match="'tol' parameter of SVC must be a float"):
        manager.get("model", "svm").build("model", bad, task="binary", seed=0)


def test_help_lists_each_models_parameters_from_its_schema():
    lines = parameter_listing(get_plugin_manager(), {"model": "svm"})
    kernel = next(line for line in lines if line.startswith("  model.params.kernel = rbf "))
    assert "one of linear, poly, rbf, sigmoid" in kernel and kernel.endswith(": the kernel function; scikit-learn's "
                                                                            "precomputed is left out: it takes a kernel "
                                                                            "matrix, not the features a run passes")
    assert any(line.startswith("  +model.params.NAME=VALUE: any other key goes to sklearn.svm.SVC") for line in lines)
    lines = parameter_listing(get_plugin_manager(), {"model": "sklearn"})
    assert any(line.startswith("  model.estimator (required)  text: import path") for line in lines)
