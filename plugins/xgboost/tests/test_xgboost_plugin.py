"""The XGBoost plugin through the harness: tasks, parameters, native categoricals, early stopping through
the shared callbacks config, per-round events, UBJSON artifacts that reproduce the run, seeded determinism."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import xgboost

from coupler.errors import CouplerError
from coupler.finished_run import FinishedRun
from coupler.plugin_manager import get_plugin_manager
from coupler.testing import train_run
from coupler_xgboost.model import XGBoostModel


def test_binary_classification_on_breast_cancer(tmp_path):
    # The 57-row test split moves by 0.0175 per error: seeds 0-7 gave 0.930-1.0 (mean 0.958, val mean 0.973).
    # One seed cannot show a 0.95 level; the mean of three can, and each must stay near it.
    accuracies = []
    for seed in (0, 1, 2):
        results, run_dir = train_run(tmp_path, "data=breast_cancer", "model=xgboost", f"seed={seed}", name=f"s{seed}")
        accuracies.append(results["test"]["accuracy"])
    assert np.mean(accuracies) >= 0.95 and min(accuracies) >= 0.92, accuracies
    assert (run_dir / "model" / "model.ubj").is_file()
    assert json.loads((run_dir / "manifest.json").read_text())["libraries"]["xgboost"] == xgboost.__version__


def test_multiclass_uses_softprob_with_one_probability_per_class(tmp_path):
    results, run_dir = train_run(tmp_path, "data=wine", "model=xgboost", "model.num_boost_round=50")
    assert results["test"]["accuracy"] > 0.85
    finished = FinishedRun(run_dir, get_plugin_manager())
    proba = finished.model.predict_proba(pd.DataFrame(np.zeros((2, 13)), columns=finished.manifest["features"]["columns"]))
    assert proba.shape == (2, 3) and np.allclose(proba.sum(axis=1), 1)


@pytest.mark.parametrize("callbacks", [[], ["callbacks=[early_stopping]"]], ids=["defaults", "early_stopping"])
def test_regression_beats_the_mean_predictor_on_diabetes(tmp_path, callbacks):
    results, run_dir = train_run(tmp_path, "data=diabetes", "model=xgboost", *callbacks)
    predictions = pd.read_csv(run_dir / "predictions_test.csv", index_col=0)
    from sklearn.datasets import load_diabetes

    y = load_diabetes(as_frame=True).target
    train_mean = y.drop(index=predictions.index).mean()  # a mean over train + val: generous to the baseline
    mean_rmse = float(np.sqrt(((predictions["target"] - train_mean) ** 2).mean()))
    assert results["test"]["rmse"] < mean_rmse, (results["test"]["rmse"], mean_rmse)


def test_parameters_pass_through_to_xgboost(tmp_path):
    _, run_dir = train_run(tmp_path, "data=iris", "model=xgboost", "model.params.max_depth=2", "model.params.subsample=0.5",
                     "model.num_boost_round=7")
    booster = FinishedRun(run_dir, get_plugin_manager()).model.booster
    depths = [line.count("\t") for tree in booster.get_dump() for line in tree.splitlines()]
    assert max(depths) == 2, "a leaf sits at most max_depth levels down"
    assert booster.num_boosted_rounds() == 7


@pytest.mark.parametrize("params, message", [
    ({"max_depht": 3}, r"model.params.max_depht: XGBoost has no parameter 'max_depht'. Did you mean 'max_depth'\?"),
    ({"max_depth": "deep"}, "model.params: .*max_depth"),
    ({"objective": "reg:squarederror"}, "model.params.objective cannot be set"),
    ({"n_estimators": 10}, "set model.num_boost_round"),
])
def test_bad_parameters_are_clear_errors_before_training(params, message):
    with pytest.raises(CouplerError, match=message):
        XGBoostModel(task="binary", seed=0, params=params)


def test_unknown_parameter_through_the_cli_leaves_no_run(coupler_cli, tmp_path):
    result = coupler_cli("train", "model=xgboost", "model.params.etaa=0.3", "hydra.run.dir=run")
    assert result.rc == 2 and "Did you mean 'eta'?" in result.err and "Traceback" not in result.err
    assert not (tmp_path / "run").exists()


def test_device_cuda_reaches_xgboost(tmp_path, monkeypatch):
    seen = []
    real_train = xgboost.train

    def spy(params, *args, **kwargs):
        seen.append(params.get("device"))
        return real_train(params, *args, **kwargs)

    monkeypatch.setattr(xgboost, "train", spy)
    train_run(tmp_path, "data=iris", "model=xgboost", "+model.params.device=cuda", "model.num_boost_round=3")
    assert seen[-1] == "cuda"  # the training call; the parameter probe before it always runs on the CPU


def test_categorical_columns_use_native_categorical_support(tmp_path):
    rng = np.random.default_rng(0)
    colour = rng.choice(["red", "green", "blue"], 600)
    size = rng.normal(size=600)
    label = np.where((colour == "red") ^ (size > 0.5), "yes", "no")
    frame = pd.DataFrame({"colour": colour, "size": size, "label": label})
    frame.loc[::17, "colour"] = None
    frame.to_csv(tmp_path / "t.csv", index=False)
    results, run_dir = train_run(tmp_path, "data=csv", f"data.path={tmp_path / 't.csv'}", "data.target=label",
                           "model=xgboost", "model.num_boost_round=50")
    booster = FinishedRun(run_dir, get_plugin_manager()).model.booster
    assert booster.feature_types == ["c", "float"] and booster.feature_names == ["colour", "size"]
    assert results["test"]["accuracy"] > 0.9


def test_early_stopping_keeps_the_best_round_and_every_round_fires_an_event(tmp_path):
    results, run_dir = train_run(tmp_path, "data=breast_cancer", "model=xgboost", "callbacks=[early_stopping]",
                           "callbacks.early_stopping.patience=5")
    history = pd.read_csv(run_dir / "history.csv")
    manifest = json.loads((run_dir / "manifest.json").read_text())
    best = manifest["best_epoch"]
    assert len(history) < 500 and best == len(history) - 1 - 5
    assert list(history.columns) == ["epoch", "val_loss", "val_logloss", "seconds"]
    assert history["val_loss"].idxmin() == best
    booster = FinishedRun(run_dir, get_plugin_manager()).model.booster
    assert booster.num_boosted_rounds() == best + 1
    importances = pd.read_csv(run_dir / "feature_importances.csv")
    assert len(importances) > 5 and importances["importance"].is_monotonic_decreasing


def test_early_stopping_can_monitor_any_eval_metric_in_max_mode(tmp_path):
    _, run_dir = train_run(tmp_path, "data=breast_cancer", "model=xgboost", "+model.params.eval_metric=auc",
                     "callbacks=[early_stopping]", "callbacks.early_stopping.monitor=val_auc",
                     "callbacks.early_stopping.mode=max", "callbacks.early_stopping.patience=5")
    history = pd.read_csv(run_dir / "history.csv")
    assert list(history.columns) == ["epoch", "val_loss", "val_auc", "val_logloss", "seconds"], "val_loss stays the loss"
    assert (history["val_loss"] == history["val_logloss"]).all()
    assert history["val_auc"].idxmax() == json.loads((run_dir / "manifest.json").read_text())["best_epoch"]


def test_evaluate_and_predict_reproduce_the_run_exactly(tmp_path, coupler_cli):
    from sklearn.datasets import load_wine

    results, run_dir = train_run(tmp_path, "data=wine", "model=xgboost", "model.num_boost_round=30")
    assert FinishedRun(run_dir, get_plugin_manager()).evaluate() == results
    expected = pd.read_csv(run_dir / "predictions_test.csv", index_col=0)
    load_wine(as_frame=True).data.loc[expected.index].to_csv(tmp_path / "in.csv", index=False)
    assert coupler_cli("predict", str(run_dir), str(tmp_path / "in.csv"), str(tmp_path / "out.csv")).rc == 0
    predicted = pd.read_csv(tmp_path / "out.csv")
    proba = [c for c in expected.columns if c.startswith("proba_")]
    assert (predicted[proba].to_numpy() == expected[proba].to_numpy()).all()
    assert list(predicted["prediction"]) == list(expected["prediction"])


def test_seeded_runs_are_identical_on_cpu(tmp_path):
    args = ("data=breast_cancer", "model=xgboost", "model.params.subsample=0.7", "model.params.colsample_bytree=0.7",
            "model.num_boost_round=40")
    first, a = train_run(tmp_path, *args, name="a")
    second, b = train_run(tmp_path, *args, name="b")
    third, _ = train_run(tmp_path, *args, "seed=1", name="c")
    assert first == second and first != third
    assert (a / "predictions_test.csv").read_bytes() == (b / "predictions_test.csv").read_bytes()


# --- model.ubj: read in Python, bounded, and every tree checked before XGBoost follows its indices ---------------


def model_document(booster: str = "gbtree", classes: int = 3):
    import xgboost as xgb

    from coupler_xgboost.ubjson import read

    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(60, 4)), np.arange(60) % classes
    params = {"booster": booster, "objective": "multi:softprob", "num_class": classes, "max_depth": 3}
    return read(bytes(xgb.train(params, xgb.DMatrix(X, label=y), num_boost_round=3).save_raw("ubj")))


def set_node(document, key: str, index: int, value: int, tree: int = 0):
    node_array = document["learner"]["gradient_booster"]["model"]["trees"][tree][key].copy()
    node_array[index] = value
    document["learner"]["gradient_booster"]["model"]["trees"][tree][key] = node_array
    return document


@pytest.mark.parametrize("booster", ["gbtree", "dart", "gblinear"])
def test_what_xgboost_writes_passes_the_checks(booster):
    from coupler_xgboost.model import check_booster

    assert check_booster(model_document(booster)) is None


@pytest.mark.parametrize("tamper, problem", [
    (lambda d: set_node(d, "left_children", 0, 0), "children lie outside it"),  # the root as its own child
    (lambda d: set_node(d, "right_children", 0, -5), "children lie outside it"),
    (lambda d: set_node(set_node(d, "left_children", 0, 1), "right_children", 0, 1), "reached from two places"),
    (lambda d: set_node(d, "split_indices", 0, 4), "feature outside the model's 4"),
    (lambda d: d["learner"]["gradient_booster"]["model"]["tree_info"].__setitem__(0, 7), "outside the model's 3 outputs"),
    (lambda d: d["learner"]["gradient_booster"]["model"]["trees"].pop(), "trees and"),
    (lambda d: d["learner"].pop("learner_model_param"), "not an XGBoost model"),
], ids=["child_is_the_root", "child_negative", "two_parents", "feature_outside", "group_outside", "tree_missing",
        "no_model_params"])
def test_a_crafted_model_document_is_refused_with_what_is_wrong(tamper, problem):
    from coupler_xgboost.model import check_booster

    document = model_document()
    tamper(document)
    found = check_booster(document)
    assert found is not None and problem in found, found


@pytest.mark.parametrize("data, problem", [
    (b"{", "1 bytes declared, 0 left"),
    (b"{i\x03abc[$l#L\x00\x00\x00\x00\x7f\xff\xff\xff", "bytes declared"),  # 2**31 int32 in a few bytes
    (b"{}}", "after the end"),
    (b"[" * 100, "deeper than 64"),
    (b"{i\x01a\x00", "unknown marker"),
], ids=["truncated", "count_beyond_the_file", "trailing_bytes", "too_deep", "unknown_marker"])
def test_the_ubjson_reader_refuses_what_is_not_one_whole_document(data, problem):
    from coupler_xgboost.ubjson import UBJSONError, read

    with pytest.raises(UBJSONError, match=problem):
        read(data)


def test_the_schema_lists_parameters_at_xgboosts_defaults_but_depth_and_rate():
    """model.params.subsample=0.8 needs no +: the schema lists the parameters users tune most, each at the value
    XGBoost itself uses (read from a booster's own config; reg_lambda/reg_alpha are its lambda/alpha), but eta
    (0.1: 500 rounds of 0.3 overfit) and tree_method (hist, set on purpose)."""
    from coupler.schema import defaults
    from coupler_xgboost.plugin import XGBoostSchema

    node = defaults(XGBoostSchema)
    booster = xgboost.train({}, xgboost.DMatrix(np.zeros((4, 1)), label=[0, 1, 0, 1]), num_boost_round=1)
    tree = json.loads(booster.save_config())["learner"]["gradient_booster"]["tree_train_param"]
    for key, value in node["params"].items():
        if key not in ("eta", "tree_method"):
            xgboost_key = key.removeprefix("reg_")
            assert float(tree[xgboost_key]) == value, f"{key}={value}, XGBoost's default is {tree[xgboost_key]}"
    assert node["params"]["eta"] == 0.1


def test_xgboosts_own_names_lambda_and_alpha_set_the_schemas_reg_fields():
    from coupler_xgboost.plugin import build_xgboost

    model = build_xgboost("binary", 0, {"reg_lambda": 1.0, "reg_alpha": 0.0, "lambda": 50, "max_depth": 3}, 2)
    assert model.params["reg_lambda"] == 50 and "lambda" not in model.params and model.params["reg_alpha"] == 0.0
