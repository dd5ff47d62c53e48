"""``tracking=mlflow``, read back through ``MlflowClient`` from the SQLite store a run made in its working directory.

MLflow's import and a new store's tables cost seconds of CPU: one module-scoped working directory holds one XGBoost
run (3 rounds) and one search of two trials (logistic regression on iris), both trained in this process through the
CLI, and every test reads them. One slow test starts a real ``mlflow server``."""

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
from coupler_mlflow.tracker import CUT, MAX_PARAM_VALUE, _finish_parent, flat_config, git_commit, param_value


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
    (run,) = store.search_runs([store.get_experiment_by_name("failed").experiment_id])
    assert run.info.status == "FAILED"
    assert run.data.tags["coupler.error"].startswith("DataError: data.target=label: no such column")
