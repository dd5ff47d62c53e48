"""model=transformer and data=text_csv through real runs: text accuracy on the generated reviews, the vocabulary
fitted on the training rows only, evaluate/predict reproducing the run, a text run killed mid-training resuming to
the same numbers and vocabulary, numeric sequences, bad settings."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from coupler.config import compose
from coupler.errors import ConfigError, CouplerError, DataError
from coupler.finished_run import FinishedRun
from coupler.plugin_manager import get_plugin_manager
from coupler.testing import read_metrics, train_run
from coupler_torch.testing import epoch_at_least, kill_and_resume
from coupler_transformer.model import Encoder, Transformer
from coupler_transformer.sample import make_sentiment
from coupler_transformer.text_csv import load_text_csv

TEXT = ["data=text_csv", "data.length=16", "model=transformer", "trainer.max_epochs=20", "trainer.progress_bar=false"]
#: the generated reviews for the accuracy run
ROWS = 1000


@pytest.fixture(scope="module")
def text_run(tmp_path_factory):
    from coupler_transformer.sample import write_sentiment_csv

    directory = tmp_path_factory.mktemp("text")
    csv = write_sentiment_csv(directory / "reviews.csv", rows=ROWS)
    # validation accuracy is 0.97 from the fifth epoch on (0.5 after the first, 0.73 after the third)
    metrics, run_dir = train_run(directory, *TEXT, f"data.path={csv}", "trainer.max_epochs=8")
    return metrics, run_dir


def test_text_classification_accuracy_on_the_generated_reviews(text_run):
    metrics, run_dir = text_run
    print("transformer on the generated reviews:", metrics)
    # 3% of the labels are flipped; negation ("not bad") needs word order, not a bag of words
    assert metrics["val"]["accuracy"] >= 0.85
    assert metrics["test"]["accuracy"] >= 0.85
    assert sorted(p.name for p in (run_dir / "model").iterdir()) == ["network.json", "weights.safetensors"]
    saved = json.loads((run_dir / "model" / "network.json").read_text())
    assert saved["inputs"]["kind"] == "tokens" and saved["inputs"]["steps"] == 16


def test_a_word_only_in_the_test_split_maps_to_unknown(tmp_path):
    frame = make_sentiment(200)
    # the run's test rows are known once a first run has split; put a new word into one of them
    frame.to_csv(tmp_path / "a.csv", index=False)
    _, first = train_run(tmp_path, *TEXT, "trainer.max_epochs=1", f"data.path={tmp_path / 'a.csv'}",
                         "model.width=16", "model.heads=2", name="first")
    test_rows = pd.read_csv(first / "predictions_test.csv").iloc[:, 0].to_numpy()
    frame.loc[test_rows[0], "text"] = "qwertyword was great"
    frame.to_csv(tmp_path / "b.csv", index=False)
    _, second = train_run(tmp_path, *TEXT, "trainer.max_epochs=1", f"data.path={tmp_path / 'b.csv'}",
                          "model.width=16", "model.heads=2", name="second")
    assert set(pd.read_csv(second / "predictions_test.csv").iloc[:, 0]) == set(test_rows), "same split"
    state = json.loads((second / "preprocessor.json").read_text())["vocabulary"]
    assert "qwertyword" not in state["tokens"]
    finished = FinishedRun(second, get_plugin_manager())
    ids = finished.preprocessor.transform(frame.loc[[test_rows[0]], ["text"]], "tokens")
    assert ids[0, 0] == 1 and ids[0, 1] >= 2


def test_evaluate_and_predict_on_a_csv_of_texts_reproduce_the_run(text_run, tmp_path):
    metrics, run_dir = text_run
    manager = get_plugin_manager()
    assert FinishedRun(run_dir, manager).evaluate() == read_metrics(run_dir)
    test = pd.read_csv(run_dir / "predictions_test.csv")
    row_column = "row" if "row" in test else test.columns[0]
    frame = pd.read_csv(Path(FinishedRun(run_dir, manager).config["data"]["path"]))
    frame.loc[test[row_column], ["text"]].to_csv(tmp_path / "texts.csv", index=False)
    written = FinishedRun(run_dir, manager).predict(tmp_path / "texts.csv", tmp_path / "out.csv")
    assert written == len(test)
    out = pd.read_csv(tmp_path / "out.csv")
    assert list(out["prediction"]) == list(test["prediction"])
    proba = [c for c in out.columns if c.startswith("proba_")]
    assert np.allclose(out[proba].to_numpy(), test[proba].to_numpy(), atol=1e-9)


def test_the_cli_predicts_a_csv_of_texts(text_run, tmp_path, coupler_cli):
    _, run_dir = text_run
    pd.DataFrame({"text": ["the film was not bad.", "the plot was truly awful!", ""]}).to_csv(
        tmp_path / "texts.csv", index=False)
    result = coupler_cli("predict", str(run_dir), str(tmp_path / "texts.csv"), str(tmp_path / "out.csv"))
    assert result.rc == 0, result.err
    assert len(pd.read_csv(tmp_path / "out.csv")) == 3


@pytest.mark.slow
def test_a_text_run_killed_mid_training_resumes_to_the_same_metrics_and_vocabulary(reviews_csv, tmp_path,
                                                                                   coupler_cli):
    settings = ["data=text_csv", f"data.path={reviews_csv}", "data.length=16", "model=transformer", "model.width=16",
                "model.heads=2", "trainer.max_epochs=8", "trainer.resume_interval=0"]
    checkpoint = kill_and_resume(tmp_path, settings, epoch_at_least(2))
    assert 2 <= checkpoint["epoch"] < 7
    assert len((tmp_path / "whole" / "history.csv").read_text().splitlines()) == 1 + 8
    vocabulary = json.loads((tmp_path / "killed" / "preprocessor.json").read_text())["vocabulary"]
    assert "not" in vocabulary["tokens"]
    assert (tmp_path / "killed" / "preprocessor.json").read_text() == (tmp_path / "whole" / "preprocessor.json").read_text()
    # the finished, resumed run evaluates like the uninterrupted one
    resumed, whole = coupler_cli("evaluate", str(tmp_path / "killed")), coupler_cli("evaluate", str(tmp_path / "whole"))
    assert resumed.rc == 0 and whole.rc == 0, resumed.err + whole.err
    assert "accuracy" in resumed.out and resumed.out == whole.out
    as_json = coupler_cli("evaluate", str(tmp_path / "killed"), "--json")
    assert as_json.rc == 0 and json.loads(as_json.out) == read_metrics(tmp_path / "whole")


def _sequence_loader(path=None):
    """Sequences of 12 steps x 3 features: the class is whether feature 0 rises or falls over time."""
    from coupler.dataset import Dataset

    rng = np.random.default_rng(0)
    n, steps, features = 300, 12, 3
    label = rng.integers(0, 2, n)
    trend = np.where(label == 1, 1.0, -1.0)[:, None] * np.linspace(-1, 1, steps)[None, :]
    values = rng.normal(0, 0.6, (n, steps, features))
    values[:, :, 0] += trend
    X = pd.DataFrame(values.reshape(n, -1), columns=[f"s{t}_f{f}" for t in range(steps) for f in range(features)])
    return Dataset(X=X, y=pd.Series(label, name="rises"), name="trend", sequence=(steps, features))


def test_numeric_sequences_are_classified(tmp_path):
    from coupler import hookimpl
    from coupler.config import compose
    from coupler.training import train

    class TrendPlugin:
        @hookimpl
        def register_data_loaders(self, register):
            register("trend_sequences", _sequence_loader)

    manager = get_plugin_manager()
    manager.load_object("trend_tests", TrendPlugin(), distribution="tests")
    config = compose(["data=trend_sequences", "model=transformer", "model.width=32", "trainer.max_epochs=15",
                      "trainer.progress_bar=false"], manager)
    run_dir = tmp_path / "run"
    metrics = train(config, run_dir, manager)
    print("transformer on the trend sequences:", metrics)
    assert metrics["test"]["accuracy"] >= 0.9
    saved = json.loads((run_dir / "model" / "network.json").read_text())["inputs"]
    assert saved == {"kind": "matrix", "vocab_size": 0, "steps": 12, "features": 3}
    finished = FinishedRun(run_dir, manager)
    assert finished.evaluate() == metrics
    # coupler predict on an array of sequences (rows, steps, features) gives the run's test predictions
    expected = pd.read_csv(run_dir / "predictions_test.csv", index_col=0)
    sequences = _sequence_loader().X.loc[expected.index].to_numpy().reshape(len(expected), 12, 3)
    np.save(tmp_path / "sequences.npy", sequences)
    assert finished.predict(tmp_path / "sequences.npy", tmp_path / "out.csv") == len(expected)
    assert pd.read_csv(tmp_path / "out.csv")["prediction"].tolist() == expected["prediction"].tolist()


def test_padding_is_masked_and_left_out_of_the_pooling():
    torch.manual_seed(0)
    net = Encoder(kind="tokens", n_outputs=2, depth=2, heads=2, width=16, dropout=0.0, positional="learned",
                  max_length=32, vocab_size=10).eval()
    short = torch.tensor([[3, 4, 5, 0, 0]])
    longer = torch.tensor([[3, 4, 5, 0, 0, 0, 0, 0, 0]])
    with torch.no_grad():
        assert torch.allclose(net(short), net(longer), atol=1e-5)
        assert torch.isfinite(net(torch.zeros((2, 5), dtype=torch.long))).all(), "an empty text gives numbers"


@pytest.mark.parametrize("override, allowed", [
    ("model.heads=0", "a whole number >= 1"), ("model.depth=0", "a whole number >= 1 and <= 64"),
    ("model.dropout=1.0", "a number >= 0 and < 1"), ("model.positional=rotary", "one of sinusoidal, learned"),
    ("model.max_length=0", "a whole number >= 1"), ("model.batch_size=0", "a whole number >= 1"),
    ("model.width=wide", "a whole number"),
])
def test_the_schema_refuses_a_bad_setting_naming_the_key(override, allowed):
    key, _, value = override.partition("=")
    shown = repr(value) if value.isalpha() else value  # text is quoted in the message
    with pytest.raises(ConfigError, match=f"^{key}={shown} is not allowed: {allowed}"):
        compose(["data=iris", "model=transformer", override], get_plugin_manager())


@pytest.mark.parametrize("settings, fragment", [({"width": 30}, "multiple of model.heads=4"),
                                                ({"width": 7, "heads": 7}, "an even number")])
def test_width_against_heads_is_checked_by_the_model(settings, fragment):
    """The rules between parameters, which a schema cannot state, stay with the model."""
    with pytest.raises(ConfigError, match=fragment) as caught:
        Transformer(task="binary", seed=0, **settings)
    assert "model.width" in str(caught.value)


@pytest.mark.parametrize("override, message", [
    ("model.positional=rotary", "model.positional='rotary' is not allowed: one of sinusoidal, learned (position "
                                "embeddings: fixed sine/cosine or learned)"),
    ("data.level=byte", "data.level='byte' is not allowed: one of word, char (word or character tokens)"),
])
def test_a_bad_value_is_refused_in_one_line_before_the_csv_is_read(coupler_cli, tmp_path, override, message):
    """data.path names no file: had the loader run first, the error would be 'no such file'."""
    result = coupler_cli("train", "data=text_csv", f"data.path={tmp_path / 'absent.csv'}", "model=transformer",
                         override, "hydra.run.dir=run")
    assert (result.rc, result.err.strip().splitlines()) == (2, [f"coupler: error: {message}"])
    assert not (tmp_path / "run").exists()


def test_max_length_shorter_than_the_texts_is_refused(reviews_csv, tmp_path):
    with pytest.raises(ConfigError, match="model.max_length"):
        train_run(tmp_path, *TEXT, f"data.path={reviews_csv}", "model.max_length=8")


def test_text_csv_errors_name_the_file_and_column(tmp_path, reviews_csv):
    with pytest.raises(DataError, match="no such file"):
        load_text_csv(path=tmp_path / "missing.csv")
    with pytest.raises(DataError, match="directory"):
        load_text_csv(path=tmp_path)
    with pytest.raises(ConfigError, match="data.path"):
        load_text_csv(path=None)
    with pytest.raises(DataError, match=r"data.text='review'.*columns are \['text', 'label'\]"):
        load_text_csv(path=reviews_csv, text="review")
    with pytest.raises(DataError, match="data.label='sentiment'"):
        load_text_csv(path=reviews_csv, label="sentiment")
    with pytest.raises(ConfigError, match="data.level"):
        load_text_csv(path=reviews_csv, level="byte")
    dataset = load_text_csv(path=reviews_csv, length=16)
    assert dataset.text == "text" and dataset.tokenizer["length"] == 16 and len(dataset.X) == 600


def test_a_text_model_is_refused_a_table_it_cannot_read_and_vice_versa(tmp_path, reviews_csv):
    with pytest.raises(CouplerError, match="reads text"):
        train_run(tmp_path, f"data.path={reviews_csv}", "data=text_csv", "model=random_forest")
