"""``tracking=mlflow``, read back through ``MlflowClient`` from the SQLite store a run made in its working directory.

MLflow's import and a new store's tables cost seconds of CPU: one module-scoped working directory holds one XGBoost
run (3 rounds) and one search of two trials (logistic regression on iris), both trained in this process through the
CLI and logged by this process's background logger (``flush`` waits for it), and every test reads them. One test
trains in a process of its own, whose logger outlives it; one slow test starts a real ``mlflow server``."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from coupler.testing import cli_in_this_process
from coupler_mlflow.plugin import redact
from coupler_mlflow.recorder import CUT, MAX_PARAM_VALUE, _finish_parent, param_value
from coupler_mlflow.tracker import flat_config, flush, git_commit


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """A working directory holding one tracked XGBoost run (``run``) and one tracked search (``sweep``)."""
    cwd = tmp_path_factory.mktemp("mlflow")
    previous = os.getcwd()
    os.chdir(cwd)
    try:
        assert cli_in_this_process("train", "model=xgboost", "model.num_boost_round=3", "tracking=[mlflow]",
                                   "hydra.run.dir=run") == 0
        assert cli_in_this_process("train", "-m", "search=logistic_regression", "search.n_trials=2",
                                   "search.sampler=random", "hydra.sweep.dir=sweep", "tracking=[mlflow]",
                                   "tracking.mlflow.model=false", "tracking.mlflow.experiment=search") == 0
        flush()
    finally:
        os.chdir(previous)
    return cwd


@pytest.fixture(scope="module")
def store(workdir):
    from mlflow.tracking import MlflowClient

    assert (workdir / "mlflow.db").is_file()  # the default store: in the directory the command started in
    return MlflowClient(f"sqlite:///{workdir / 'mlflow.db'}")


@pytest.fixture(scope="module")
def xgboost_run(store):
    (found,) = store.search_runs([store.get_experiment_by_name("coupler").experiment_id])
    return found


def test_the_run_logs_the_flattened_config_and_each_rounds_and_the_final_metrics(workdir, store, xgboost_run):
    assert xgboost_run.info.status == "FINISHED" and xgboost_run.info.run_name == "run"
    params = xgboost_run.data.params
    assert params["model.name"] == "xgboost" and params["model.num_boost_round"] == "3"
    assert params["split.val"] == "0.2" and params["plugins.disable"] == "[]"
    assert not [k for k in params if k.startswith("tracking")]  # where a run is logged is no parameter of it
    history = store.get_metric_history(xgboost_run.info.run_id, "val_loss")
    assert [m.step for m in sorted(history, key=lambda m: m.step)] == [0, 1, 2]
    metrics = json.loads((workdir / "run" / "metrics.json").read_text())
    assert xgboost_run.data.metrics["test_accuracy"] == pytest.approx(metrics["test"]["accuracy"])
    assert xgboost_run.data.metrics["val_log_loss"] == pytest.approx(metrics["val"]["log_loss"])


def test_the_run_is_tagged_with_the_data_fingerprint_and_the_versions_and_no_commit_outside_git(workdir, xgboost_run):
    manifest = json.loads((workdir / "run" / "manifest.json").read_text())
    tags = xgboost_run.data.tags
    assert tags["coupler.data_fingerprint"] == manifest["data_fingerprint"]
    assert tags["coupler.version.coupler-xgboost"] == manifest["libraries"]["coupler-xgboost"]
    assert tags["coupler.version.coupler-mlflow"] and tags["coupler.run_dir"] == str((workdir / "run").resolve())
    assert "mlflow.source.git.commit" not in tags  # the working directory is no git repository; the run went on


def test_the_sealed_run_directory_is_logged_and_the_pyfunc_predicts_as_the_run_does(workdir, store, xgboost_run,
                                                                                    tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # whatever MLflow's loader writes where it runs stays out of the repository
    import mlflow.pyfunc
    from sklearn.datasets import load_iris

    from coupler import FinishedRun

    run_id = xgboost_run.info.run_id
    logged = {a.path for a in store.list_artifacts(run_id, "run")}
    assert {"run/manifest.json", "run/metrics.json", "run/model", "run/train.log"} <= logged
    assert "run/.coupler.lock" not in logged
    rows = load_iris(as_frame=True).data.sample(6, random_state=0)
    assert "model/python_model.pkl" not in {a.path for a in store.list_artifacts(run_id, "model")}  # code, no pickle
    model = mlflow.pyfunc.load_model(f"{xgboost_run.info.artifact_uri}/model")
    run = FinishedRun(workdir / "run")
    assert list(model.predict(rows)) == list(run.predict(rows))
    assert model.predict(rows, params={"proba": True}).round(6).equals(run.predict_proba(rows).round(6))


def test_a_search_is_a_parent_run_with_a_child_per_trial(workdir, store):
    runs = store.search_runs([store.get_experiment_by_name("search").experiment_id])
    (parent,) = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(runs) == 3 and sorted(r.info.run_name for r in children) == ["0", "1"]
    assert parent.data.tags["coupler.sweep_dir"] == str((workdir / "sweep").resolve())
    assert {r.info.status for r in runs} == {"FINISHED"}
    assert all("val_accuracy" in r.data.metrics and "test_accuracy" not in r.data.metrics for r in children)


def test_a_server_that_does_not_answer_is_one_error_line_before_any_data(coupler_cli, tmp_path):
    uri = f"http://127.0.0.1:{_free_port()}"
    result = coupler_cli("train", "tracking=[mlflow]", f"tracking.mlflow.uri={uri}", "hydra.run.dir=run")
    assert result.rc == 2
    (line,) = result.error_lines
    assert line.startswith(f"coupler: error: tracking.mlflow.uri={uri}: no MLflow server answers there")
    assert "mlflow server --host" in line and "data iris" not in result.err
    assert not (tmp_path / "run").exists()


def test_a_server_uri_holding_credentials_is_refused_without_showing_them(coupler_cli, tmp_path):
    result = coupler_cli("train", "tracking=[mlflow]", "tracking.mlflow.uri=http://user:s3cret@127.0.0.1:9",
                         "hydra.run.dir=run")
    assert result.rc == 2 and "s3cret" not in result.err and "user:" not in result.err
    (line,) = result.error_lines
    assert line.startswith("coupler: error: tracking.mlflow.uri=http://***@127.0.0.1:9: the URI holds a user")
    assert "MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD (or MLFLOW_TRACKING_TOKEN)" in line
    assert "data iris" not in result.err and not (tmp_path / "run").exists()


def test_uris_are_shown_with_their_userinfo_redacted():
    assert redact("http://user:s3cret@host:5000/x?y=1") == "http://***@host:5000/x?y=1"
    assert redact("https://token@host") == "https://***@host"
    assert redact("postgresql://u:p@db/mlflow") == "postgresql://***@db/mlflow"
    assert redact("http://127.0.0.1:5000") == "http://127.0.0.1:5000"
    assert redact("sqlite:////tmp/mlflow.db") == "sqlite:////tmp/mlflow.db"


def test_the_parent_run_ends_only_when_no_child_runs(workdir, store):
    experiment = store.get_experiment_by_name("search").experiment_id
    runs = store.search_runs([experiment])
    (parent,) = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    first, second = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    try:
        store.update_run(parent.info.run_id, status="RUNNING")
        store.update_run(second.info.run_id, status="RUNNING")  # one job still trains when the first ends
        _finish_parent(store, experiment, parent.info.run_id)
        assert store.get_run(parent.info.run_id).info.status == "RUNNING"
        store.set_terminated(second.info.run_id, "FINISHED")  # the last job ends
        _finish_parent(store, experiment, parent.info.run_id)
        assert store.get_run(parent.info.run_id).info.status == "FINISHED"
    finally:
        for run in (parent, second):
            store.set_terminated(run.info.run_id, "FINISHED")


def test_long_values_are_cut_to_mlflows_limit_and_nested_keys_flattened():
    long = "x" * (MAX_PARAM_VALUE + 10)
    assert param_value("short") == "short" and len(param_value(long)) == MAX_PARAM_VALUE
    assert param_value(long).endswith(CUT)
    flat = flat_config({"model": {"params": {"C": 1.0}, "name": "svm"}, "metrics": {}, "seed": None,
                        "tracking": {"mlflow": {"uri": "http://user:secret@host"}}})
    assert flat == {"model.params.C": "1.0", "model.name": "svm", "metrics": "{}", "seed": "null"}


def test_the_git_commit_is_read_from_the_repository_and_none_without_one(tmp_path):
    commit = "0123456789abcdef0123456789abcdef01234567"
    (tmp_path / "repo" / ".git" / "refs" / "heads").mkdir(parents=True)
    (tmp_path / "repo" / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (tmp_path / "repo" / ".git" / "refs" / "heads" / "main").write_text(commit + "\n")
    (tmp_path / "repo" / "sub").mkdir()
    assert git_commit(tmp_path / "repo" / "sub") == commit
    (tmp_path / "repo" / ".git" / "refs" / "heads" / "main").unlink()
    (tmp_path / "repo" / ".git" / "packed-refs").write_text(f"# pack-refs\n{commit} refs/heads/main\n")
    assert git_commit(tmp_path / "repo") == commit
    (tmp_path / "repo" / ".git" / "HEAD").write_text("ref: refs/heads/new\n")  # a branch without a commit
    assert git_commit(tmp_path / "repo") is None
    assert git_commit(tmp_path / "elsewhere") is None


@pytest.mark.slow
def test_a_run_is_tracked_on_a_real_mlflow_server(workdir, coupler_cli, tmp_path):
    """The server's store is the module's database, whose tables exist already (a new one costs seconds of CPU)."""
    from mlflow.tracking import MlflowClient

    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", f"sqlite:///{workdir / 'mlflow.db'}",
         "--artifacts-destination", str(tmp_path / "artifacts"), "--host", "127.0.0.1", "--port", str(port),
         "--workers", "1"], cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        # its own process group: the server starts uvicorn in a process of its own, which outlives a killed server;
        # no job runner (MLflow's background jobs, a dozen more processes)
        start_new_session=True, env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"})
    try:
        uri = f"http://127.0.0.1:{port}"
        _wait_for(uri, server, seconds=90)
        result = coupler_cli("train", "tracking=[mlflow]", f"tracking.mlflow.uri={uri}", "tracking.mlflow.model=false",
                             "tracking.mlflow.experiment=server", "hydra.run.dir=run")
        assert result.rc == 0, result.err
        flush()
        client = MlflowClient(uri)
        (run,) = client.search_runs([client.get_experiment_by_name("server").experiment_id])
        assert run.info.status == "FINISHED" and run.data.params["model.name"] == "logistic_regression"
        assert "test_accuracy" in run.data.metrics
        assert "run/manifest.json" in {a.path for a in client.list_artifacts(run.info.run_id, "run")}
        assert not (tmp_path / "mlflow.db").exists()  # the server's store, not the local default
    finally:
        os.killpg(server.pid, signal.SIGKILL)  # the server and the uvicorn process it started
        server.wait(timeout=30)


def _wait_for(uri: str, server: subprocess.Popen, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert server.poll() is None, f"mlflow server exited with {server.returncode}"
        try:
            urllib.request.urlopen(f"{uri}/health", timeout=2).close()
            return
        except OSError:
            time.sleep(0.5)
    pytest.fail(f"mlflow server did not answer at {uri} within {seconds} s")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_a_run_that_fails_after_it_started_ends_failed_with_its_error(workdir, store, monkeypatch):
    monkeypatch.chdir(workdir)
    (workdir / "broken.csv").write_text("a,b\n1,2\n3,4\n")
    assert cli_in_this_process("train", "data=csv", "data.path=broken.csv", "data.target=label", "tracking=[mlflow]",
                               "tracking.mlflow.experiment=failed", "hydra.run.dir=failed") == 2
    flush()
    (run,) = store.search_runs([store.get_experiment_by_name("failed").experiment_id])
    assert run.info.status == "FAILED"
    assert run.data.tags["coupler.error"].startswith("DataError: data.target=label: no such column")


def test_a_synchronous_run_is_complete_in_mlflow_when_the_run_returns(workdir, store, monkeypatch):
    import coupler_mlflow.tracker as tracker

    def no_background(*args):
        raise AssertionError("a synchronous run started the background logger")

    monkeypatch.setattr(tracker, "background_logger", no_background)
    monkeypatch.chdir(workdir)
    assert cli_in_this_process("train", "tracking=[mlflow]", "tracking.mlflow.synchronous=true",
                               "tracking.mlflow.experiment=synchronous", "hydra.run.dir=synchronous") == 0
    (run,) = store.search_runs([store.get_experiment_by_name("synchronous").experiment_id])  # no flush()
    assert run.info.status == "FINISHED" and "test_accuracy" in run.data.metrics
    assert "model/MLmodel" in {a.path for a in store.list_artifacts(run.info.run_id, "model")}


def test_the_background_logger_is_detached_and_a_killed_one_is_said_and_replaced(workdir, store, monkeypatch, caplog):
    import coupler_mlflow.tracker as tracker

    monkeypatch.chdir(workdir)
    monkeypatch.setattr(tracker, "_logger", None)
    arguments = ["train", "tracking=[mlflow]", "tracking.mlflow.model=false", "tracking.mlflow.artifacts=false",
                 "tracking.mlflow.experiment=replaced"]
    assert cli_in_this_process(*arguments, "hydra.run.dir=first") == 0
    flush()
    first = tracker._logger
    assert first.process.wait(timeout=30) == 0 and first.pid not in (None, first.process.pid)  # no child of ours
    os.kill(first.pid, signal.SIGKILL)
    with caplog.at_level("WARNING", logger="coupler"):
        flush()
    assert "tracking=mlflow: the background logger has ended" in caplog.text
    assert cli_in_this_process(*arguments, "hydra.run.dir=second") == 0  # a new logger
    flush()
    assert tracker._logger is not first and not tracker._logger.ended
    runs = store.search_runs([store.get_experiment_by_name("replaced").experiment_id])
    assert {r.info.run_name: r.info.status for r in runs} == {"first": "FINISHED", "second": "FINISHED"}


def test_a_run_whose_directory_is_gone_before_its_end_is_logged_ends_failed(workdir, store, tmp_path):
    from coupler_mlflow.recorder import Recorder

    warnings = []
    recorder = Recorder(warn=lambda directory, message: warnings.append(message))
    uri = f"sqlite:///{workdir / 'mlflow.db'}"
    recorder.apply({"event": "start", "key": "k", "uri": uri, "experiment": "gone", "directory": str(tmp_path / "run"),
                    "cwd": str(workdir), "sweep": None, "params": {"model.name": "knn"}, "commit": None})
    recorder.apply({"event": "finish", "key": "k", "cv": {}, "step": 0, "timestamp": 0, "artifacts": True,
                    "model": True})
    (run,) = store.search_runs([store.get_experiment_by_name("gone").experiment_id])
    assert run.info.status == "FAILED" and "FileNotFoundError" in run.data.tags["coupler.error"]
    assert "logging the run's end" in warnings[0] and not recorder.runs


def test_store_uris_are_made_absolute_from_where_the_command_started(tmp_path):
    from coupler_mlflow.tracker import store_uri

    assert store_uri(None, tmp_path) == f"sqlite:///{tmp_path}/mlflow.db"
    assert store_uri("sqlite:///sub/m.db?timeout=30", tmp_path) == f"sqlite:///{tmp_path}/sub/m.db?timeout=30"
    assert store_uri("sqlite+pysqlite:///m.db", tmp_path) == f"sqlite+pysqlite:///{tmp_path}/m.db"
    assert store_uri("sqlite:////abs/m.db", tmp_path) == "sqlite:////abs/m.db"
    assert store_uri("sqlite:///:memory:", tmp_path) == "sqlite:///:memory:"
    assert store_uri("mlruns", tmp_path) == str(tmp_path / "mlruns")
    assert store_uri("http://127.0.0.1:5000", tmp_path) == "http://127.0.0.1:5000"


def test_the_background_logger_finishes_the_run_after_the_training_process_ends(workdir, store):
    """The user's case: ``coupler train`` returns at once; its MLflow run ends FINISHED seconds later."""
    coupler = os.path.join(os.path.dirname(sys.executable), "coupler")
    result = subprocess.run([coupler, "train", "tracking=[mlflow]", "tracking.mlflow.model=false",
                             "tracking.mlflow.experiment=detached", "hydra.run.dir=detached"], cwd=workdir,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "tracking=mlflow: logging into MLflow from a background process" in result.stderr
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        experiment = store.get_experiment_by_name("detached")
        runs = store.search_runs([experiment.experiment_id]) if experiment is not None else []
        if runs and runs[0].info.status != "RUNNING":
            break
        time.sleep(0.5)
    (run,) = runs
    assert run.info.status == "FINISHED" and run.info.run_name == "detached"
    metrics = json.loads((workdir / "detached" / "metrics.json").read_text())
    assert run.data.metrics["test_accuracy"] == pytest.approx(metrics["test"]["accuracy"])
    assert "run/manifest.json" in {a.path for a in store.list_artifacts(run.info.run_id, "run")}


def test_a_store_the_background_logger_cannot_open_is_a_warning_in_the_runs_log(workdir, monkeypatch):
    """A store MLflow refuses after the checks (here: a database of a newer MLflow, whose revision it does not
    know): the run trains; the logger, which has no terminal, says why in the run's train.log."""
    import sqlite3

    monkeypatch.chdir(workdir)
    with sqlite3.connect(workdir / "newer.db") as database:
        database.execute("create table alembic_version (version_num varchar(32) not null)")
        database.execute("insert into alembic_version values ('ffffffffffff')")
    database.close()
    assert cli_in_this_process("train", "tracking=[mlflow]", "tracking.mlflow.uri=sqlite:///newer.db",
                               "hydra.run.dir=refused") == 0
    flush()
    log = (workdir / "refused" / "train.log").read_text()
    assert f"[WARNING] - tracking=mlflow: tracking.mlflow.uri=sqlite:///{workdir / 'newer.db'}: MLflow refused the " \
           f"run (" in log and "the run is not tracked" in log


@pytest.mark.parametrize("uri, problem", [
    ("sqlite:///missing/mlflow.db", "the directory {cwd}/missing does not exist"),
    ("sqlite:///text.db", "{cwd}/text.db is no SQLite database"),
    ("sqlite:///:memory:", "an in-memory store ends with the process that logs into it"),
    ("htp://127.0.0.1:5000", "MLflow knows no store scheme 'htp'; use one of databricks, databricks-uc, file, http"),
])
def test_a_store_that_cannot_be_used_is_one_error_line_before_any_data(coupler_cli, tmp_path, uri, problem):
    (tmp_path / "text.db").write_text("not a database")
    result = coupler_cli("train", "tracking=[mlflow]", f"tracking.mlflow.uri={uri}", "hydra.run.dir=run")
    assert result.rc == 2
    (line,) = result.error_lines
    shown = uri.replace("sqlite:///", f"sqlite:///{tmp_path}/") if "missing" in uri or "text" in uri else uri
    assert line.startswith(f"coupler: error: tracking.mlflow.uri={shown}: {problem.format(cwd=tmp_path)}")
    assert "data iris" not in result.err and not (tmp_path / "run").exists()


@pytest.mark.parametrize("command", ["LOGGER", "LOGGER_WITHOUT_P"])
def test_the_background_logger_imports_nothing_from_the_working_directory(workdir, store, tmp_path, monkeypatch,
                                                                          command):
    """A working directory may be a run directory, and nothing runs code from one: a module there named like one the
    logger imports is never imported, whatever Python's version (3.10 has no ``-P``: ``LOGGER_WITHOUT_P``), and with
    an empty entry in ``PYTHONPATH`` (``export PYTHONPATH=$PYTHONPATH:/x`` with none before), which stands for it."""
    import coupler_mlflow.tracker as tracker

    monkeypatch.setattr(tracker, "LOGGER", getattr(tracker, command))
    monkeypatch.setenv("PYTHONPATH", os.pathsep + os.environ.get("PYTHONPATH", ""))
    monkeypatch.chdir(tmp_path)
    for module in ("mlflow", "coupler_mlflow", "json"):
        (tmp_path / f"{module}.py").write_text(f"open({str(tmp_path / ('imported-' + module))!r}, 'w').close()\n")
    monkeypatch.setattr(tracker, "_logger", None)  # a logger started here, in this working directory
    assert cli_in_this_process("train", "tracking=[mlflow]", f"tracking.mlflow.uri=sqlite:///{workdir / 'mlflow.db'}",
                               "tracking.mlflow.model=false", f"tracking.mlflow.experiment=hostile-{command}",
                               "hydra.run.dir=run") == 0
    flush()
    assert not list(tmp_path.glob("imported-*"))
    (run,) = store.search_runs([store.get_experiment_by_name(f"hostile-{command}").experiment_id])
    assert run.info.status == "FINISHED"


def test_epochs_that_queue_up_are_logged_in_one_call_each_at_its_step(workdir, store):
    """A run whose epochs take milliseconds sends them faster than a store call per epoch logs them: the logger
    merges the queued ones of one run (``_merged``), up to the next event of another kind or run."""
    import queue

    from coupler_mlflow.logger import _merged
    from coupler_mlflow.recorder import Recorder

    def metrics(key, step):
        return json.dumps({"event": "metrics", "key": key, "metrics": {"val_loss": 1.0 / (step + 1)}, "step": step,
                           "timestamp": 1000 + step}).encode()

    lines = queue.SimpleQueue()
    for line in [metrics("k", 1), metrics("k", 2), metrics("other", 0), metrics("k", 3)]:
        lines.put(line)
    held = []
    merged = _merged(json.loads(metrics("k", 0)), held, lines)
    assert [entry["step"] for entry in merged["entries"]] == [0, 1, 2] and held == [metrics("other", 0)]
    recorder = Recorder(warn=lambda directory, message: pytest.fail(message))
    recorder.apply({"event": "start", "key": "k", "uri": f"sqlite:///{workdir / 'mlflow.db'}", "experiment": "merged",
                    "directory": str(workdir / "run"), "cwd": str(workdir), "sweep": None, "params": {}, "commit": None})
    recorder.apply(merged)
    (run,) = store.search_runs([store.get_experiment_by_name("merged").experiment_id])
    history = sorted(store.get_metric_history(run.info.run_id, "val_loss"), key=lambda m: m.step)
    assert [(m.step, m.value, m.timestamp) for m in history] == [(0, 1.0, 1000), (1, 0.5, 1001), (2, 1 / 3, 1002)]
