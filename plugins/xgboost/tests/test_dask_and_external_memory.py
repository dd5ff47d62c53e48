"""XGBoost on Dask (``model.cluster``) and from external memory (``model.external_memory``): trained on a 2-worker
cluster or from a stream's partitions, the model saves, reloads, evaluates and predicts as a single-process one, and
its quality matches the single-process run's on the same data.

Tolerance (what the tests and the README state): on the same rows, the validation log loss within 0.01 and the
accuracy within 0.02 of the single-process run. XGBoost's distributed quantile sketch merges the workers' sketches,
so on large data the histogram bins (and the trees) may differ slightly; on these small sets they are equal.

One LocalCluster (2 worker processes, 1 thread each) serves the module's ``tcp://`` tests; ``cluster=local`` starts
its own, once."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import xgboost

from coupler.components import Split
from coupler.context import RunContext
from coupler.errors import ConfigError, CouplerError
from coupler.finished_run import FinishedRun
from coupler.plugin_manager import get_plugin_manager
from coupler.streaming import ArrayPartition, ArrayStream
from coupler.testing import read_history, train_run
from coupler_xgboost.model import XGBoostModel

PARAMS = {"max_depth": 3, "eta": 0.3, "tree_method": "hist"}


@pytest.fixture(scope="module")
def scheduler():
    """The address of a running 2-worker cluster, as a user's ``dask scheduler`` would be."""
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        yield cluster.scheduler_address


def _data(rows=600, features=8, seed=0):
    from sklearn.datasets import make_classification

    X, y = make_classification(rows, features, n_informative=4, flip_y=0.05, random_state=seed)
    cut = rows * 2 // 3
    return X[:cut], y[:cut], X[cut:], y[cut:]


class _Hooks:
    def __init__(self, stop_after=None):
        self.stop_after, self.seen = stop_after, []

    def on_epoch_end(self, run, epoch, metrics):
        self.seen.append(epoch)
        if self.stop_after is not None and epoch >= self.stop_after:
            run.should_stop = True


def _fit(model, train: Split, val: Split | None, hooks=None) -> RunContext:
    run = RunContext(config={}, directory=".", hooks=hooks or _Hooks(), task="binary", classes=[0, 1])
    model.fit(train, val, run)
    return run


def _quality(model, X, y) -> tuple[float, float]:
    from sklearn.metrics import accuracy_score, log_loss

    p = model.predict_proba(X)[:, 1]
    return log_loss(y, p), accuracy_score(y, p > 0.5)


def _close(a, b):
    assert abs(a[0] - b[0]) <= 0.01 and abs(a[1] - b[1]) <= 0.02, (a, b)


# --- cluster=local, end to end -------------------------------------------------------------------------------

@pytest.mark.slow  # about 10 s: a LocalCluster of 2 processes starts, and the single-process run to compare
def test_cluster_local_trains_saves_reloads_and_predicts_like_one_process(tmp_path, coupler_cli):
    from sklearn.datasets import load_breast_cancer

    args = ("data=breast_cancer", "model=xgboost", "model.num_boost_round=60", "callbacks=[early_stopping]",
            "callbacks.early_stopping.patience=5")
    single, single_dir = train_run(tmp_path, *args, name="single")
    local, run_dir = train_run(tmp_path, *args, "model.cluster=local", name="local")
    for split in ("val", "test"):
        _close((local[split]["log_loss"], local[split]["accuracy"]), (single[split]["log_loss"], single[split]["accuracy"]))
    # every round reached the run's hooks, and early stopping (decided here, on the client) kept the best round
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert read_history(run_dir) == read_history(single_dir)
    finished = FinishedRun(run_dir, get_plugin_manager())
    assert finished.model.booster.num_boosted_rounds() == manifest["best_epoch"] + 1
    assert finished.evaluate() == local
    expected = pd.read_csv(run_dir / "predictions_test.csv", index_col=0)
    load_breast_cancer(as_frame=True).data.loc[expected.index].to_csv(tmp_path / "in.csv", index=False)
    assert coupler_cli("predict", str(run_dir), str(tmp_path / "in.csv"), str(tmp_path / "out.csv")).rc == 0
    assert list(pd.read_csv(tmp_path / "out.csv")["prediction"]) == list(expected["prediction"])


# --- tcp://: a running scheduler --------------------------------------------------------------------------------

def test_a_stream_is_read_on_the_workers_with_its_weights(scheduler, monkeypatch):
    Xt, yt, Xv, yv = _data()
    weight = np.where(yt == 1, 3.0, 1.0)  # weights that move the model: class 1 predicted more often
    single = XGBoostModel("binary", 0, PARAMS, num_boost_round=20)
    _fit(single, Split(Xt, yt, weight), Split(Xv, yv))

    def not_here(self):
        raise AssertionError("a partition was read in the client process")

    monkeypatch.setattr(ArrayPartition, "read", not_here)  # the workers (other processes) read them
    model = XGBoostModel("binary", 0, PARAMS, num_boost_round=20, cluster=f"tcp://{scheduler.split('://')[1]}")
    assert model.input_formats[0] == "stream"
    stream = ArrayStream(Xt, yt, weight, partition_rows=90)
    run = _fit(model, Split(stream, None), Split(ArrayStream(Xv, yv, partition_rows=90), None))
    assert len(run.history) == 20 and {"val_loss", "val_logloss"} <= set(run.history[0])
    _close(_quality(model, Xv, yv), _quality(single, Xv, yv))
    unweighted = XGBoostModel("binary", 0, PARAMS, num_boost_round=20)
    _fit(unweighted, Split(Xt, yt), Split(Xv, yv))
    assert model.predict(Xv).mean() > unweighted.predict(Xv).mean(), "the weights were used"


def test_a_hook_that_asks_to_stop_stops_every_worker_at_that_round(scheduler):
    Xt, yt, Xv, yv = _data(300)
    hooks = _Hooks(stop_after=4)
    model = XGBoostModel("binary", 0, PARAMS, num_boost_round=50, cluster=scheduler)
    _fit(model, Split(Xt, yt), Split(Xv, yv), hooks)
    assert hooks.seen == [0, 1, 2, 3, 4] and model.booster.num_boosted_rounds() == 5


def test_categorical_frame_columns_train_natively_on_the_cluster(scheduler):
    rng = np.random.default_rng(0)
    colour = pd.Categorical(rng.choice(["red", "green", "blue"], 450), categories=["blue", "green", "red"])
    size = rng.normal(size=450)
    y = ((colour == "red") ^ (size > 0.5)).astype(int)
    frame = pd.DataFrame({"colour": colour, "size": size})
    train, val = slice(0, 300), slice(300, None)
    models = {}
    for name, cluster in (("single", None), ("dask", scheduler)):
        models[name] = XGBoostModel("binary", 0, PARAMS, num_boost_round=20, cluster=cluster)
        _fit(models[name], Split(frame.iloc[train], y[train]), Split(frame.iloc[val], y[val]))
    assert models["dask"].booster.feature_types == ["c", "float"]
    assert models["dask"].booster.feature_names == ["colour", "size"]
    _close(_quality(models["dask"], frame.iloc[val], y[val]), _quality(models["single"], frame.iloc[val], y[val]))
    assert _quality(models["dask"], frame.iloc[val], y[val])[1] > 0.9


def test_no_scheduler_at_the_address_is_one_clear_error(monkeypatch):
    from coupler_xgboost import scale

    monkeypatch.setattr(scale, "CONNECT_TIMEOUT", "0.5s")
    Xt, yt, Xv, yv = _data(60)
    model = XGBoostModel("binary", 0, PARAMS, num_boost_round=2, cluster="tcp://127.0.0.1:9")
    with pytest.raises(CouplerError, match=r"model.cluster=tcp://127.0.0.1:9: no Dask scheduler answered"):
        _fit(model, Split(Xt, yt), Split(Xv, yv))


# --- external memory ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("task", ["binary", "regression"])
def test_external_memory_trains_from_the_partitions_as_well_as_in_memory(task, tmp_path, monkeypatch):
    import tempfile

    Xt, yt, Xv, yv = _data(900)
    if task == "regression":
        yt, yv = Xt[:, 0] * 2 + yt, Xv[:, 0] * 2 + yv
    built = []

    class Spy(xgboost.ExtMemQuantileDMatrix):
        def __init__(self, it, **kwargs):
            built.append(len(it._parts))
            super().__init__(it, **kwargs)

    monkeypatch.setattr(xgboost, "ExtMemQuantileDMatrix", Spy)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    in_memory = XGBoostModel(task, 0, PARAMS, num_boost_round=30)
    _fit(in_memory, Split(Xt, yt), Split(Xv, yv))
    model = XGBoostModel(task, 0, PARAMS, num_boost_round=30, external_memory=True)
    run = _fit(model, Split(ArrayStream(Xt, yt, partition_rows=100), None),
               Split(ArrayStream(Xv, yv, partition_rows=100), None))
    assert built == [6, 3], "train and val each through the iterator, one partition at a time"
    assert len(run.history) == 30 and not list(tmp_path.iterdir()), "the page cache is removed after training"
    if task == "binary":
        _close(_quality(model, Xv, yv), _quality(in_memory, Xv, yv))
    else:
        rmse = [float(np.sqrt(((m.predict(Xv) - yv) ** 2).mean())) for m in (model, in_memory)]
        assert abs(rmse[0] - rmse[1]) <= 0.02 * rmse[1], rmse


def test_external_memory_boosts_without_the_read_buffers_and_keeps_no_training_state(monkeypatch):
    """What external memory leaves beside XGBoost's own buffers while boosting, and after: the pages pyarrow's
    pool kept from reading the row groups are handed back once both matrices are built, before the first round;
    the model kept is the trained Booster's copy (the same trees, without the updater's per-row buffers)."""
    import pyarrow

    Xt, yt, Xv, yv = _data(300)
    events, trained = [], []

    class Pool:
        def release_unused(self):
            events.append("release")

    class Spy(xgboost.ExtMemQuantileDMatrix):
        def __init__(self, it, **kwargs):
            super().__init__(it, **kwargs)
            events.append("matrix")

    def train(*args, **kwargs):
        events.append("train")
        trained.append(real_train(*args, **kwargs))
        return trained[-1]

    real_train = xgboost.train
    monkeypatch.setattr(pyarrow, "default_memory_pool", Pool)
    monkeypatch.setattr(xgboost, "ExtMemQuantileDMatrix", Spy)
    monkeypatch.setattr(xgboost, "train", train)
    model = XGBoostModel("binary", 0, PARAMS, num_boost_round=5, external_memory=True)
    _fit(model, Split(ArrayStream(Xt, yt, partition_rows=100), None), Split(ArrayStream(Xv, yv, partition_rows=50), None))
    assert events[-4:] == ["matrix", "matrix", "release", "train"]
    assert model.booster is not trained[-1] and model.booster.num_boosted_rounds() == 5
    np.testing.assert_array_equal(model.booster.predict(xgboost.DMatrix(Xv)), trained[-1].predict(xgboost.DMatrix(Xv)))


def test_without_cluster_or_external_memory_the_model_takes_no_stream():
    assert "stream" not in XGBoostModel("binary", 0, {}, num_boost_round=1).input_formats
    assert XGBoostModel("binary", 0, {}, external_memory=True).input_formats == ("stream", "frame", "matrix")


# --- data=parquet: a directory streamed, end to end ---------------------------------------------------------------

@pytest.fixture(scope="module")
def parquet_dir(tmp_path_factory):
    from sklearn.datasets import make_classification

    X, y = make_classification(1500, 6, n_informative=4, flip_y=0.05, random_state=0)
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(6)]).assign(target=y)
    directory = tmp_path_factory.mktemp("parquet") / "rows"
    for k, rows in enumerate(np.array_split(np.arange(len(frame)), 3)):  # 3 files of 2 row groups
        (directory / f"part={k}").mkdir(parents=True)
        frame.iloc[rows].to_parquet(directory / f"part={k}" / "rows.parquet", row_group_size=250)
    return directory


def test_a_parquet_directory_trains_on_the_cluster_and_from_external_memory(parquet_dir, scheduler, tmp_path):
    args = ("data=parquet", f"data.path={parquet_dir}", "data.target=target", "model=xgboost",
            "model.num_boost_round=20")
    in_memory, _ = train_run(tmp_path, *args, name="memory")  # no stream: the directory is read whole
    for setting in ("model.external_memory=true", f"model.cluster={scheduler}"):
        results, run_dir = train_run(tmp_path, *args, setting, name=setting.split("=")[0])
        manifest = json.loads((run_dir / "manifest.json").read_text())
        assert manifest["features"]["streamed"] is True, setting
        assert len(pd.read_csv(run_dir / "history.csv")) == 20
        for split in ("val", "test"):
            _close((results[split]["log_loss"], results[split]["accuracy"]),
                   (in_memory[split]["log_loss"], in_memory[split]["accuracy"]))
        again = FinishedRun(run_dir, get_plugin_manager()).evaluate()
        assert again["test"] == pytest.approx(results["test"])


# --- bad settings, before any data ------------------------------------------------------------------------------

@pytest.mark.parametrize("settings, message", [
    ({"cluster": "tcp://host"}, r"model.cluster='tcp://host' is not allowed: null .*tcp://HOST:PORT"),
    ({"cluster": "tcp://host:70000"}, r"model.cluster='tcp://host:70000' is not allowed"),
    ({"cluster": "remote"}, r"model.cluster='remote' is not allowed"),
    ({"cluster": "local", "external_memory": True}, r"model.external_memory=true is not allowed: false with "),
    ({"cluster": "local", "params": {"tree_method": "exact"}}, r"tree_method='exact' is not allowed: hist or approx"),
    ({"cluster": "local", "params": {"booster": "gblinear"}}, r"model.params.booster='gblinear' is not allowed"),
    ({"external_memory": True, "params": {"tree_method": "approx"}}, r"tree_method='approx' is not allowed: hist"),
    ({"workers": 4}, r"model.workers=4 is not allowed: 2 \(the default\) unless model.cluster=local"),
    ({"cluster": "tcp://h:8786", "threads_per_worker": 2}, r"not a running scheduler's workers"),
])
def test_bad_settings_are_refused_naming_the_key(settings, message):
    params = {**PARAMS, **settings.pop("params", {})}
    with pytest.raises(ConfigError, match=message):
        XGBoostModel("binary", 0, params, **settings)


def test_a_bad_address_is_refused_before_the_data_is_read(coupler_cli, tmp_path):
    result = coupler_cli("train", "model=xgboost", "model.cluster=tcp://nowhere", "hydra.run.dir=run")
    assert result.rc == 2 and result.error_lines == [
        "coupler: error: model.cluster='tcp://nowhere' is not allowed: null (one process), local (a Dask LocalCluster "
        "Coupler starts) or the address of a running Dask scheduler, tcp://HOST:PORT"]
    assert "data " not in result.err and not (tmp_path / "run").exists()
