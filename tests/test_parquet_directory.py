"""``data=parquet data.path=DIR``: a directory of Parquet files, split by hash, streamed to a model that takes the
``stream`` input format and read whole for one that does not (``coupler.parquet``, ``coupler.streaming``)."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pandas as pd
import pytest

from coupler.components import Model
from coupler.errors import ConfigError, DataError
from coupler.hookspecs import hookimpl
from coupler.plugin_manager import PluginManager
from coupler.testing import read_metrics, train_run


class StreamingSGD(Model):
    """A real streaming learner for the tests: scikit-learn's SGDClassifier, ``partial_fit`` batch by batch."""

    tasks = ("binary", "multiclass")
    input_formats = ("stream", "matrix")
    reports_epochs = True
    sample_weights = True

    def __init__(self, task, seed, epochs: int = 3):
        from sklearn.linear_model import SGDClassifier

        self.epochs, self.seed = epochs, seed
        self.estimator = SGDClassifier(loss="log_loss", random_state=seed)
        self.seen_batches = 0

    def fit(self, train, val, run):
        from coupler.streaming import RowStream

        assert isinstance(train.X, RowStream) and train.y is None
        classes = np.arange(len(run.classes))
        for epoch in range(1, self.epochs + 1):
            for batch in train.X.batches(32, seed=self.seed + epoch, buffer_rows=96):
                self.estimator.partial_fit(batch.X, batch.y, classes=classes, sample_weight=batch.weight)
                self.seen_batches += 1
            run.epoch_end(epoch, {})

    def predict(self, X):
        assert isinstance(X, np.ndarray)
        return self.estimator.predict(X)

    def save(self, directory):
        state = {"coef": self.estimator.coef_.tolist(), "intercept": self.estimator.intercept_.tolist(),
                 "classes": self.estimator.classes_.tolist()}
        (directory / "sgd.json").write_text(json.dumps(state))

    def load(self, directory):
        state = json.loads((directory / "sgd.json").read_text())
        self.estimator.coef_, self.estimator.intercept_ = np.array(state["coef"]), np.array(state["intercept"])
        self.estimator.classes_ = np.array(state["classes"])


class Streaming:
    @hookimpl
    def register_models(self, register):
        register("streaming_sgd", StreamingSGD)


@pytest.fixture(scope="module")
def manager():
    pm = PluginManager()
    pm.load_builtins()
    pm.load_entry_points()
    pm.load_object("streaming", Streaming())
    return pm


def cancer() -> pd.DataFrame:
    from sklearn.datasets import load_breast_cancer

    frame = load_breast_cancer(as_frame=True).frame.iloc[:, [0, 1, 2, 3, 20, 21, 22, 30]]
    frame["size"] = np.where(frame["mean radius"] > 14, "large", "small")
    frame.loc[frame.index[::17], "mean texture"] = np.nan
    return frame


def write_directory(directory, frame: pd.DataFrame, parts: int, row_group_size: int) -> None:
    """``frame`` as ``parts`` hive partitions (``part=K/``), each file in row groups of ``row_group_size``."""
    for k, chunk in enumerate(np.array_split(np.arange(len(frame)), parts)):
        (directory / f"part={k}").mkdir(parents=True)
        frame.iloc[chunk].to_parquet(directory / f"part={k}" / "rows.parquet", row_group_size=row_group_size)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    directory = tmp_path_factory.mktemp("parquet") / "cancer"
    write_directory(directory, cancer(), parts=3, row_group_size=50)
    return directory


@pytest.fixture(scope="module")
def streamed(data, manager, tmp_path_factory):
    overrides = (f"data.path={data}", "data.target=target", "data.features=[mean radius,mean texture,mean perimeter,"
                 "mean area,worst radius,worst texture,worst perimeter,size]")
    return train_run(tmp_path_factory.mktemp("runs"), "data=parquet", *overrides, "model=streaming_sgd",
                     manager=manager)


def test_a_directory_streams_to_a_model_that_takes_a_stream_and_the_run_reloads(streamed, manager):
    from coupler.finished_run import FinishedRun

    metrics, run_dir = streamed
    assert metrics["test"]["accuracy"] > 0.85 and metrics["val"]["accuracy"] > 0.85
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["features"]["streamed"] is True and manifest["features"]["input_format"] == "matrix"
    assert sum(manifest["rows"].values()) == 569
    assert len(pd.read_csv(run_dir / "predictions_test.csv")) == manifest["rows"]["test"]
    assert len(pd.read_csv(run_dir / "history.csv")) == 3
    # coupler evaluate RUN streams the same splits again, and finds the same metrics
    finished = FinishedRun(run_dir, manager)
    again = finished.evaluate()
    assert again["test"] == pytest.approx(metrics["test"]) and again["val"] == pytest.approx(metrics["val"])
    # coupler evaluate RUN data=parquet data.path=DIR: every row of a directory, streamed
    config = json.loads((run_dir / "manifest.json").read_text())["features"]
    every = finished.evaluate({"name": "parquet", "path": str(finished.config["data"]["path"]), "target": "target",
                               "features": config["columns"], "categorical": None, "key": None})["data"]
    assert every["accuracy"] > 0.85 and every["accuracy"] != metrics["test"]["accuracy"]


def test_the_streaming_pass_fits_what_the_in_memory_preprocessor_fits_on_the_same_training_rows(streamed, data):
    """The scan's running statistics equal a pandas fit on the training rows (the median too: the sample holds
    every training row of a small data set)."""
    from coupler.parquet import split_codes
    from coupler.preprocessing import Preprocessor

    _, run_dir = streamed
    state = json.loads((run_dir / "preprocessor.json").read_text())
    frame = pd.read_parquet(data)  # the part=K column comes back as a category: not a feature here
    columns = state["columns"]
    codes = np.concatenate([split_codes(pd.read_parquet(f)[[*columns, "target"]], 0, 0.2, 0.1, None)
                            for f in sorted(data.rglob("*.parquet"))])
    expected = Preprocessor().fit(frame[columns][codes == 0], ["size"]).state()
    for column, spec in expected["numeric"].items():
        assert state["numeric"][column] == pytest.approx(spec, rel=1e-9), column
    assert state["categorical"] == expected["categorical"]


def test_the_split_is_the_same_whether_streamed_or_read_whole_and_whatever_the_files_layout(streamed, data, manager,
                                                                                            tmp_path):
    """A row's split is the hash of the row: the same rows test in a streamed run and in a run that reads the
    directory whole, and after the rows are rewritten in other files and row groups."""
    features = ("data.features=[mean radius,mean texture,mean perimeter,mean area,worst radius,worst texture,"
                "worst perimeter,size]")
    rewritten = tmp_path / "rewritten"
    write_directory(rewritten, cancer().iloc[::-1], parts=2, row_group_size=128)
    rows = []
    for directory in (data, rewritten):
        _, run_dir = train_run(tmp_path, "data=parquet", f"data.path={directory}", "data.target=target", features,
                               "model=logistic_regression", name=directory.name, manager=manager)
        rows.append(json.loads((run_dir / "manifest.json").read_text())["rows"])
        assert read_metrics(run_dir)["test"]["accuracy"] > 0.85
    streamed_rows = json.loads((streamed[1] / "manifest.json").read_text())["rows"]
    assert rows[0] == rows[1] == streamed_rows


def test_a_partition_is_picklable_and_reads_its_rows_anywhere(streamed, data):
    """What a Dask worker or another process receives: a partition it reads itself."""
    from coupler import parquet
    from coupler.preprocessing import Preprocessor

    _, run_dir = streamed
    preprocessor = Preprocessor.from_state(json.loads((run_dir / "preprocessor.json").read_text()))
    dataset = parquet.open_directory(data, "target", None, None, None)
    streams = parquet.unscanned_streams(dataset, preprocessor, 0, 0.2, 0.1, "binary", [0, 1])
    partition = streams["test"].partitions()[0]
    batch, again = partition.read(), pickle.loads(pickle.dumps(partition)).read()
    assert batch.X.dtype == np.float32 and batch.X.shape[1] == len(preprocessor.feature_names())
    np.testing.assert_array_equal(batch.X, again.X)
    # the partitions of the test split hold the rows the directory read whole puts in its test split, in order
    whole, codes = dataset.materialize(0, 0.2, 0.1)
    tested = whole.X[codes == 2]
    read = np.concatenate([p.read().X for p in streams["test"].partitions()])
    np.testing.assert_allclose(read, preprocessor.transform(tested, "matrix").astype(np.float32), rtol=1e-6)


def test_what_a_directory_cannot_do_is_refused_by_name(data, manager, tmp_path):
    (tmp_path / "mixed").mkdir()
    (tmp_path / "mixed" / "notes.txt").write_text("not a table")
    cancer().to_parquet(tmp_path / "mixed" / "rows.parquet")
    with pytest.raises(DataError, match=r"1 file\(s\) in the directory are not Parquet .*\['notes.txt'\]"):
        train_run(tmp_path, "data=parquet", f"data.path={tmp_path / 'mixed'}", "data.target=target", manager=manager)
    with pytest.raises(DataError, match="data.key: no column 'id'"):
        train_run(tmp_path, "data=parquet", f"data.path={data}", "data.target=target", "data.key=id", manager=manager)
    with pytest.raises(DataError, match="data.key=target: a key splits a directory"):
        train_run(tmp_path, "data=parquet", f"data.path={tmp_path / 'mixed' / 'rows.parquet'}", "data.target=target",
                  "data.key=target", manager=manager)
    with pytest.raises(ConfigError, match="cv.folds=3 is not allowed.*0 for a streamed data set"):
        train_run(tmp_path, "data=parquet", f"data.path={data}", "data.target=target", "model=streaming_sgd",
                  "cv.folds=3", name="cv", manager=manager)
    assert not (tmp_path / "cv" / "manifest.json").exists()


def test_evaluate_finds_a_directory_given_by_a_relative_path_from_anywhere(data, manager, tmp_path, monkeypatch):
    """``data.path`` relative to where the run trained: ``coupler evaluate`` run from elsewhere reads the same rows."""
    from coupler.finished_run import FinishedRun

    monkeypatch.chdir(data.parent)
    metrics, run_dir = train_run(tmp_path, "data=parquet", f"data.path={data.name}", "data.target=target",
                                 "data.features=[mean radius,mean texture,size]", "model=streaming_sgd",
                                 manager=manager)
    monkeypatch.chdir(tmp_path)
    assert FinishedRun(run_dir, manager).evaluate()["test"] == pytest.approx(metrics["test"])


def test_linked_folders_are_read_and_every_file_must_hold_every_column_in_its_type(manager, tmp_path):
    from coupler import parquet

    frame = cancer()
    real = tmp_path / "elsewhere" / "part=1"
    real.mkdir(parents=True)
    frame.iloc[:300].to_parquet(tmp_path / "elsewhere" / "part=1" / "rows.parquet")
    (tmp_path / "table" / "part=0").mkdir(parents=True)
    frame.iloc[300:].to_parquet(tmp_path / "table" / "part=0" / "rows.parquet")
    (tmp_path / "table" / "part=1").symlink_to(real)
    (tmp_path / "table" / "part=0" / "loop").symlink_to(tmp_path / "table")  # a link back up: read once
    dataset = parquet.open_directory(tmp_path / "table", "target", None, None, None)
    assert sum(f.rows for f in dataset.fragments) == len(frame)
    frame.iloc[:10].drop(columns=["size"]).to_parquet(real / "short.parquet")
    with pytest.raises(DataError, match=r"file part=1/short.parquet has no column 'size', which the first file has"):
        parquet.open_directory(tmp_path / "table", "target", None, None, None)
    frame.iloc[:10].astype({"mean radius": "int64"}).to_parquet(real / "short.parquet")
    with pytest.raises(DataError, match=r"column 'mean radius' is int64, and double in the first file"):
        parquet.open_directory(tmp_path / "table", "target", None, None, None)


def test_a_rows_split_does_not_depend_on_its_neighbours_and_decimals_are_numbers(tmp_path):
    """A boolean or integer column reads as objects or floats in a row group that has a missing value: the row's
    hash is the same. A decimal column (Spark writes them) is a numeric feature."""
    import decimal

    import pyarrow as pa
    import pyarrow.parquet as pq

    from coupler import parquet

    rows = 60
    columns = {"flag": pa.array([i % 3 == 0 for i in range(rows)]), "count": pa.array(list(range(rows))),
               "amount": pa.array([decimal.Decimal(f"{i}.25") for i in range(rows)], pa.decimal128(10, 2)),
               "y": pa.array([i % 2 for i in range(rows)])}
    (tmp_path / "whole").mkdir()
    pq.write_table(pa.table(columns), tmp_path / "whole" / "rows.parquet")
    with_gaps = dict(columns, flag=pa.array([None] + columns["flag"].to_pylist()[1:]),
                     count=pa.array([None] + list(range(1, rows))))
    (tmp_path / "gaps").mkdir()
    pq.write_table(pa.table(with_gaps), tmp_path / "gaps" / "rows.parquet")
    codes = []
    for name in ("whole", "gaps"):
        dataset = parquet.open_directory(tmp_path / name, "y", None, None, None)
        assert dataset.categorical == ["flag"]
        frame = dataset.read(dataset.fragments[0])
        codes.append(parquet.split_codes(frame[dataset.read_columns], 0, 0.3, 0.3, None, dataset.booleans))
    np.testing.assert_array_equal(codes[0][1:], codes[1][1:])  # row 0 differs: it has the missing values


def test_a_text_target_with_more_distinct_values_than_classes_is_refused(manager, tmp_path):
    (tmp_path / "ids").mkdir()
    ids = pd.DataFrame({"x": np.arange(1100.0), "y": [f"id{i}" for i in range(1100)]})
    ids.to_parquet(tmp_path / "ids" / "a.parquet")
    with pytest.raises(DataError, match="the target 'y' holds more than 1000 distinct values that are not numbers"):
        train_run(tmp_path, "data=parquet", f"data.path={tmp_path / 'ids'}", "data.target=y", manager=manager)


@pytest.mark.parametrize("sizes, world, batch", [([131072, 3], 2, 256), ([100, 100, 100], 2, 10),
                                                 ([7, 30, 1, 64, 5], 3, 4), ([10], 4, 1)])
def test_every_rank_takes_an_equal_share_of_the_rows_and_skips_less_than_a_batch_each(sizes, world, batch):
    from coupler.streaming import ArrayPartition, RowStream

    class Uneven(RowStream):
        n_features = 1

        def partitions(self):
            starts = np.cumsum([0, *sizes])
            return [ArrayPartition(np.arange(a, b, dtype=float)[:, None], np.arange(a, b)) for a, b in
                    zip(starts, starts[1:])]

    total = sum(sizes)
    shares = [[b.y for b in Uneven().batches(batch, seed=1, buffer_rows=16, rank=r, world=world)] for r in range(world)]
    counts = {len(share) for share in shares}
    assert len(counts) == 1 and all(len(b) == batch for share in shares for b in share)
    rows = [set(np.concatenate(share).tolist()) if share else set() for share in shares]
    assert sum(map(len, rows)) == len(set().union(*rows)), "no row in two shares"
    assert sum(map(len, rows)) > total - world * (batch + 1)


def test_coupler_predict_reads_a_hive_directory_as_training_read_it(data, manager, tmp_path, coupler_cli):
    """The ``part=K`` folders are a column the run trained on: ``coupler predict RUN DIR`` reads it too."""
    _, run_dir = train_run(tmp_path, "data=parquet", f"data.path={data}", "data.target=target",
                           "model=logistic_regression", "plots=none", manager=manager)
    assert "part" in json.loads((run_dir / "manifest.json").read_text())["features"]["columns"]
    done = coupler_cli("predict", "--batch-rows", "100", str(run_dir), str(data), "out.parquet")
    assert done.rc == 0, done.err
    written = pd.read_parquet(tmp_path / "out.parquet")
    assert len(written) == 569 and set(written["part"]) == {0, 1, 2}


def test_a_regression_streams_training_split_knows_its_targets_moments_from_the_scan(data):
    """What the torch engine standardizes a regression target with, measured in the scan: no pass more."""
    from coupler import parquet
    from coupler.dataset import encode_target

    dataset = parquet.open_directory(data, "worst perimeter", None, None, None)
    found = parquet.scan(dataset, 0, 0.2, 0.1)
    preprocessor = parquet.fit_preprocessor(dataset, found, {})
    streams = parquet.streams(dataset, found, preprocessor, 0, 0.2, 0.1, "regression", [], None)
    whole, codes = dataset.materialize(0, 0.2, 0.1)
    y, _ = encode_target(whole.y[codes == 0], "regression")
    assert streams["train"].target_moments == pytest.approx((y.mean(), y.std()), rel=1e-12)
    assert parquet.streams(dataset, found, preprocessor, 0, 0.2, 0.1, "binary", [0, 1], None)["train"].target_moments \
        is None


def test_measured_predictions_keep_the_widest_type_a_batch_gives():
    """A model answering ints for one partition and floats for the next: nothing is cut to a whole number."""
    from coupler.evaluation import measure_stream
    from coupler.streaming import ArrayStream

    class Mixed:
        tasks, proba_tasks = ("regression",), ()

        def predict(self, X):
            return X[:, 0].astype(np.int64) if X[0, 0] < 3 else X[:, 0] + 0.5

    stream = ArrayStream(np.arange(6.0)[:, None], np.arange(6.0), partition_rows=3)
    for rows in (None, 6, 4, 10):
        measured, _ = measure_stream(Mixed(), stream, [], 0, "regression", rows=rows)
        np.testing.assert_array_equal(measured.prediction, [0, 1, 2, 3.5, 4.5, 5.5])
