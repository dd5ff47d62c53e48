"""Hydra's own features through ``coupler train`` (docs/configuration.md, "Hydra features"): launchers, sweepers,
logging configs, ``hydra.job.chdir``, ``--cfg``, ``--info``, ``-sc``, ``-cp``/``-cn``, ``--config-dir``, and Coupler's
checks before any job of a run or a sweep starts. Each runs the real command line; runs train the default logistic
regression on iris, the smallest run there is."""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from coupler.run_directory import read_manifest
from tests.conftest import coupler_process


def saved_config(run_dir: Path) -> dict:
    return yaml.safe_load((run_dir / "config.yaml").read_text())


def test_the_joblib_launcher_runs_a_sweep_in_two_processes_and_the_summary_collects_every_job(tmp_path):
    # a launcher that runs jobs in other processes: a subprocess, as a user starts it. Not in the test's process: the
    # jobs' results come back through cloudpickle, which rewrites the classes it sent out (the schemas' fields then
    # hold a copy of dataclasses.MISSING), and every later compose of that process fails. Not in a forked one either:
    # a forked child ends without running exit handlers, and joblib's worker processes would outlive it
    result = coupler_process("train", "-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "seed=0,1,2,3",
                             "hydra.sweep.dir=sweep", cwd=tmp_path, timeout=600)
    assert result.rc == 0, result.err
    assert "Joblib.Parallel(n_jobs=2" in result.err and "is launching 4 jobs" in result.err
    sweep = tmp_path / "sweep"
    for job in range(4):
        manifest = read_manifest(sweep / str(job))  # sealed, complete, nothing else in it
        assert manifest["seed"] == job
    summary = pd.read_csv(sweep / "summary.csv")
    assert summary["job"].tolist() == [0, 1, 2, 3] and summary["status"].tolist() == ["ok"] * 4
    assert summary["seed"].tolist() == [0, 1, 2, 3] and summary["val_accuracy"].notna().all()
    assert "sweep: 4 job(s)" in result.out and not (sweep / ".outcomes").exists()


def test_a_sweeper_chosen_by_name_runs_the_sweep(coupler_cli, tmp_path):
    result = coupler_cli("train", "-m", "hydra/sweeper=basic", "seed=0,1", "hydra.sweep.dir=sweep")
    assert result.rc == 0, result.err
    assert pd.read_csv(tmp_path / "sweep" / "summary.csv")["seed"].tolist() == [0, 1]


def test_a_search_space_in_a_config_file_is_checked_before_the_first_job(coupler_cli, tmp_path):
    # hydra.sweeper.params (Hydra 1.3's basic sweeper reads it) is checked by SweepOutcomes.on_multirun_start
    (tmp_path / "mine" / "experiment").mkdir(parents=True)
    (tmp_path / "mine" / "experiment" / "search.yaml").write_text(
        "# @package _global_\nhydra:\n  sweeper:\n    params:\n      model: logistic_regression,knm\n")
    result = coupler_cli("train", "-m", "--config-dir", "mine", "+experiment=search", "hydra.sweep.dir=sweep")
    assert result.rc == 2 and len(result.error_lines) == 1, result.err
    assert result.error_lines[0].startswith("coupler: error: hydra.sweeper.params: model=knm: unknown model 'knm'")
    assert "Did you mean 'knn'?" in result.err
    assert not (tmp_path / "sweep" / "0").exists()


def test_an_unknown_model_in_a_sweep_stops_it_before_any_job(coupler_cli, tmp_path):
    result = coupler_cli("train", "-m", "model=logistic_regression,knm", "hydra.sweep.dir=sweep")
    assert result.rc == 2 and "unknown model 'knm'" in result.err and "Did you mean 'knn'?" in result.err
    assert not (tmp_path / "sweep").exists()


def test_a_key_the_models_config_does_not_list_needs_a_plus_in_a_run_and_in_every_job_of_a_sweep(coupler_cli,
                                                                                                  tmp_path):
    for args in (["model.params.tol=1", "hydra.run.dir=run"], ["-m", "model.params.tol=1,2", "hydra.sweep.dir=sweep"]):
        result = coupler_cli("train", *args)
        assert result.rc == 2 and len(result.error_lines) == 1, result.err
        assert "lists no model.params.tol (model.params holds C, max_iter)" in result.err
        assert "add it: +model.params.tol=1" in result.err
    assert not (tmp_path / "run").exists() and not (tmp_path / "sweep").exists()
    result = coupler_cli("train", "+model.params.tol=0.001", "hydra.run.dir=run")
    assert result.rc == 0, result.err
    assert saved_config(tmp_path / "run")["model"]["params"] == {"C": 1.0, "max_iter": 1000, "tol": 0.001}


def test_disabled_job_logging_writes_no_log_and_a_sound_run(coupler_cli, tmp_path):
    result = coupler_cli("train", "hydra/job_logging=disabled", "hydra.run.dir=run")
    assert result.rc == 0, result.err
    assert "[coupler][INFO]" not in result.err and "run directory:" in result.out
    assert not (tmp_path / "run" / "train.log").exists()
    assert "train.log" not in read_manifest(tmp_path / "run")["files"]


def test_disabled_hydra_logging_silences_hydras_own_lines(coupler_cli, tmp_path):
    result = coupler_cli("train", "-m", "hydra/hydra_logging=disabled", "seed=0", "hydra.sweep.dir=sweep")
    assert result.rc == 0, result.err
    assert "[HYDRA]" not in result.err and "Launching" not in result.err
    assert "[coupler][INFO]" in result.err  # the job's own logging is another config
    read_manifest(tmp_path / "sweep" / "0")


def test_a_job_run_inside_its_directory_reads_data_from_where_it_was_started(coupler_cli, tmp_path):
    from sklearn.datasets import load_iris

    load_iris(as_frame=True).frame.to_csv(tmp_path / "iris.csv", index=False)
    data = ["data=csv", "data.target=target"]
    # hydra.job.chdir=true: the job runs in its run directory, where a relative path starts (as in any Hydra app)
    result = coupler_cli("train", "hydra.job.chdir=true", *data, "data.path=iris.csv", "hydra.run.dir=relative")
    assert result.rc == 2 and "data.path=iris.csv: no such file" in result.err
    assert not (tmp_path / "relative").exists()
    result = coupler_cli("train", "hydra.job.chdir=true", *data, "data.path=${hydra:runtime.cwd}/iris.csv",
                         "hydra.run.dir=run")
    assert result.rc == 0, result.err
    assert Path.cwd() == tmp_path  # Hydra went back
    assert saved_config(tmp_path / "run")["data"]["path"] == str(tmp_path / "iris.csv")
    assert read_manifest(tmp_path / "run")["working_directory"] == str(tmp_path / "run")
    assert coupler_cli("evaluate", "run").rc == 0


def test_cfg_job_prints_the_composed_config_and_trains_nothing(coupler_cli, tmp_path):
    result = coupler_cli("train", "--cfg", "job", "model=knn", "seed=7")
    assert result.rc == 0, result.err
    config = yaml.safe_load(result.out)
    assert config["model"] == {"name": "knn", "params": {"n_neighbors": 5, "weights": "uniform"}}
    assert config["seed"] == 7 and "hydra" not in config
    assert list(tmp_path.iterdir()) == []


def test_info_shows_the_defaults_and_each_config_directory_once(coupler_cli, tmp_path):
    result = coupler_cli("train", "--info", "defaults")
    assert result.rc == 0, result.err
    assert re.search(r"\| model/logistic_regression\s+\| model\s+\|", result.out)
    assert re.search(r"\| trainer/default\s+\| trainer\s+\|", result.out)
    (tmp_path / "mine").mkdir()
    result = coupler_cli("train", "--config-dir", str(tmp_path / "mine"), "--info", "searchpath")
    paths = re.findall(r"\| ((?:pkg|file)://\S+)", result.out)
    assert paths[:2] == ["pkg://hydra.conf", "pkg://coupler.conf"] and len(paths) == len(set(paths))
    assert f"file://{tmp_path / 'mine'}" in paths
    assert list(tmp_path.iterdir()) == [tmp_path / "mine"]


def test_hydras_completion_answers_for_coupler_train(coupler_cli, monkeypatch):
    # as Hydra's bash script asks it: COMP_LINE holds the line typed so far
    monkeypatch.setenv("COMP_LINE", "coupler-train model=kn")
    assert coupler_cli("train", "-sc", "query=bash").out.split() == ["model=knn"]
    monkeypatch.setenv("COMP_LINE", "coupler-train hydra/launcher=jo")
    assert coupler_cli("train", "-sc", "query=bash").out.split() == ["hydra/launcher=joblib"]


def test_train_help_names_the_completion_program_that_is_installed(tmp_path):
    result = coupler_process("train", "--help", cwd=tmp_path)  # a fresh interpreter (see test_cli's help test)
    programs = set(re.findall(r'eval "\$\((\S+) -sc install=bash\)"', result.out))
    assert programs == {"coupler-train"}
    assert shutil.which("coupler-train") or (Path(sys.executable).parent / "coupler-train").is_file()


def test_a_primary_config_of_the_users_that_names_coupler(coupler_cli, tmp_path):
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "exp.yaml").write_text(
        "defaults:\n  - coupler\n  - override /model: knn\n  - _self_\nseed: 3\n")
    conf = str(tmp_path / "conf")
    result = coupler_cli("train", "-cp", conf, "-cn", "exp", "hydra.run.dir=run")
    assert result.rc == 0, result.err
    config = saved_config(tmp_path / "run")
    assert config["model"]["name"] == "knn" and config["seed"] == 3 and config["trainer"]["max_epochs"] == 100
    result = coupler_cli("train", "-cp", conf, "-cn", "exp", "model=knm", "hydra.run.dir=refused")
    assert result.rc == 2 and "Did you mean 'knn'?" in result.err and not (tmp_path / "refused").exists()


def test_a_config_dir_adds_a_model_option(coupler_cli, tmp_path):
    (tmp_path / "mine" / "model").mkdir(parents=True)
    (tmp_path / "mine" / "model" / "my_lr.yaml").write_text(
        "name: logistic_regression\nparams:\n  C: 0.5\n  max_iter: 200\n")
    result = coupler_cli("train", "--config-dir", "mine", "model=my_lr", "model.params.C=2", "hydra.run.dir=run")
    assert result.rc == 0, result.err
    assert saved_config(tmp_path / "run")["model"] == {"name": "logistic_regression",
                                                       "params": {"C": 2, "max_iter": 200}}
    assert read_manifest(tmp_path / "run")["components"]["model"]["plugin"] == "sklearn"
    result = coupler_cli("train", "--config-dir", "mine", "model=my_lr", "model.params.tol=1", "hydra.run.dir=no")
    assert result.rc == 2
    assert "the config of model=my_lr lists no model.params.tol (model.params holds C, max_iter)" in result.err


def test_a_config_dir_file_extends_a_component_by_its_defaults_list(coupler_cli, tmp_path):
    """A file that lists only some parameters holds no other key; ``defaults: [NAME, _self_]`` gives it every key of
    the component's schema (Hydra's own defaults list), and the refusal says so."""
    (tmp_path / "mine" / "model").mkdir(parents=True)
    (tmp_path / "mine" / "model" / "some_lr.yaml").write_text("name: logistic_regression\nparams:\n  C: 0.5\n")
    (tmp_path / "mine" / "model" / "full_lr.yaml").write_text(
        "defaults:\n  - logistic_regression\n  - _self_\nparams:\n  C: 0.5\n")
    result = coupler_cli("train", "--config-dir", "mine", "model=some_lr", "model.params.max_iter=50", "hydra.run.dir=no")
    assert result.rc == 2 and "model/some_lr.yaml lists no model.params.max_iter, which logistic_regression has: " \
        "start that file with 'defaults: [logistic_regression, _self_]'" in result.err, result.err
    result = coupler_cli("train", "--config-dir", "mine", "model=full_lr", "model.params.max_iter=-1", "hydra.run.dir=no")
    assert result.rc == 2 and "model.params.max_iter=-1 is not allowed: a whole number >= 1" in result.err, result.err
    result = coupler_cli("train", "--config-dir", "mine", "model=full_lr", "model.params.max_iter=50",
                         "hydra.run.dir=run")
    assert result.rc == 0, result.err
    assert saved_config(tmp_path / "run")["model"] == {"name": "logistic_regression",
                                                       "params": {"C": 0.5, "max_iter": 50}}
    assert not (tmp_path / "no").exists()


def test_deleting_a_key_the_schema_has_says_to_set_it(coupler_cli, tmp_path):
    result = coupler_cli("train", "~model.params.max_iter", "hydra.run.dir=no")
    assert result.error_lines == ["coupler: error: ~model.params.max_iter: model.params.max_iter is in the schema, so "
                                  "every run has it and it cannot be deleted; set it instead: model.params.max_iter="
                                  "VALUE (coupler train --help lists it)"]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("args, fragment", [
    (["-m", "--cfg", "job"], "-m and --cfg cannot go together"),
    (["-sc", "query=tcsh"], "-sc query=tcsh: shell completion takes install=bash, install=zsh, install=fish"),
    (["-sc", "install"], "-sc install: shell completion takes"),
])
def test_what_hydra_would_refuse_with_a_traceback_is_one_line(coupler_cli, tmp_path, args, fragment):
    result = coupler_cli("train", *args)
    assert result.rc == 2 and len(result.error_lines) == 1, result.err
    assert result.error_lines[0].startswith(f"coupler: error: {fragment}") and "Traceback" not in result.err
    assert list(tmp_path.iterdir()) == []
