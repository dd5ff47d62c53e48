"""Data that is not a plain table: time-ordered rows with a reference forecast, sequences flattened into rows,
and text tokenized with a vocabulary fitted on the training rows only."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from coupler import hookimpl
from coupler.components import Model
from coupler.conformance import check_plugin
from coupler.dataset import Dataset
from coupler.errors import ConfigError, DataError
from coupler.finished_run import FinishedRun
from coupler.plugin_manager import PluginManager
from coupler.testing import train_run
from coupler.tokenizer import Vocabulary


def series() -> Dataset:
    """A noisy random walk, windowed: the last 3 values predict the next; the naive forecast is the last value."""
    walk = np.cumsum(np.random.default_rng(0).normal(size=400))
    X = pd.DataFrame({f"lag{k}": walk[2 - k:len(walk) - 1 - k] for k in (2, 1, 0)})
    y = pd.Series(walk[3:], name="next")
    return Dataset(X, y, name="walk", task="regression", ordered=True, baseline=X["lag0"].rename("next"),
                   baseline_name="last value", sequence=(3, 1))


REVIEWS = ["a good film", "good acting and a good plot", "bad film", "a bad plot", "good", "bad acting",
           "really good", "really bad", "good good", "bad bad"] * 6


def reviews() -> Dataset:
    X = pd.DataFrame({"review": REVIEWS})
    y = pd.Series(["positive" if "good" in r else "negative" for r in REVIEWS], name="label")
    return Dataset(X, y, name="reviews", text="review", tokenizer={"length": 6})


class TokenCounts(Model):
    """Reads token ids: classifies by which class's training rows used the ids more."""

    input_formats = ("tokens",)

    def __init__(self, task, seed):
        self.weights = None

    def fit(self, train, val, run):
        type(self).seen = (run.input_format, run.sequence_shape, run.vocab_size, train.X.dtype)  # what the run told it
        counts = np.zeros((run.vocab_size, len(run.classes)))
        for ids, label in zip(train.X, train.y):
            np.add.at(counts[:, label], ids[ids > 1], 1)
        self.weights = np.log1p(counts)

    def predict(self, X):
        return np.stack([self.weights[ids].sum(axis=0) for ids in X]).argmax(axis=1)

    def save(self, directory):
        (directory / "w.json").write_text(json.dumps(self.weights.tolist()))

    def load(self, directory):
        self.weights = np.array(json.loads((directory / "w.json").read_text()))


class RawText(TokenCounts):
    input_formats = ("text",)

    def fit(self, train, val, run):
        type(self).seen = (run.input_format, list(train.X.columns), train.X.iloc[0, 0])
        self.weights = np.zeros(1)

    def predict(self, X):
        return np.array(["good" in text for text in X.iloc[:, 0]], dtype=int)


class Plugin:
    COUPLER_API = ">=1.0,<2"

    @hookimpl
    def register_data_loaders(self, register):
        register("walk", series, description="a random walk, windowed")
        register("reviews", reviews, description="short reviews")

    @hookimpl
    def register_models(self, register):
        register("token_counts", TokenCounts, description="token-id counts")
        register("raw_text", RawText, description="reads raw text")


@pytest.fixture(scope="module")
def manager():
    pm = PluginManager()
    pm.load_builtins()
    pm.load_entry_points()
    pm.load_object("shapes", Plugin())
    return pm


def run(manager, tmp_path, *overrides, name="run"):
    return train_run(tmp_path, *overrides, name=name, manager=manager)


def test_ordered_rows_split_by_time_and_the_baseline_is_measured_alike(manager, tmp_path):
    results, run_dir = run(manager, tmp_path, "data=walk", "model=linear_regression")
    predictions = pd.read_csv(run_dir / "predictions_test.csv", index_col=0)
    assert list(predictions.index) == list(range(400 - 3 - 40, 400 - 3)), "the test rows are the latest 10%"
    baseline = json.loads((run_dir / "baseline.json").read_text())
    assert baseline["name"] == "last value" and set(baseline["test"]) == set(results["test"]) - {"log_loss"}
    last = series()
    rows = predictions.index.to_numpy()
    expected = float(np.sqrt(np.mean((last.y[rows] - last.X["lag0"][rows]) ** 2)))
    assert baseline["test"]["rmse"] == pytest.approx(expected)
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["features"]["ordered"] is True and manifest["features"]["sequence"] == [3, 1]
    assert FinishedRun(run_dir, manager).evaluate() == results


def test_a_sequence_run_predicts_from_an_npy_of_sequences(manager, tmp_path):
    _, run_dir = run(manager, tmp_path, "data=walk", "model=linear_regression")
    windows = series().X.to_numpy()[:5].reshape(5, 3, 1)
    np.save(tmp_path / "windows.npy", windows)
    finished = FinishedRun(run_dir, manager)
    assert finished.predict(tmp_path / "windows.npy", tmp_path / "out.csv") == 5
    np.savez(tmp_path / "windows.npz", X=windows)
    assert finished.predict(tmp_path / "windows.npz", tmp_path / "out2.csv") == 5
    assert pd.read_csv(tmp_path / "out.csv")["prediction"].equals(pd.read_csv(tmp_path / "out2.csv")["prediction"])
    np.save(tmp_path / "wrong.npy", np.zeros((2, 4)))
    with pytest.raises(DataError, match=r"shape \(2, 4\): 4 values a row, and the run was trained on 3"):
        finished.predict(tmp_path / "wrong.npy", tmp_path / "out3.csv")


def test_text_becomes_token_ids_from_a_vocabulary_fitted_on_the_training_rows(manager, tmp_path):
    results, run_dir = run(manager, tmp_path, "data=reviews", "model=token_counts")
    assert results["test"]["accuracy"] == 1.0
    state = json.loads((run_dir / "preprocessor.json").read_text())
    # what the run told the model: token ids (rows, 6) of int64, and the id count of the fitted vocabulary
    assert TokenCounts.seen == ("tokens", (6,), len(state["vocabulary"]["tokens"]) + 2, np.dtype("int64"))
    assert state["input_format"] == "tokens" and state["vocabulary"]["length"] == 6
    assert FinishedRun(run_dir, manager).evaluate() == results
    pd.DataFrame({"review": ["good plot", "bad"]}).to_csv(tmp_path / "texts.csv", index=False)
    FinishedRun(run_dir, manager).predict(tmp_path / "texts.csv", tmp_path / "out.csv")
    assert list(pd.read_csv(tmp_path / "out.csv")["prediction"]) == ["positive", "negative"]
    np.save(tmp_path / "numbers.npy", np.zeros((2, 1)))
    with pytest.raises(DataError, match="an array holds numbers only, and this run reads text"):
        FinishedRun(run_dir, manager).predict(tmp_path / "numbers.npy", tmp_path / "out2.csv")


def test_the_vocabulary_knows_only_what_it_was_fitted_on():
    vocabulary = Vocabulary(length=4).fit(["the cat sat", "the dog"])
    assert vocabulary.tokens[0] == "the" and vocabulary.size == 6
    ids = vocabulary.encode(["The zebra sat", ""])
    assert ids.tolist() == [[2, 1, vocabulary.tokens.index("sat") + 2, 0], [0, 0, 0, 0]]
    characters = Vocabulary(level="char", length=3, vocab_size=3).fit(["aab"])
    assert characters.encode(["abc"]).tolist() == [[2, 1, 1]]
    assert Vocabulary.from_state(vocabulary.state()).encode(["the dog"]).tolist() == vocabulary.encode(["the dog"]).tolist()


def test_missing_texts_of_every_kind_encode_as_empty():
    # a Parquet string column holds pandas.NA, whose truth value is ambiguous; None and NaN come from CSVs
    texts = pd.array(["the cat", None, pd.NA], dtype="string").tolist() + [float("nan"), None]
    vocabulary = Vocabulary(length=2).fit(texts)
    assert vocabulary.encode(texts).tolist() == [[3, 2], [0, 0], [0, 0], [0, 0], [0, 0]]  # ties: alphabetical


def test_a_model_reading_raw_text_gets_the_column(manager, tmp_path, caplog):
    run(manager, tmp_path, "data=reviews", "model=raw_text")
    assert RawText.seen[:2] == ("text", ["review"]) and isinstance(RawText.seen[2], str)
    # the data set asked for length=6, which only the core's vocabulary would apply: the user is told
    assert "own tokenizer: the data set's tokenizer settings length=6 are not used" in caplog.text


@pytest.mark.parametrize("data, model, message", [
    ("reviews", "logistic_regression", "a model that reads text .* and 'logistic_regression' reads matrix"),
    ("iris", "token_counts", "a model that reads a table of features .* 'token_counts' reads tokens"),
])
def test_a_model_that_cannot_read_the_data_is_refused_by_name(manager, tmp_path, data, model, message):
    with pytest.raises(ConfigError, match=message):
        run(manager, tmp_path, f"data={data}", f"model={model}")


def test_bad_shapes_and_tokenizer_settings_are_named():
    frame = pd.DataFrame({"a": [1.0, 2.0], "b": [3.0, 4.0]})
    with pytest.raises(DataError, match=r"sequence=\(3, 1\) needs 3 columns; the table has 2"):
        Dataset(frame, pd.Series([0, 1]), name="x", sequence=(3, 1))
    with pytest.raises(ConfigError, match="data.level='syllable'"):
        Dataset(frame[["a"]], pd.Series([0, 1]), name="x", text="a", tokenizer={"level": "syllable"})
    with pytest.raises(DataError, match="a text data set has one feature column"):
        Dataset(frame, pd.Series([0, 1]), name="x", text="a")


def test_the_conformance_kit_runs_text_models_on_text_and_skips_the_tables(manager):
    done = check_plugin("shapes", manager=manager)
    assert "model:token_counts:round_trip_text" in done and "model:raw_text:round_trip_text" in done
    assert any(check.startswith("model:token_counts:round_trip_binary (skipped: the model reads tokens, no table")
               for check in done)
