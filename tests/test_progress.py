"""Progress a person can follow (``coupler.progress``): one log line per epoch without a terminal, rate-limited by
``train.log_every`` with the first and last epoch always there, on stderr and in ``train.log``; a live bar in a
terminal; ``history.csv``'s ``seconds`` and ``metrics.json``'s ``timing``."""

from __future__ import annotations

import io
import json
import logging

import pandas as pd
import pytest

from coupler.progress import EpochProgress
from coupler.testing import read_history, read_metrics


class FakeRun:
    def __init__(self):
        self.history, self.fold = [], None

    def epoch_end(self, progress, epoch, metrics):
        self.history.append({"epoch": epoch, **metrics})
        progress.on_epoch_end(run=self, epoch=epoch, metrics=metrics)


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_without_a_terminal_a_line_every_log_every_seconds_and_always_the_first_and_last_epoch(caplog):
    clock, run = Clock(), FakeRun()
    progress = EpochProgress(log_every=5, terminal=False, clock=clock)
    progress.total = 12
    progress.on_fit_start(run=run, model=None)
    with caplog.at_level(logging.INFO, logger="coupler"):
        for epoch in range(12):  # one epoch every 2 s: lines at 2 s, 8 s (>= 5 s later), 14 s, 20 s, and the last
            clock.now += 2.0
            run.epoch_end(progress, epoch, {"train_loss": 1.0 / (epoch + 1), "val_loss": 0.5})
        progress.on_fit_end(run=run, model=None)
    lines = [r.getMessage() for r in caplog.records if r.name == "coupler"]
    assert [line.split(":")[0] for line in lines] == ["epoch 1/12", "epoch 4/12", "epoch 7/12", "epoch 10/12",
                                                      "epoch 12/12"]
    assert lines[0] == "epoch 1/12: train_loss 1, val_loss 0.5 (2 s/epoch)"
    assert [row["seconds"] for row in run.history] == [2.0] * 12


def test_log_every_zero_logs_every_epoch_and_a_fold_is_named(caplog):
    clock, run = Clock(), FakeRun()
    run.fold = (1, 2)
    progress = EpochProgress(log_every=0, terminal=False, clock=clock)
    with caplog.at_level(logging.INFO, logger="coupler"):
        for epoch in range(3):
            clock.now += 0.25
            run.epoch_end(progress, epoch, {"val_loss": 0.5})
        progress.close()
    assert [r.getMessage() for r in caplog.records] == [f"fold 1.2 epoch {n}: val_loss 0.5 (0.25 s/epoch)"
                                                        for n in (1, 2, 3)]


def test_in_a_terminal_a_live_bar_shows_the_epochs_and_their_metrics():
    pytest.importorskip("tqdm")
    stream, clock, run = io.StringIO(), Clock(), FakeRun()
    progress = EpochProgress(log_every=60, terminal=True, stream=stream, clock=clock)
    progress.total = 3
    for epoch in range(3):
        clock.now += 1
        run.epoch_end(progress, epoch, {"val_loss": 0.125 * (3 - epoch), "val_accuracy": 0.75})
    progress.close()
    bar = stream.getvalue()
    assert "3/3" in bar and "val_accuracy=0.75" in bar and "val_loss=0.125" in bar


def test_an_engine_with_its_own_bar_gets_no_second_one():
    pytest.importorskip("tqdm")
    stream, run = io.StringIO(), FakeRun()
    progress = EpochProgress(terminal=True, stream=stream)
    progress.engine_bar = True  # the torch engine's Lightning bar
    run.epoch_end(progress, 0, {"val_loss": 0.5})
    progress.close()
    assert stream.getvalue() == ""


def test_an_xgboost_run_logs_its_rounds_and_records_seconds_and_timing(coupler_cli, tmp_path):
    result = coupler_cli("train", "data=iris", "model=xgboost", "model.num_boost_round=3", "train.log_every=60",
                         "hydra.run.dir=run")
    assert result.rc == 0, result.err
    log = (tmp_path / "run" / "train.log").read_text()
    for text in (log, result.err):  # the first and the last round, even 60 s apart at most
        assert "epoch 1/3: val_loss " in text and "epoch 3/3: val_loss " in text and "epoch 2/3" not in text
    history = pd.read_csv(tmp_path / "run" / "history.csv")
    assert list(history.columns) == ["epoch", "val_loss", "val_mlogloss", "seconds"]
    assert (history["seconds"] >= 0).all() and history["seconds"].sum() > 0
    timing = read_metrics(tmp_path / "run", timing=True)["timing"]
    assert 0 < timing["fit_seconds"] <= timing["total_seconds"]
    assert "timing" not in read_metrics(tmp_path / "run"), "comparisons of two runs leave timing out"
    assert "seconds" not in read_history(tmp_path / "run").splitlines()[0]
    assert read_history(tmp_path / "run").splitlines()[1:] == [
        line.rsplit(",", 1)[0] for line in (tmp_path / "run" / "history.csv").read_text().splitlines()[1:]]


def test_each_cross_validation_fold_logs_its_first_and_last_epoch_before_its_result(coupler_cli, tmp_path):
    result = coupler_cli("train", "data=iris", "model=xgboost", "model.num_boost_round=3", "cv.folds=2",
                         "train.log_every=60", "hydra.run.dir=run")
    assert result.rc == 0, result.err
    lines = [line.split("] - ", 1)[-1] for line in (tmp_path / "run" / "train.log").read_text().splitlines()
             if " epoch " in line or "cv fold " in line]
    assert [line.split(":")[0] for line in lines] == [
        "fold 1.1 epoch 1/3", "fold 1.1 epoch 3/3", "cv fold 1/2 (repeat 1, fold 1)",
        "fold 1.2 epoch 1/3", "fold 1.2 epoch 3/3", "cv fold 2/2 (repeat 1, fold 2)"], lines


def test_a_model_without_epochs_has_timing_but_no_epoch_lines(iris_run):
    metrics = json.loads((iris_run / "metrics.json").read_text())
    assert metrics["timing"]["fit_seconds"] <= metrics["timing"]["total_seconds"]
    assert "epoch 1" not in (iris_run / "train.log").read_text()
    assert not (iris_run / "history.csv").exists()
