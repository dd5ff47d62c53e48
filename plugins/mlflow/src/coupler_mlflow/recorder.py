"""Writes a Coupler run's events into MLflow through ``MlflowClient`` (no fluent global state, so several runs in one
process stay apart). ``Recorder.apply`` takes the plain events ``coupler_mlflow.tracker.MlflowTracker`` sends
(``start``, ``tags``, ``metrics``, ``finish``, ``fail``: see ``Recorder.apply``), in this process
(``tracking.mlflow.synchronous=true``) or in the background logger (``coupler_mlflow.logger``).

A multirun (``-m``, a search's trials included) is one parent MLflow run (named after the sweep directory, tag
``coupler.sweep_dir``) with a child per job. Jobs may run at once in several processes (the joblib launcher),
so the parent is found or created under an exclusive file lock (``fcntl.flock`` on a file in the temporary
directory named by the user and a digest of the store's URI, ``_exclusive``) by a tag lookup (``coupler.sweep``, a digest of
the sweep directory): the first job creates it, the others find it (and set it RUNNING again where an earlier job
ended it). A job that ends, or fails, marks the parent FINISHED only when no child run of it is RUNNING any more:
the parent ends with the last job. The lock is one host's: jobs of one sweep launched on several hosts may each
create a parent.

After the start, a store that fails (a server gone down) does not stop the training: a warning names the URI
and the run goes on untracked.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Callable

from coupler.errors import CouplerError
from coupler_mlflow.plugin import redact

#: MLflow's longest param value (``mlflow.utils.validation``, 6000 characters since MLflow 2.8); a longer one is cut
MAX_PARAM_VALUE = 6000
#: param, metric and tag keys MLflow accepts: alphanumerics, ``_ - . / :`` and spaces; others become ``_``
_KEY_CHARACTERS = re.compile(r"[^\w\-. /:]")
CUT = " ... (cut to MLflow's limit; the whole config is run/config.yaml in the artifacts)"


def param_value(value: str) -> str:
    return value if len(value) <= MAX_PARAM_VALUE else value[:MAX_PARAM_VALUE - len(CUT)] + CUT


def key(name: str) -> str:
    return _KEY_CHARACTERS.sub("_", str(name))[:250]


@functools.lru_cache(maxsize=None)
def client(uri: str):
    """One ``MlflowClient`` per store and process."""
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)


class StoreError(CouplerError):
    """The MLflow store refused a call: the URI and what MLflow said."""


class Recorder:
    """The MLflow runs of the Coupler runs whose events it was given, by the event's ``key`` (one per Coupler run).
    ``warn(directory, message)`` reports a store failing after the start (the run goes on untracked)."""

    def __init__(self, warn: Callable[[str, str], None]):
        self.warn = warn
        self.runs: dict[str, dict] = {}  # key -> uri, run_id, parent_id, experiment_id, directory

    def apply(self, event: dict) -> None:
        """One event:

        - ``start``: ``uri``, ``experiment``, ``directory``, ``cwd``, ``sweep`` (the sweep directory or None),
          ``params`` (name: text), ``commit`` (or None): the MLflow run created (a child of the sweep's parent),
          params logged. A store that refuses it raises ``StoreError``.
        - ``tags``: ``tags`` (name: text); ``metrics``: ``metrics`` (name: number), ``step``, ``timestamp`` (ms), or
          ``entries``, a list of such (one run's epochs that queued up, logged in one call);
        - ``finish``: ``step``, ``cv`` (name: number), ``artifacts``, ``model``: the sealed run directory's files
          logged, the run ended FINISHED; ``fail``: ``status`` (FAILED or KILLED), ``reason``.

        After ``start``, a store that fails warns and leaves the run untracked (its later events are dropped)."""
        kind, run_key = event["event"], event["key"]
        if kind == "start":
            self._start(event)
            return
        run = self.runs.get(run_key)
        if run is None:  # untracked: its start failed, or the store failed since
            return
        try:
            getattr(self, f"_{kind}")(run, event)
        except Exception as exc:  # the store's (MLflow's, OSError), or the run directory gone before its end was logged
            self.runs.pop(run_key, None)
            self.warn(run["directory"], f"tracking=mlflow: logging {STEPS[kind]} to {redact(run['uri'])} failed "
                                        f"({one_line(exc, run['uri'])}); the run goes on untracked")
            if kind in ("finish", "fail"):
                _end_anyway(run, event.get("status", "FINISHED"), f"logging {STEPS[kind]} failed: "
                                                                  f"{one_line(exc, run['uri'])}")
        if kind in ("finish", "fail"):
            self.runs.pop(run_key, None)

    # --- the events -----------------------------------------------------------------------------------------------

    def _start(self, event: dict) -> None:
        uri = event["uri"]
        try:
            run = self._create(event)
        except CouplerError:
            raise
        except Exception as exc:  # MLflow's, SQLAlchemy's (a store it cannot open or upgrade), the network's
            raise StoreError(f"tracking.mlflow.uri={redact(uri)}: MLflow refused the run "
                             f"({one_line(exc, uri)}); check the URI (a server http://HOST:PORT, or "
                             f"sqlite:///PATH/mlflow.db where PATH can be written) and that the store is reachable.") from None
        self.runs[event["key"]] = run

    def _create(self, event: dict) -> dict:
        uri, cwd = event["uri"], Path(event["cwd"])
        sweep = Path(event["sweep"]) if event["sweep"] else None
        with _exclusive(uri):
            mlflow_client = client(uri)  # a new SQLite store's tables are made here
            experiment_id = _experiment_id(mlflow_client, event["experiment"], uri, cwd)
            parent_id = _parent_run(mlflow_client, experiment_id, sweep) if sweep is not None else None
            directory = Path(event["directory"])
            tags = {"coupler.run_dir": str(directory), "mlflow.source.git.commit": event["commit"]}
            if parent_id is not None:
                tags.update({"mlflow.parentRunId": parent_id, "coupler.sweep_dir": str(sweep)})
            name = str(directory.relative_to(sweep)) if sweep is not None and directory.is_relative_to(sweep) \
                else directory.name
            # under the lock: a job ending meanwhile must see this child RUNNING, or it would end the parent
            created = mlflow_client.create_run(experiment_id, run_name=name,
                                               tags={k: str(v) for k, v in tags.items() if v is not None})
        run_id = created.info.run_id
        from mlflow.entities import Param

        params = [Param(key(name), param_value(value)) for name, value in event["params"].items()]
        for first in range(0, len(params), 100):  # MLflow takes at most 100 params a call
            mlflow_client.log_batch(run_id, params=params[first:first + 100])
        return {"uri": uri, "run_id": run_id, "parent_id": parent_id, "experiment_id": experiment_id,
                "directory": str(directory)}

    def _tags(self, run: dict, event: dict) -> None:
        client(run["uri"]).log_batch(run["run_id"], tags=_tags(event["tags"]))

    def _metrics(self, run: dict, event: dict) -> None:
        """One ``metrics`` event, or several of one run merged (``entries``: a list of them): in calls of at most
        1,000 metrics, MLflow's limit for one ``log_batch``."""
        from mlflow.entities import Metric

        numbers = [Metric(key(name), float(value), entry["timestamp"], entry["step"])
                   for entry in event.get("entries") or [event] for name, value in entry["metrics"].items()]
        for first in range(0, len(numbers), 1000):
            client(run["uri"]).log_batch(run["run_id"], metrics=numbers[first:first + 1000])

    def _finish(self, run: dict, event: dict) -> None:
        mlflow_client, run_id = client(run["uri"]), run["run_id"]
        self._metrics(run, {"metrics": event["cv"], "step": event["step"], "timestamp": event["timestamp"]})
        directory = Path(run["directory"])
        manifest = json.loads((directory / "manifest.json").read_text())
        versions = {f"coupler.version.{name}": version for name, version in (manifest.get("libraries") or {}).items()}
        versions.update({"coupler.version.coupler-mlflow": _version("coupler-mlflow"),
                         "coupler.version.mlflow": _version("mlflow")})
        mlflow_client.log_batch(run_id, tags=_tags(versions))
        if event["artifacts"] or event["model"]:
            with tempfile.TemporaryDirectory(prefix="coupler-mlflow-") as scratch:
                sealed = sealed_copy(directory, manifest, Path(scratch) / "run")
                if event["artifacts"]:
                    mlflow_client.log_artifacts(run_id, str(sealed), "run")
                    if (directory / "train.log").is_file():
                        mlflow_client.log_artifact(run_id, str(directory / "train.log"), "run")
                if event["model"]:
                    from coupler_mlflow.pyfunc import save_pyfunc

                    mlflow_client.log_artifacts(run_id, str(save_pyfunc(sealed, manifest, Path(scratch) / "model")),
                                                "model")
        mlflow_client.set_terminated(run_id, "FINISHED")
        if run["parent_id"] is not None:
            _finish_parent(mlflow_client, run["experiment_id"], run["parent_id"])

    def _fail(self, run: dict, event: dict) -> None:
        mlflow_client = client(run["uri"])
        mlflow_client.log_batch(run["run_id"], tags=_tags({"coupler.error": event["reason"][:5000]}))
        mlflow_client.set_terminated(run["run_id"], event["status"])
        if run["parent_id"] is not None:
            _finish_parent(mlflow_client, run["experiment_id"], run["parent_id"])


def _end_anyway(run: dict, status: str, reason: str) -> None:
    """A run whose end could not be logged (its directory gone, the store failing) is not left RUNNING, nor its sweep's
    parent: ended FAILED with the reason in the tag ``coupler.error`` (KILLED stays KILLED), where the store lets."""
    try:
        mlflow_client = client(run["uri"])
        mlflow_client.log_batch(run["run_id"], tags=_tags({"coupler.error": reason[:5000]}))
        mlflow_client.set_terminated(run["run_id"], "KILLED" if status == "KILLED" else "FAILED")
        if run["parent_id"] is not None:
            _finish_parent(mlflow_client, run["experiment_id"], run["parent_id"])
    except Exception:  # the store itself is failing: nothing more can be done from here
        pass


#: what each event logs, as a warning names it
STEPS = {"tags": "tags", "metrics": "metrics", "finish": "the run's end", "fail": "the run's failure"}


def _experiment_id(mlflow_client, experiment: str, uri: str, cwd: Path) -> str:
    """The experiment's id, created when missing; a local store keeps its artifacts in ``mlruns/`` beside the
    database (never in the run directory, whatever the process's working directory is)."""
    found = mlflow_client.get_experiment_by_name(experiment)
    if found is not None:
        return found.experiment_id
    local = not uri.startswith(("http://", "https://", "databricks"))
    try:
        return mlflow_client.create_experiment(experiment, artifact_location=(cwd / "mlruns").as_uri()
                                               if local else None)
    except _mlflow_exception():  # another process created it meanwhile
        found = mlflow_client.get_experiment_by_name(experiment)
        if found is None:
            raise
        return found.experiment_id


def _mlflow_exception() -> type:
    from mlflow.exceptions import MlflowException

    return MlflowException


def sealed_copy(directory: Path, manifest: dict, target: Path) -> Path:
    """The sealed run as ``FinishedRun`` reads it: the manifest and every file it lists, and nothing else (the run's
    lock, held until the run returns, and its log, still being written, stay out)."""
    for relative in [*manifest["files"], "manifest.json"]:
        destination = target / relative
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(directory / relative, destination)
    return target


def _parent_run(mlflow_client, experiment_id: str, sweep: Path) -> str:
    """The sweep's parent run: found by its tag, else created (the caller holds ``_exclusive``)."""
    digest = hashlib.sha256(str(sweep).encode()).hexdigest()[:32]
    found = mlflow_client.search_runs([experiment_id], filter_string=f"tags.`coupler.sweep` = '{digest}'",
                                      max_results=1)
    if found:
        if found[0].info.status != "RUNNING":  # ended by a job before this one (jobs one after another): runs again
            mlflow_client.update_run(found[0].info.run_id, status="RUNNING")
        return found[0].info.run_id
    parent = mlflow_client.create_run(experiment_id, run_name=f"sweep {sweep.name}",
                                      tags={"coupler.sweep": digest, "coupler.sweep_dir": str(sweep)})
    return parent.info.run_id


def _finish_parent(mlflow_client, experiment_id: str, parent_id: str) -> None:
    """End the sweep's parent run when no job of the sweep still runs (no child run RUNNING): the parent ends with
    its last job, not with the first of several running at once."""
    running = mlflow_client.search_runs([experiment_id], max_results=1, filter_string=(
        f"tags.`mlflow.parentRunId` = '{parent_id}' and attributes.status = 'RUNNING'"))
    if not running:
        mlflow_client.set_terminated(parent_id, "FINISHED")


class _exclusive:
    """An exclusive lock of the processes of this machine that start runs in one store (``fcntl.flock`` on a file in
    the temporary directory named by the user and a digest of the URI; nothing where there is no ``fcntl``): MLflow
    creates a new SQLite store's tables on its first call, and two processes doing it at once break it; then the experiment,
    and a sweep's parent run, are created once."""

    def __init__(self, uri: str):
        digest = hashlib.sha256(uri.encode()).hexdigest()[:16]
        user = os.getuid() if hasattr(os, "getuid") else 0  # one file per user: another's is not ours to open
        self.path = Path(tempfile.gettempdir()) / f"coupler-mlflow-{user}-{digest}.lock"
        self.fd = None

    def __enter__(self):
        try:
            import fcntl
        except ImportError:
            return self
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing releases the lock


def _tags(values: dict):
    from mlflow.entities import RunTag

    return [RunTag(key(k), str(v)[:MAX_PARAM_VALUE]) for k, v in values.items() if v is not None]


def _version(distribution: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def one_line(exc: BaseException, uri: str = "") -> str:
    """The exception in one line, ``uri`` in it redacted (a library's message may quote the URI it was given)."""
    text = " ".join((str(exc).replace(uri, redact(uri)) if uri else str(exc)).split())
    return f"{type(exc).__name__}: {text[:300]}"
