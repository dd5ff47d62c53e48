"""The Optuna search through ``coupler train -m search=NAME``: the record of a study, pruning through the epoch
events, a study continued after its worker was killed, two workers on one study, and bad input refused before
any trial. Each trains logistic regression on iris (a trial: about 0.3 s) or a few XGBoost rounds."""

from __future__ import annotations

import csv
import json
import os
import subprocess
from pathlib import Path

import optuna
import pytest
import yaml

from coupler.errors import RunPruned
from coupler_optuna.study import open_storage

SEARCH = ("-m", "search=logistic_regression", "hydra.sweep.dir=sweep")


def _trials(sweep: Path) -> list[dict]:
    with open(sweep / "trials.csv") as handle:
        return list(csv.DictReader(handle))


def test_a_search_records_its_trials_and_its_best_run(coupler_cli, tmp_path):
    result = coupler_cli("train", *SEARCH, "search.n_trials=2", "search.sampler=random", "search.refit=true")
    assert result.rc == 0, result.err
    sweep = tmp_path / "sweep"
    trials = _trials(sweep)
    assert [t["number"] for t in trials] == ["0", "1"] and {t["state"] for t in trials} == {"COMPLETE"}
    assert all("model.params.C=" in t["params"] and Path(t["run_directory"], "manifest.json").is_file()
               for t in trials)
    best = max(trials, key=lambda t: float(t["value"]))
    assert f"best run: {best['run_directory']}" in result.out
    # the value is the validation score; a trial never reads the test rows: no test metrics or predictions
    metrics = json.loads(Path(best["run_directory"], "metrics.json").read_text())
    assert float(best["value"]) == metrics["val"]["accuracy"] and metrics["test"] == {}
    assert not any(Path(t["run_directory"], "predictions_test.csv").exists() for t in trials)
    summary = list(csv.DictReader(open(sweep / "summary.csv")))
    assert all(row["test_accuracy"] == "" for row in summary if row["search.trial"])  # only the refit has one
    # after the study the best run alone is tested, as coupler evaluate tests it; its sealed directory unchanged
    evaluated = coupler_cli("evaluate", best["run_directory"], "--json")
    assert evaluated.rc == 0, evaluated.err
    test = json.loads(evaluated.out)["test"]
    record = json.loads((sweep / "best.json").read_text())
    assert record["run_directory"] == best["run_directory"] and record["test"] == test and test["accuracy"] > 0.5
    assert f"best run test: accuracy={test['accuracy']:.6g}" in result.out
    assert json.loads(Path(best["run_directory"], "metrics.json").read_text()) == metrics
    overrides = yaml.safe_load((sweep / "best.yaml").read_text())
    assert "model=logistic_regression" in overrides and not any(o.startswith("search") for o in overrides)
    assert [o for o in overrides if o.startswith("model.params.C=")] == [best["params"].split()[-1]]
    # best.yaml is ready for coupler train: the same configuration, the same validation score
    again = coupler_cli("train", *overrides, "hydra.run.dir=again")
    assert again.rc == 0, again.err
    assert json.loads((tmp_path / "again" / "metrics.json").read_text())["val"] == metrics["val"]
    # refit: the best configuration trained on train+val (no validation rows), tested once
    refit = json.loads((sweep / "refit" / "metrics.json").read_text())
    assert refit["val"] == {} and refit["test"] and "refit on train+val test:" in result.out
    assert record["refit"]["test"] == refit["test"]


def _search_file(tmp_path: Path, name: str, space: dict) -> str:
    """A search file of the user's in ``conf/search/NAME.yaml``; returns the ``--config-dir`` argument."""
    directory = tmp_path / "conf" / "search"
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{name}.yaml").write_text(yaml.safe_dump({
        "defaults": ["schema", {"override /hydra/sweeper@_global_.hydra.sweeper": "coupler_optuna"}, "_self_"],
        "space": space}))
    return f"--config-dir={tmp_path / 'conf'}"


def test_a_component_choice_samples_each_option_with_its_own_parameters(coupler_cli, tmp_path):
    config_dir = _search_file(tmp_path, "choice", {"model": {"choices": {
        "logistic_regression": {"model.params.C": {"low": 0.1, "high": 10.0, "log": True}},
        "knn": {"model.params.n_neighbors": {"low": 1, "high": 9}}}}})
    result = coupler_cli("train", config_dir, "-m", "search=choice", "search.n_trials=3", "search.sampler=random",
                         "hydra.sweep.dir=sweep")
    assert result.rc == 0, result.err
    for trial in _trials(tmp_path / "sweep"):
        params = trial["params"].split()
        model = params[0]
        assert model in ("model=logistic_regression", "model=knn")
        key = "model.params.C=" if model == "model=logistic_regression" else "model.params.n_neighbors="
        assert [p for p in params[1:] if "=" in p][0].startswith(key), params


class _Run:
    def __init__(self, node, fold=None):
        self.config = {"search": node, "model": {"name": "xgboost"}}
        self.should_stop = False
        self.fold = fold


def test_an_epoch_trailing_the_finished_trials_stops_the_run_and_marks_it_pruned(tmp_path):
    from coupler_optuna import plugin

    url = str(tmp_path / "study.journal")
    study = optuna.create_study(storage=open_storage(url), study_name="s", direction="maximize")
    for _ in range(2):  # two finished trials whose validation loss was 0.1 at every epoch
        finished = study.ask()
        for epoch in range(3):
            finished.report(-0.1, epoch)
        study.tell(finished, 0.9)
    trial = study.ask()
    run = _Run({"trial": trial.number, "storage": url, "study_name": "s", "pruner": "median", "metric": "accuracy"})
    plugin.on_epoch_end(run=run, epoch=0, metrics={"val_loss": 0.5})  # warm-up epoch: never pruned
    assert not run.should_stop
    plugin.on_epoch_end(run=run, epoch=1, metrics={"val_loss": 0.5})
    assert run.should_stop
    with pytest.raises(RunPruned, match="pruned after epoch 1"):
        plugin.on_fit_end(run=run, model=None)
    # a better trial goes on
    good = _Run({**run.config["search"], "trial": study.ask().number})
    plugin.on_epoch_end(run=good, epoch=1, metrics={"val_loss": 0.05})
    assert not good.should_stop
    # a cross-validation fold's epochs are not the trial's: each fold repeats the steps, and the trial's value is the
    # folds' mean, so a fold is never reported or stopped (run.fold is set for a fold's fit)
    fold = _Run({**run.config["search"], "trial": study.ask().number}, fold=(1, 2))
    for epoch in range(3):
        plugin.on_epoch_end(run=fold, epoch=epoch, metrics={"val_loss": 0.5})
    assert not fold.should_stop
    plugin.on_fit_end(run=fold, model=None)


def test_a_study_made_again_at_the_same_path_gets_its_own_reports(tmp_path):
    # a job's process keeps the study it opened for its next trials; a journal replaced since must not take the
    # new trial's epochs into the old study's trial of the same number
    from coupler_optuna import plugin

    url = str(tmp_path / "study.journal")
    for value in (0.25, 0.75):
        Path(url).unlink(missing_ok=True)
        study = optuna.create_study(storage=open_storage(url), study_name="s", direction="maximize")
        trial = study.ask()
        plugin.on_epoch_end(run=_Run({"trial": trial.number, "storage": url, "study_name": "s", "pruner": "none",
                                      "metric": "accuracy"}), epoch=0, metrics={"val_accuracy": value})
        study.tell(trial, value)
        fresh = optuna.load_study(study_name="s", storage=open_storage(url)).trials
        assert [t.intermediate_values for t in fresh] == [{0: value}]


def test_a_pruned_xgboost_trial_ends_pruned_without_a_run_directory(coupler_cli, tmp_path):
    # eta 0.001 learns almost nothing in a round: its second round trails the first two trials' (eta 0.3)
    fast = _search_file(tmp_path, "fast", {"model.params.eta": {"low": 0.3, "high": 0.3}})
    common = ("model=xgboost", "data=breast_cancer", "model.num_boost_round=3", "search.study_name=eta",
              "hydra.sweep.dir=sweep")
    first = coupler_cli("train", fast, "-m", "search=fast", *common, "search.n_trials=2")
    assert first.rc == 0, first.err
    slow = _search_file(tmp_path, "slow", {"model.params.eta": {"low": 0.001, "high": 0.001}})
    result = coupler_cli("train", slow, "-m", "search=slow", *common, "search.n_trials=3")
    assert result.rc == 0, result.err
    trials = _trials(tmp_path / "sweep")
    assert [t["state"] for t in trials] == ["COMPLETE", "COMPLETE", "PRUNED"]
    assert "trial 2 pruned after epoch 1" in result.err and not (tmp_path / "sweep" / "2").exists()


def _dead_pid() -> int:
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


class _Killed(SystemExit):
    """What the kill test raises where a SIGKILL would end the process: after trial 1 ran, before it was told."""


def test_a_rerun_of_the_same_command_continues_a_study_whose_worker_was_killed(coupler_cli, tmp_path, monkeypatch):
    from coupler_optuna import search, study

    command = ("train", "-m", "search=logistic_regression", "search.n_trials=3")  # no hydra.sweep.dir
    tell = search._tell

    def killed_at_trial_1(plan, trial, result):
        if trial.number == 1:
            raise _Killed(137)
        tell(plan, trial, result)

    with monkeypatch.context() as patch:  # the process that the kill ends: its pid is gone on the rerun
        patch.setattr(study, "worker_id", lambda: f"{os.uname().nodename}:{_dead_pid()}")
        patch.setattr(search, "_tell", killed_at_trial_1)
        first = coupler_cli(*command)
    assert first.rc == 137, first.err
    sweep = tmp_path / "multirun" / "search" / "logistic_regression"  # one per study, not a timestamp
    assert "rerun the same command to continue it" in first.err
    result = coupler_cli(*command)
    assert result.rc == 0, result.err
    trials = _trials(sweep)
    assert [(t["number"], t["state"]) for t in trials] == [("0", "COMPLETE"), ("1", "FAIL"), ("2", "COMPLETE"),
                                                            ("3", "COMPLETE")]
    assert "trial(s) [1] were left running by a worker that is gone" in result.err
    assert trials[2]["params"] != trials[0]["params"]  # the continued study draws anew, not the first draws again
    # once more: the study holds its trials and its record; said, and nothing run, added or rewritten
    before = {path: path.read_bytes() for path in sweep.rglob("*") if path.is_file()}
    again = coupler_cli(*command)
    assert again.rc == 0, again.err
    assert "study 'logistic_regression' already holds its 3 trial(s) (search.n_trials=3): nothing to run" in again.out
    assert {path: path.read_bytes() for path in sweep.rglob("*") if path.is_file()} == before
    # another experiment with the same search finds this study by its default directory: refused, nothing written
    other = coupler_cli(*command, "seed=1")
    assert other.rc == 2, (other.out, other.err)
    assert len(other.err.strip().splitlines()) == 1, other.err
    assert ("study 'logistic_regression' in " in other.err and "was started by another command: this one gives "
            "seed=1 (not in its first command)" in other.err)
    assert {path: path.read_bytes() for path in sweep.rglob("*") if path.is_file()} == before


def test_two_workers_share_one_study_without_losing_or_repeating_a_trial(coupler_cli, tmp_path):
    result = coupler_cli("train", *SEARCH, "search.n_trials=3", "search.n_jobs=2")
    assert result.rc == 0, result.err
    trials = _trials(tmp_path / "sweep")
    assert [t["number"] for t in trials] == ["0", "1", "2"] and {t["state"] for t in trials} == {"COMPLETE"}
    assert len({t["run_directory"] for t in trials}) == 3
    assert "sweep: 3 job(s)" in result.out  # the summary counts the worker's trials too
    # a second command on the same storage (another machine, say) joins the study: it runs what is left
    more = coupler_cli("train", *SEARCH, "search.n_trials=5", f"search.storage={tmp_path / 'sweep' / 'study.journal'}",
                       "hydra.sweep.dir=elsewhere")
    assert more.rc == 0, more.err
    study = optuna.load_study(study_name="logistic_regression",
                              storage=open_storage(str(tmp_path / "sweep" / "study.journal")))
    assert [t.number for t in study.trials] == list(range(5))
    assert [Path(t.user_attrs["directory"]).parent.name for t in study.trials] == ["sweep"] * 3 + ["elsewhere"] * 2


C = {"model.params.C": {"low": 0.1, "high": 1.0}}


@pytest.mark.parametrize(("space", "override", "message"), [
    ({}, "seed=0", "search.space is empty"),
    ({"model.params.C": {"low": 10, "high": 1}}, "seed=0", "search.space.model.params.C: low=10 is above high=1; swap"),
    ({"model.params.nope": {"low": 1, "high": 2}}, "seed=0", "lists no model.params.nope"),
    ({"model.params.C": {"low": 0.0, "high": 1.0}}, "seed=0", "model.params.C=0.0 is not allowed"),
    (C, "search.sampler=annealing", "search.sampler='annealing' is not allowed"),
    (C, "search.pruner=asha", "search.pruner='asha' is not allowed"),
    ({**C, "hydra.job.chdir": [True, False]}, "seed=0", "Hydra's keys cannot be searched"),
], ids=["empty", "low>high", "unknown-key", "outside-schema", "sampler", "pruner", "hydra-key"])
def test_bad_search_input_is_one_line_before_any_trial(coupler_cli, tmp_path, space, override, message):
    result = coupler_cli("train", _search_file(tmp_path, "bad", space), "-m", "search=bad", override,
                         "hydra.sweep.dir=sweep")
    assert result.rc == 2, (result.out, result.err)
    assert message in result.err and len(result.err.strip().splitlines()) == 1, result.err
    assert not (tmp_path / "sweep" / "0").exists()


class _Worker:
    def __init__(self, pid, status):
        self.pid, self.status = pid, status

    def wait(self):
        return self.status


def test_a_worker_that_failed_is_reported(caplog):
    from coupler_optuna.search import _wait_for

    with caplog.at_level("ERROR", logger="coupler.search"):
        _wait_for([_Worker(101, 0), _Worker(102, 2)])
    assert [r.getMessage() for r in caplog.records] == [
        "search worker 2 (pid 102) exited with status 2 (its error is above); the study went on without it"]


def test_a_grid_search_stops_when_every_combination_ran(coupler_cli, tmp_path):
    grid = _search_file(tmp_path, "grid", {"model.params.C": [0.1, 1.0]})
    result = coupler_cli("train", grid, "-m", "search=grid", "search.sampler=grid", "search.n_trials=10",
                         "hydra.sweep.dir=sweep")
    assert result.rc == 0, result.err
    assert sorted(t["params"] for t in _trials(tmp_path / "sweep")) == ["model.params.C=0.1", "model.params.C=1.0"]


def test_a_new_study_in_a_sweep_directory_holding_another_is_refused_before_it_writes(coupler_cli, tmp_path):
    first = coupler_cli("train", *SEARCH, "search.n_trials=1")
    assert first.rc == 0, first.err
    sweep = tmp_path / "sweep"
    before = {path: path.read_bytes() for path in sweep.iterdir() if path.is_file()}
    assert {"trials.csv", "summary.csv", "study.journal", "search.json"} <= {path.name for path in before}
    result = coupler_cli("train", *SEARCH, "search.n_trials=1", "search.study_name=other")
    assert result.rc == 2, (result.out, result.err)
    assert len(result.err.strip().splitlines()) == 1, result.err
    assert ("already holds study 'logistic_regression'; continue it with search.study_name=logistic_regression, "
            "or choose another hydra.sweep.dir") in result.err
    # nothing of the first study's is overwritten, no study 'other' is added to its journal
    assert {path: path.read_bytes() for path in sweep.iterdir() if path.is_file()} == before
    assert not (sweep / "1").exists()


@pytest.mark.parametrize(("storage", "message"), [
    ("user.csv", "is a file that is not an Optuna journal"),
    ("missing/x.journal", "missing does not exist"),
], ids=["not-a-journal", "missing-directory"])
def test_a_storage_that_cannot_hold_the_study_is_one_line_before_any_trial(coupler_cli, tmp_path, storage,
                                                                          message):
    user = tmp_path / "user.csv"
    user.write_text("a,b\n1,2\n")
    result = coupler_cli("train", *SEARCH, f"search.storage={tmp_path / storage}")
    assert result.rc == 2, (result.out, result.err)
    assert len(result.err.strip().splitlines()) == 1, result.err
    assert f"search.storage={tmp_path / storage}: " in result.err and message in result.err
    assert "allowed: an Optuna journal file" in result.err
    assert user.read_text() == "a,b\n1,2\n" and not (tmp_path / "missing").exists()
    assert not (tmp_path / "sweep" / "0").exists()


def test_a_rerun_of_a_study_where_no_trial_completed_says_there_is_nothing_to_refit(coupler_cli, tmp_path):
    config_dir = _search_file(tmp_path, "hopeless", {"model.params.n_neighbors": {"low": 500, "high": 600}})
    command = ("train", config_dir, "-m", "data=iris", "model=knn", "search=hopeless", "search.n_trials=1",
               "search.refit=true")
    coupler_cli(*command)  # the one trial fails: more neighbours than training rows
    result = coupler_cli(*command)
    assert "already holds its 1 trial(s)" in result.out and "no trial completed; nothing to refit" in result.out, \
        result.err[-2000:]
    assert "Traceback" not in result.err
