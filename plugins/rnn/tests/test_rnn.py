"""LSTM / GRU through real runs: forecasting beats the naive last value, sequences are classified, runs reload
and predict from .npy, a forecast killed mid-training resumes to the same numbers, the chronological split and its
boundary gaps, the loaders' files and errors."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from coupler.errors import ConfigError, DataError
from coupler.finished_run import FinishedRun
from coupler.plugin_manager import get_plugin_manager
from coupler.splitting import split_rows
from coupler.testing import read_metrics, train_run
from coupler_rnn.data import generate_sequences, load_sequences, load_timeseries
from coupler_torch.testing import epoch_at_least, kill_and_resume

FAST = ["trainer.progress_bar=false", "trainer.resumable=false"]


@pytest.fixture(scope="module")
def forecast(tmp_path_factory):
    """A short forecasting run on the generated series (the defaults, fewer epochs)."""
    directory = tmp_path_factory.mktemp("forecast")
    metrics, run_dir = train_run(directory, "data=timeseries", "model=lstm", "data.length=1200", "model.hidden_size=16",
                                 "trainer.max_epochs=25", *FAST)
    return metrics, run_dir


@pytest.fixture(scope="module")
def classify(tmp_path_factory):
    directory = tmp_path_factory.mktemp("classify")
    metrics, run_dir = train_run(directory, "data=sequences", "model=gru", "data.rows=450",
                                 "trainer.max_epochs=40", *FAST)
    return metrics, run_dir


def test_forecasting_beats_the_naive_last_value(forecast):
    metrics, run_dir = forecast
    baseline = json.loads((run_dir / "baseline.json").read_text())
    assert baseline["name"] == "last value"
    assert metrics["test"]["rmse"] < 0.85 * baseline["test"]["rmse"], (metrics, baseline)
    assert metrics["val"]["rmse"] < baseline["val"]["rmse"]


def test_sequences_are_classified_by_their_temporal_pattern(classify):
    metrics, _ = classify
    assert metrics["val"]["accuracy"] >= 0.9 and metrics["test"]["accuracy"] >= 0.9, metrics


def test_a_run_reloads_to_the_same_numbers_and_predicts_from_npy(classify, tmp_path):
    _, run_dir = classify
    manager = get_plugin_manager()
    assert FinishedRun(run_dir, manager).evaluate() == read_metrics(run_dir)
    network = json.loads((run_dir / "model" / "network.json").read_text())
    assert network["architecture"]["sequence_shape"] == [30, 3]
    expected = pd.read_csv(run_dir / "predictions_test.csv", index_col=0)
    X, _ = generate_sequences(450, 30, 0)
    np.save(tmp_path / "rows.npy", X[expected.index.to_numpy()])  # (rows, steps, features)
    written = FinishedRun(run_dir, manager).predict(tmp_path / "rows.npy", tmp_path / "out.csv")
    assert written == len(expected)
    out = pd.read_csv(tmp_path / "out.csv")
    assert out["prediction"].tolist() == expected["prediction"].tolist()
    np.testing.assert_allclose(out.filter(like="proba_").to_numpy(), expected.filter(like="proba_").to_numpy(),
                               rtol=1e-5, atol=1e-7)


def test_the_forecast_run_reloads_to_the_same_numbers(forecast):
    _, run_dir = forecast
    assert FinishedRun(run_dir, get_plugin_manager()).evaluate() == read_metrics(run_dir)


@pytest.mark.slow
def test_a_forecast_killed_mid_training_resumes_to_the_same_metrics_and_baseline(tmp_path):
    settings = ["data=timeseries", "model=lstm", "data.length=600", "model.hidden_size=16", "trainer.max_epochs=8",
                "trainer.resume_interval=0"]
    checkpoint = kill_and_resume(tmp_path, settings, epoch_at_least(2))
    assert 2 <= checkpoint["epoch"] < 7
    assert len((tmp_path / "whole" / "history.csv").read_text().splitlines()) == 1 + 8
    baseline = json.loads((tmp_path / "killed" / "baseline.json").read_text())
    assert baseline["name"] == "last value" and baseline["test"]["rmse"] > 0
    assert baseline == json.loads((tmp_path / "whole" / "baseline.json").read_text())


def test_the_split_is_chronological_with_a_gap_of_horizon_windows_at_each_boundary():
    lookback, horizon = 12, 3
    dataset = load_timeseries(length=600, lookback=lookback, horizon=horizon)
    assert dataset.ordered and dataset.sequence == (lookback, 2) and dataset.task == "regression"
    assert list(dataset.X.columns[:2]) == ["lag11_load", "lag11_temperature"]
    assert list(dataset.X.columns[-2:]) == ["lag0_load", "lag0_temperature"]
    y = dataset.y.to_numpy()
    indices = split_rows(y, "regression", {"val": 0.2, "test": 0.1, "stratify": "auto"}, 0, ordered=True,
                         gap=dataset.gap)
    position = dataset.X.index.to_numpy()  # a row is named by its target's position in the series
    train, val, test = position[indices.train], position[indices.val], position[indices.test]
    assert train.max() < val.min() and val.max() < test.min()
    assert (np.diff(position) >= 1).all()
    # horizon windows dropped at each boundary: no training target after the first validation window's last input
    first_val_last_input = val.min() - horizon
    assert train.max() <= first_val_last_input - 1
    assert val.min() - train.max() == horizon + 1 and test.min() - val.max() == horizon + 1
    # the baseline is the target's value at the window's last step, and X's lag0 column holds it
    series = load_timeseries(length=600, lookback=lookback, horizon=horizon, gap=0)
    np.testing.assert_allclose(series.baseline.to_numpy(), series.X["lag0_load"].to_numpy())
    assert len(series.y) == 600 - lookback - horizon + 1


def test_a_csv_series(tmp_path):
    frame = pd.DataFrame({"when": pd.date_range("2024-01-01", periods=80, freq="h").astype(str),
                          "sales": np.arange(80.0), "price": np.arange(80.0) % 7})
    frame.to_csv(tmp_path / "s.csv", index=False)
    dataset = load_timeseries(path=str(tmp_path / "s.csv"), target="sales", lookback=4, gap=0)
    assert list(dataset.X.columns[:2]) == ["lag3_sales", "lag3_price"]  # the text column is left out
    assert dataset.y.iloc[0] == 4.0 and dataset.baseline.iloc[0] == 3.0
    assert dataset.X.iloc[0].tolist() == [0.0, 0.0, 1.0, 1.0, 2.0, 2.0, 3.0, 3.0]
    with pytest.raises(DataError, match="not numeric"):
        load_timeseries(path=str(tmp_path / "s.csv"), target="sales", columns=["when"])
    with pytest.raises(DataError, match="no such column"):
        load_timeseries(path=str(tmp_path / "s.csv"), target="cost")
    with pytest.raises(DataError, match="data.target is required"):
        load_timeseries(path=str(tmp_path / "s.csv"))
    with pytest.raises(DataError, match="no such file"):
        load_timeseries(path=str(tmp_path / "missing.csv"), target="sales")


def test_npz_and_npy_loading_and_errors(tmp_path):
    X = np.random.default_rng(0).normal(size=(12, 5, 2))
    y = np.array(["a", "b", "c"] * 4)
    np.savez(tmp_path / "set.npz", X=X, y=y)
    dataset = load_sequences(path=str(tmp_path / "set.npz"))
    assert dataset.sequence == (5, 2) and dataset.X.shape == (12, 10)
    assert list(dataset.X.columns[:3]) == ["t000_f0", "t000_f1", "t001_f0"]
    np.testing.assert_array_equal(dataset.X.to_numpy(), X.reshape(12, 10))
    np.save(tmp_path / "X.npy", X)
    np.save(tmp_path / "y.npy", y)
    pair = load_sequences(path=str(tmp_path / "X.npy"), target_path=str(tmp_path / "y.npy"))
    assert pair.X.equals(dataset.X) and pair.y.equals(dataset.y)

    with pytest.raises(DataError, match="no such file"):
        load_sequences(path=str(tmp_path / "nothing.npz"))
    np.savez(tmp_path / "flat.npz", X=X.reshape(12, 10), y=y)
    with pytest.raises(DataError, match="must be 3-D"):
        load_sequences(path=str(tmp_path / "flat.npz"))
    np.savez(tmp_path / "short.npz", X=X, y=y[:10])
    with pytest.raises(DataError, match="12 samples but y has 10"):
        load_sequences(path=str(tmp_path / "short.npz"))
    np.savez(tmp_path / "noy.npz", X=X)
    with pytest.raises(DataError, match="it needs X"):
        load_sequences(path=str(tmp_path / "noy.npz"))
    with pytest.raises(DataError, match="target_path"):
        load_sequences(path=str(tmp_path / "X.npy"))
    (tmp_path / "junk.npy").write_text("not an array")
    with pytest.raises(DataError, match="not a readable"):
        load_sequences(path=str(tmp_path / "junk.npy"), target_path=str(tmp_path / "y.npy"))


def test_missing_or_infinite_values_and_object_labels_are_refused_at_loading(tmp_path):
    X = np.random.default_rng(0).normal(size=(12, 5, 2))
    y = np.array(["a", "b", "c"] * 4)
    holed = X.copy()
    holed[3, 2, 1] = np.inf
    np.savez(tmp_path / "inf.npz", X=holed, y=y)
    with pytest.raises(DataError, match="1 missing or infinite value.*sample 3, step 2, feature 1"):
        load_sequences(path=str(tmp_path / "inf.npz"))
    unlabelled = np.arange(12.0) % 3
    unlabelled[4] = np.nan
    np.savez(tmp_path / "nan_y.npz", X=X, y=unlabelled)
    with pytest.raises(DataError, match="1 missing label.*sample 4"):
        load_sequences(path=str(tmp_path / "nan_y.npz"))
    np.savez(tmp_path / "objects.npz", X=X, y=y.astype(object))  # what a DataFrame column's to_numpy() gives
    with pytest.raises(DataError, match=r"y=y.astype\(str\)"):
        load_sequences(path=str(tmp_path / "objects.npz"))
    series = pd.DataFrame({"sales": np.arange(80.0), "price": np.arange(80.0) % 7})
    series.loc[10, "price"] = np.inf
    series.to_csv(tmp_path / "inf.csv", index=False)
    with pytest.raises(DataError, match=r"\['price'\] have missing or infinite values"):
        load_timeseries(path=str(tmp_path / "inf.csv"), target="sales")


@pytest.mark.parametrize("override, key", [
    ("model.layers=0", "model.layers"), ("model.hidden_size=1.5", "model.hidden_size"),
    ("model.bidirectional=maybe", "model.bidirectional"), ("model.dropout=1", "model.dropout"),
    ("model.batch_size=0", "model.batch_size"), ("model.threads=0", "model.threads"), ("model.skip=3", "model.skip"),
    ("data.rows=10", "data.rows"), ("data.steps=2.5", "data.steps"), ("data.seed=-1", "data.seed"),
])
def test_bad_settings_are_refused_by_key(tmp_path, override, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        train_run(tmp_path, "data=sequences", "data.rows=60", "model=lstm", override)


@pytest.mark.parametrize("override, message", [
    ("model.dropout=1", "model.dropout=1 is not allowed: a number >= 0 and < 1 (dropout probability between stacked "
                        "layers and before the head)"),
    ("data.lookback=0", "data.lookback=0 is not allowed: a whole number >= 1 (steps per window)"),
    ("data.columns={a:1}", "data.columns={'a': 1} is not allowed: a list of column names, one name, or null"),
])
def test_the_schema_refuses_a_bad_value_in_one_line_before_the_csv_is_read(coupler_cli, tmp_path, override, message):
    """data.path names no file: had the loader run first, the error would be 'no such file'."""
    result = coupler_cli("train", "data=timeseries", f"data.path={tmp_path / 'absent.csv'}", "data.target=load",
                         "model=lstm", override, "hydra.run.dir=run")
    assert (result.rc, result.err.strip().splitlines()) == (2, [f"coupler: error: {message}"])
    assert not (tmp_path / "run").exists()


def test_bidirectional_stacked_gru_on_a_table_trains(tmp_path):
    """A plain table: one feature per step; two bidirectional layers with dropout train and reload."""
    metrics, run_dir = train_run(tmp_path, "data=iris", "model=gru", "model.layers=2", "model.bidirectional=true",
                                 "model.dropout=0.1", "model.hidden_size=8", "trainer.max_epochs=3", *FAST)
    assert json.loads((run_dir / "model" / "network.json").read_text())["architecture"]["sequence_shape"] == [4, 1]
    assert FinishedRun(run_dir, get_plugin_manager()).evaluate() == metrics
