"""A run's flow as a plugin sees it: every lifecycle hook fires in order, callbacks observe and stop,
optimizers register, and a model's epoch history lands in the run directory."""

from __future__ import annotations

import json

import numpy as np
import pytest

from coupler import hookimpl
from coupler.components import Model
from coupler.config import compose
from coupler.errors import ConfigError
from coupler.finished_run import FinishedRun
from coupler.plugin_manager import PluginManager
from coupler.training import train
from tests.test_plugin_manager import plugin


class SoftmaxRegression(Model):
    """A real iterative model (full-batch gradient descent) that reports each epoch to the run."""

    def __init__(self, task, seed, epochs=200, lr=0.5):
        self.epochs, self.lr, self.seed, self.W = epochs, lr, seed, None

    def _proba(self, X, W):
        z = X @ W[:-1] + W[-1]
        z = np.exp(z - z.max(axis=1, keepdims=True))
        return z / z.sum(axis=1, keepdims=True)

    def fit(self, train, val, run):
        k = int(train.y.max()) + 1
        W = np.random.default_rng(self.seed).normal(0, 0.01, (train.X.shape[1] + 1, k))
        onehot = np.eye(k)[train.y]
        best = W
        for epoch in range(self.epochs):
            grad = self._proba(train.X, W) - onehot
            W = W - self.lr * np.vstack([train.X.T @ grad, grad.sum(0)]) / len(train.y)
            val_loss = -np.log(self._proba(val.X, W)[np.arange(len(val.y)), val.y] + 1e-12).mean()
            stop = run.epoch_end(epoch, {"val_loss": val_loss})
            if run.best_epoch == epoch:
                best = W
            if stop:
                break
        self.W = best if run.best_epoch is not None else W

    def predict(self, X):
        return self._proba(X, self.W).argmax(axis=1)

    def predict_proba(self, X):
        return self._proba(X, self.W)

    @property
    def supports_proba(self):
        return True

    def save(self, directory):
        np.save(directory / "weights.npy", self.W)

    def load(self, directory):
        self.W = np.load(directory / "weights.npy")


class Recorder:
    def __init__(self):
        self.events = []

    @hookimpl
    def on_run_start(self, run):
        self.events.append("run_start")

    @hookimpl
    def on_fit_start(self, run, model):
        self.events.append("fit_start")

    @hookimpl
    def on_epoch_end(self, run, epoch, metrics):
        self.events.append("epoch_end")

    @hookimpl
    def on_fit_end(self, run, model):
        self.events.append("fit_end")

    @hookimpl
    def on_evaluate_end(self, run, split, metrics):
        self.events.append(f"evaluate_end:{split}")

    @hookimpl
    def on_export(self, run, exporter, paths):
        self.events.append(f"export:{exporter}:{[p.name for p in paths]}")

    @hookimpl
    def on_run_end(self, run, metrics):
        self.events.append("run_end")


@pytest.fixture
def manager():
    pm = PluginManager()
    pm.load_builtins()
    pm.load_entry_points()
    pm.load_object("softmax", plugin(
        register_models=lambda register: register("softmax", SoftmaxRegression),
        register_optimizers=lambda register: register("plain_sgd", lambda lr=0.1: ("sgd", lr)),
    ))
    return pm


def test_lifecycle_hooks_fire_in_order(manager, tmp_path):
    recorder = Recorder()
    manager.load_object("recorder", recorder)
    config = compose(["data=wine", "model=softmax", "model.epochs=5", "exporters=[model_card]"], manager)
    train(config, tmp_path / "run", manager)
    assert recorder.events == [
        "run_start", "fit_start", *["epoch_end"] * 5, "fit_end", "evaluate_end:val", "evaluate_end:test",
        "export:model_card:['model_card.md']", "run_end",
    ]
    card = (tmp_path / "run" / "exports" / "model_card.md").read_text()
    assert card.startswith("# Model card: softmax on wine")
    assert "| metric | val | test |\n" in card and "| accuracy | " in card, "the splits' metrics, side by side"
    assert "fit_seconds |" not in card and "- fit: " in card, "the run's seconds are said once, not as a metric"


def test_early_stopping_callback_stops_and_keeps_the_best_epoch(manager, tmp_path):
    config = compose(["data=wine", "model=softmax", "model.epochs=500", "model.lr=3.0", "callbacks=[early_stopping]",
                      "callbacks.early_stopping.patience=3", "callbacks.early_stopping.min_delta=0.001"], manager)
    results = train(config, tmp_path / "run", manager)
    history = (tmp_path / "run" / "history.csv").read_text().splitlines()
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    epochs_run = len(history) - 1
    assert epochs_run < 500, "early stopping never stopped"
    assert manifest["best_epoch"] == epochs_run - 1 - 3, "the best epoch is `patience` epochs before the last"
    assert results["test"]["accuracy"] > 0.85
    # the callback is registered for one run only
    assert not [p for p in manager.hooks.get_plugins() if type(p).__name__ == "EarlyStopping"]


def test_callback_config_files_compose_under_their_own_key(manager):
    config = compose(["callbacks=[early_stopping]"], manager)
    assert config["callbacks"] == {"early_stopping": {"name": "early_stopping", "monitor": "val_loss", "patience": 10,
                                                      "mode": "min", "min_delta": 0.0}}


def test_a_top_level_key_that_is_no_setting_is_refused(manager, tmp_path):
    config = compose(["data=wine", "model=softmax", "+_group_={}"], manager)
    with pytest.raises(ConfigError, match="_group_.*wrong '# @package' header"):
        train(config, tmp_path / "run", manager)


def test_early_stopping_on_a_metric_the_engine_does_not_report_names_the_ones_it_does(manager, tmp_path):
    config = compose(["data=wine", "model=softmax", "callbacks=[early_stopping]",
                      "callbacks.early_stopping.monitor=val_acc"], manager)
    with pytest.raises(ConfigError, match="val_acc.*val_loss"):
        train(config, tmp_path / "run", manager)


def test_an_iterative_model_reloads_and_reproduces_its_metrics(manager, tmp_path):
    config = compose(["data=wine", "model=softmax", "model.epochs=50"], manager)
    results = train(config, tmp_path / "run", manager)
    assert FinishedRun(tmp_path / "run", manager).evaluate() == results


def test_registered_optimizers_are_selectable_but_refused_by_a_model_that_uses_none(manager, tmp_path):
    assert manager.get("optimizer", "plain_sgd").plugin == "softmax"
    config = compose(["data=wine", "model=softmax", "optimizer=plain_sgd"], manager)
    assert config["optimizer"] == {"name": "plain_sgd", "lr": 0.1}  # its factory's defaults: a node generated from them
    with pytest.raises(ConfigError, match="does not use an optimizer"):
        train(config, tmp_path / "run", manager)
    # before any data is read: the file does not exist, and the optimizer is what is refused
    config = compose(["data=csv", "data.path=missing.csv", "data.target=y", "model=softmax", "optimizer=plain_sgd"],
                     manager)
    with pytest.raises(ConfigError, match="does not use an optimizer"):
        train(config, tmp_path / "run2", manager)


def test_a_scheduler_hook_registers_like_the_others(manager):
    manager.load_object("sched", plugin(register_schedulers=lambda register: register("halving", lambda: None)))
    assert manager.get("scheduler", "halving").plugin == "sched"


class CountingCallback:
    def __init__(self, label="epochs"):
        self.label, self.count = label, 0

    @hookimpl
    def on_epoch_end(self, run, epoch, metrics):
        self.count += 1

    @hookimpl
    def on_run_end(self, run, metrics):
        (run.directory / f"{self.label}.txt").write_text(str(self.count))


class WeightsExporter:
    def export(self, model, run, directory):
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / "weights.json"
        path.write_text(json.dumps(model.W.tolist()))
        return [path]


def error_rate():
    from coupler.components import Metric

    return Metric("error_rate", lambda y, p, proba, k: float((y != p).mean()), ("binary", "multiclass"),
                  greater_is_better=False)


def two_moons(rows=300, noise=0.2):
    from sklearn.datasets import make_moons

    from coupler.dataset import Dataset

    X, y = make_moons(n_samples=rows, noise=noise, random_state=0)
    import pandas as pd

    return Dataset(pd.DataFrame(X, columns=["x1", "x2"]), pd.Series(y, name="moon"), name="two_moons")


def test_an_external_plugin_contributes_every_component_kind(manager, tmp_path):
    conf = tmp_path / "conf"
    (conf / "data").mkdir(parents=True)
    (conf / "data" / "noisy_moons.yaml").write_text("name: two_moons\nrows: 400\nnoise: 0.35\n")
    (conf / "callbacks").mkdir()
    (conf / "callbacks" / "counter.yaml").write_text("# @package callbacks.counter\nname: counter\nlabel: rounds\n")
    info = manager.load_object("everything", plugin(
        register_data_loaders=lambda register: register("two_moons", two_moons),
        register_metrics=lambda register: register("error_rate", error_rate),
        register_callbacks=lambda register: register("counter", CountingCallback),
        register_exporters=lambda register: register("weights", WeightsExporter),
        register_config_dirs=lambda register: register(conf),
    ))
    assert info.status == "ok", info.error
    assert info.components == {"data": ["two_moons"], "metric": ["error_rate"], "callback": ["counter"],
                               "exporter": ["weights"]}
    config = compose(["data=noisy_moons", "model=softmax", "model.epochs=20", "metrics=[error_rate,accuracy]",
                      "callbacks=[counter]", "exporters=[weights]"], manager)
    assert config["data"] == {"name": "two_moons", "rows": 400, "noise": 0.35}
    results = train(config, tmp_path / "run", manager)
    assert results["test"]["error_rate"] == pytest.approx(1 - results["test"]["accuracy"])
    assert (tmp_path / "run" / "rounds.txt").read_text() == "20"
    assert len(json.loads((tmp_path / "run" / "exports" / "weights.json").read_text())) == 3
    assert json.loads((tmp_path / "run" / "manifest.json").read_text())["rows"]["train"] == 280


def test_an_epoch_callback_on_a_model_without_epochs_is_reported(manager, tmp_path, caplog):
    # a model declaring it trains in one step is refused before data (tests/test_contracts.py); one that reports
    # epochs only with a validation split reported none without one
    config = compose(["data=wine", "model=xgboost", "model.num_boost_round=3", "split.val=0",
                      "callbacks=[early_stopping]"], manager)
    train(config, tmp_path / "run", manager)
    assert "callbacks ['early_stopping'] watch epochs, but model 'xgboost' reported none" in caplog.text


def test_threads_reloading_runs_take_turns_in_the_working_directory(tmp_path):
    # a run's relative data paths resolve in the directory it trained in: a process-wide chdir that two
    # threads must not interleave, or one would read the other's files
    import os
    import threading

    from coupler.finished_run import working_directory

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    inside, release, seen = threading.Event(), threading.Event(), {}

    def first():
        with working_directory(str(tmp_path / "a")):
            inside.set()
            release.wait(10)
            seen["first"] = os.getcwd()

    def second():
        with working_directory(str(tmp_path / "b")):
            seen["second"] = os.getcwd()

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    threads[0].start()
    assert inside.wait(10)
    threads[1].start()
    threads[1].join(0.3)
    assert "second" not in seen  # waits for the first thread to leave, instead of moving it to b
    release.set()
    for thread in threads:
        thread.join(10)
    assert seen == {"first": str((tmp_path / "a").resolve()), "second": str((tmp_path / "b").resolve())}
