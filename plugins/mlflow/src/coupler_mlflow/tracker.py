"""``tracking=mlflow``: one MLflow run per Coupler run, logged through ``MlflowClient`` (no fluent global state, so
several runs in one process stay apart).

What a run logs, and when:

- ``on_run_start`` (before any data is read): the store is checked (a server that does not answer is one
  ``coupler: error:`` line naming the URI and the fix), the experiment found or created, the MLflow run created
  (a child of the sweep's parent run in a multirun), and the flattened config logged as params; tags: the run
  directory, the git commit of the working directory when it is a git repository.
- ``on_fit_start``: the data fingerprint and task as tags.
- ``on_epoch_end``: the epoch's metrics (torch epochs, XGBoost rounds) at step = the epoch. Cross-validation
  folds' epochs (``run.fold``) are left out; their summary is logged at the end.
- ``on_evaluate_end``: the final metrics of each split, prefixed by it: ``val_accuracy``, ``test_accuracy`` (at
  the step after the last epoch; an engine's per-epoch metric of the same name, torch's ``val_accuracy``, so ends
  with the kept model's value).
- ``on_run_end`` (the run directory is complete and sealed): ``cv_*`` metrics, the versions the manifest
  records as tags, the sealed files (the manifest's list, the manifest, ``train.log`` as it stands) under the
  artifact path ``run/``, and the pyfunc model under ``model/``; then the run is ended FINISHED.

A multirun (``-m``, a search's trials included) is one parent MLflow run (named after the sweep directory, tag
``coupler.sweep_dir``) with a child per job. Jobs may run at once in several processes (the joblib launcher),
so the parent is found or created under an exclusive file lock (``fcntl.flock`` on a file in the temporary
directory named by a digest of the store's URI, ``_exclusive``) by a tag lookup (``coupler.sweep``, a digest of
the sweep directory): the first job creates it, the others find it (and set it RUNNING again where an earlier job
ended it). A job that ends marks the parent FINISHED only when no child run of it is RUNNING any more: the parent
ends with the last job (a job that failed leaves its child RUNNING, and so the parent). The lock is one host's:
jobs of one sweep launched on several hosts may each create a parent.

After the start, a store that fails (a server gone down) does not stop the training: a warning names the URI
and the run goes on untracked. A run that fails leaves its MLflow run RUNNING (no hook fires on failure).
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
import time
from pathlib import Path

from coupler.callback import Callback
from coupler.distributed import secondary_process
from coupler.errors import CouplerError
from coupler_mlflow.plugin import check_uri, redact

log = logging.getLogger("coupler")

#: MLflow's longest param value (``mlflow.utils.validation``, 6000 characters since MLflow 2.8); a longer one is cut
MAX_PARAM_VALUE = 6000
#: param, metric and tag keys MLflow accepts: alphanumerics, ``_ - . / :`` and spaces; others become ``_``
_KEY_CHARACTERS = re.compile(r"[^\w\-. /:]")
CUT = " ... (cut to MLflow's limit; the whole config is run/config.yaml in the artifacts)"


def flat_config(config: dict) -> dict[str, str]:
    """The run's hyper-parameters (``coupler.config.flat_settings``: the ``tracking`` node left out) as MLflow's
    text params: ``{"model.params.max_depth": "6", ...}``."""
    from coupler.config import flat_settings

    return {name: value if isinstance(value, str) else json.dumps(value) for name, value in flat_settings(config).items()}


def param_value(value: str) -> str:
    return value if len(value) <= MAX_PARAM_VALUE else value[:MAX_PARAM_VALUE - len(CUT)] + CUT


def key(name: str) -> str:
    return _KEY_CHARACTERS.sub("_", str(name))[:250]


def original_cwd(run_directory: Path) -> Path:
    """The directory the command started in: Hydra's ``runtime.cwd`` for the job that writes ``run_directory``
    (whatever ``hydra.job.chdir`` did), else this process's working directory (``train_run``, no Hydra)."""
    hydra = _hydra_job(run_directory)
    return Path(hydra.runtime.cwd) if hydra is not None else Path.cwd()


def _hydra_job(run_directory: Path):
    """Hydra's config of the job writing ``run_directory``, or None: no Hydra job, or the one Hydra recorded last in
    this process is another run's (an earlier in-process run's)."""
    try:
        from hydra.core.hydra_config import HydraConfig

        if not HydraConfig.initialized():
            return None
        hydra = HydraConfig.get()
        same = Path(hydra.runtime.output_dir).resolve() == Path(run_directory).resolve()
    except Exception:  # Hydra's config without a runtime section: not a job of ours
        return None
    return hydra if same else None


def sweep_directory(run_directory: Path) -> Path | None:
    """The sweep directory when ``run_directory`` is a job of a multirun, else None."""
    hydra = _hydra_job(run_directory)
    if hydra is None or str(hydra.mode) != "RunMode.MULTIRUN":
        return None
    directory = Path(hydra.sweep.dir)
    return directory if directory.is_absolute() else Path(hydra.runtime.cwd) / directory


def git_commit(start: Path) -> str | None:
    """The commit checked out in the git repository holding ``start``, read from ``.git`` (no git program needed);
    None outside a repository or when it cannot be told."""
    try:
        for folder in (start, *start.parents):
            dot_git = folder / ".git"
            if dot_git.is_file():  # a worktree or submodule: "gitdir: PATH"
                text = dot_git.read_text().strip()
                git_dir = (folder / text.split(":", 1)[1].strip()).resolve()
            elif dot_git.is_dir():
                git_dir = dot_git
            else:
                continue
            return _resolve_head(git_dir)
    except (OSError, IndexError, ValueError):
        return None
    return None


def _resolve_head(git_dir: Path) -> str | None:
    head = (git_dir / "HEAD").read_text().strip()
    if not head.startswith("ref:"):
        return head or None
    ref = head.split(":", 1)[1].strip()
    common = git_dir / "commondir"
    roots = [git_dir, (git_dir / common.read_text().strip()).resolve()] if common.is_file() else [git_dir]
    for root in roots:
        if (root / ref).is_file():
            return (root / ref).read_text().strip()
        packed = root / "packed-refs"
        if packed.is_file():
            for line in packed.read_text().splitlines():
                if line.endswith(f" {ref}"):
                    return line.split(" ", 1)[0]
    return None  # a branch without a commit yet


@functools.lru_cache(maxsize=None)
def client(uri: str):
    """One ``MlflowClient`` per store and process (the tracker's own state stays plain: cross-validation copies it)."""
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)


def check_store(uri: str) -> None:
    """A server URI must answer before the run reads any data: MLflow's client would retry for minutes."""
    check_uri(uri)
    if not uri.startswith(("http://", "https://")):
        return
    import urllib.error
    import urllib.request

    try:
        urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=5).close()
    except urllib.error.HTTPError:
        return  # a server answered (a proxy that wants a login, a server without /health): MLflow's calls will tell
    except (OSError, ValueError) as exc:
        reason = str(getattr(exc, "reason", None) or exc).replace(uri, redact(uri))
        raise CouplerError(f"tracking.mlflow.uri={redact(uri)}: no MLflow server answers there ({reason}); start one "
                           f"(mlflow server --host 127.0.0.1 --port PORT) or fix the URI, or leave "
                           f"tracking.mlflow.uri unset to log into sqlite:///mlflow.db here.") from None


class StoreError(CouplerError):
    """The MLflow store refused a call: the URI and what MLflow said."""


@functools.lru_cache(maxsize=None)
def _mlflow_errors() -> tuple:
    from mlflow.exceptions import MlflowException

    return MlflowException, OSError


class MlflowTracker(Callback):
    """Logs one Coupler run into one MLflow run. Its attributes are plain (strings, numbers), so that
    cross-validation can copy and reset it between folds; the client is looked up by URI (``client``)."""

    def __init__(self, uri: str | None = None, experiment: str = "coupler", artifacts: bool = True,
                 model: bool = True):
        self.uri, self.experiment, self.artifacts, self.model = uri, experiment, artifacts, model
        self.run_id: str | None = None
        self.parent_id: str | None = None
        self.experiment_id: str | None = None
        self.last_step = -1

    # --- the hooks ------------------------------------------------------------------------------------------------

    def on_run_start(self, run) -> None:
        if secondary_process():  # a rank other than 0 of a distributed fit logs nothing
            return
        cwd = original_cwd(run.directory)
        self.uri = self.uri or f"sqlite:///{(cwd / 'mlflow.db').as_posix()}"
        check_store(self.uri)
        try:
            self._start(run, cwd)
        except CouplerError:
            raise
        except Exception as exc:  # MLflow's, SQLAlchemy's (a store it cannot open or upgrade), the network's
            raise StoreError(f"tracking.mlflow.uri={redact(self.uri)}: MLflow refused the run "
                             f"({_one_line(exc, self.uri)}); check the URI (a server http://HOST:PORT, or "
                             f"sqlite:///PATH/mlflow.db where PATH can be written) and that the store is reachable.") from None

    def on_fit_start(self, run, model) -> None:
        self._guarded("tags", lambda: client(self.uri).log_batch(self.run_id, tags=_tags(
            {"coupler.data_fingerprint": run.data_fingerprint, "coupler.task": run.task})))

    def on_epoch_end(self, run, epoch, metrics) -> None:
        if run.fold is not None:
            return
        self.last_step = max(self.last_step, int(epoch))
        self._guarded("epoch metrics", lambda: self._log_metrics(metrics, int(epoch)))

    def on_evaluate_end(self, run, split, metrics) -> None:
        self._guarded(f"{split} metrics", lambda: self._log_metrics(
            {f"{split}_{name}": value for name, value in metrics.items()}, self.last_step + 1))

    def on_run_end(self, run, metrics) -> None:
        self._guarded("the run's end", lambda: self._finish(run, metrics))

    def on_run_failed(self, run, error) -> None:
        """The MLflow run ends FAILED (KILLED for Ctrl-C), its error's first line in the tag ``coupler.error``."""
        status = "KILLED" if isinstance(error, KeyboardInterrupt) else "FAILED"
        self._guarded("the run's failure", lambda: self._fail(status, _one_line(error, self.uri or "")))

    # --- logging --------------------------------------------------------------------------------------------------

    def _start(self, run, cwd: Path) -> None:
        sweep = sweep_directory(run.directory)
        with _exclusive(self.uri):
            mlflow_client = client(self.uri)  # a new SQLite store's tables are made here
            experiment_id = self._experiment_id(mlflow_client, cwd)
            self.parent_id = _parent_run(mlflow_client, experiment_id, sweep) if sweep is not None else None
        self.experiment_id = experiment_id
        directory = Path(run.directory).resolve()
        tags = {"coupler.run_dir": str(directory), "mlflow.source.git.commit": git_commit(cwd)}
        if self.parent_id is not None:
            tags.update({"mlflow.parentRunId": self.parent_id, "coupler.sweep_dir": str(sweep.resolve())})
        name = str(directory.relative_to(sweep.resolve())) if sweep is not None and directory.is_relative_to(
            sweep.resolve()) else directory.name
        created = mlflow_client.create_run(experiment_id, run_name=name,
                                           tags={k: str(v) for k, v in tags.items() if v is not None})
        self.run_id = created.info.run_id
        from mlflow.entities import Param

        params = [Param(key(k), param_value(v)) for k, v in flat_config(run.config).items()]
        for first in range(0, len(params), 100):  # MLflow takes at most 100 params a call
            mlflow_client.log_batch(self.run_id, params=params[first:first + 100])

    def _experiment_id(self, mlflow_client, cwd: Path) -> str:
        """The experiment's id, created when missing; a local store keeps its artifacts in ``mlruns/`` beside the
        database (never in the run directory, whatever the process's working directory is)."""
        found = mlflow_client.get_experiment_by_name(self.experiment)
        if found is not None:
            return found.experiment_id
        local = not self.uri.startswith(("http://", "https://", "databricks"))
        try:
            return mlflow_client.create_experiment(self.experiment, artifact_location=(cwd / "mlruns").as_uri()
                                                   if local else None)
        except _mlflow_errors()[0]:  # another process created it meanwhile
            found = mlflow_client.get_experiment_by_name(self.experiment)
            if found is None:
                raise
            return found.experiment_id

    def _log_metrics(self, metrics: dict, step: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        numbers = [Metric(key(name), float(value), now, step) for name, value in metrics.items()
                   if isinstance(value, (int, float)) and not isinstance(value, bool)]
        if numbers:
            client(self.uri).log_batch(self.run_id, metrics=numbers)

    def _finish(self, run, metrics: dict) -> None:
        mlflow_client = client(self.uri)
        cv = metrics.get("cv") or {}
        self._log_metrics({f"cv_{name}": value for name, value in _flat_numbers(cv).items()}, self.last_step + 1)
        directory = Path(run.directory)
        manifest = json.loads((directory / "manifest.json").read_text())
        versions = {f"coupler.version.{name}": version for name, version in (manifest.get("libraries") or {}).items()}
        versions.update({"coupler.version.coupler-mlflow": _version("coupler-mlflow"),
                         "coupler.version.mlflow": _version("mlflow")})
        mlflow_client.log_batch(self.run_id, tags=_tags(versions))
        if self.artifacts or self.model:
            with tempfile.TemporaryDirectory(prefix="coupler-mlflow-") as scratch:
                sealed = sealed_copy(directory, manifest, Path(scratch) / "run")
                if self.artifacts:
                    mlflow_client.log_artifacts(self.run_id, str(sealed), "run")
                    if (directory / "train.log").is_file():
                        mlflow_client.log_artifact(self.run_id, str(directory / "train.log"), "run")
                if self.model:
                    from coupler_mlflow.pyfunc import save_pyfunc

                    mlflow_client.log_artifacts(self.run_id, str(save_pyfunc(sealed, manifest, Path(scratch) / "model")),
                                                "model")
        mlflow_client.set_terminated(self.run_id, "FINISHED")
        if self.parent_id is not None:
            _finish_parent(mlflow_client, self.experiment_id, self.parent_id)

    def _fail(self, status: str, reason: str) -> None:
        mlflow_client = client(self.uri)
        mlflow_client.log_batch(self.run_id, tags=_tags({"coupler.error": reason[:5000]}))
        mlflow_client.set_terminated(self.run_id, status)
        if self.parent_id is not None:
            _finish_parent(mlflow_client, self.experiment_id, self.parent_id)
        self.run_id = None

    def _guarded(self, step: str, action) -> None:
        """Log, unless the run is untracked; a store failing after the start warns and leaves the run untracked."""
        if self.run_id is None:
            return
        try:
            action()
        except _mlflow_errors() as exc:
            log.warning("tracking=mlflow: logging %s to %s failed (%s); the run goes on untracked", step,
                        redact(self.uri), _one_line(exc, self.uri))
            self.run_id = None


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
    sweep = sweep.resolve()
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
    the temporary directory named by a digest of the URI; nothing where there is no ``fcntl``): MLflow creates a new
    SQLite store's tables on its first call, and two processes doing it at once break it; then the experiment,
    and a sweep's parent run, are created once."""

    def __init__(self, uri: str):
        digest = hashlib.sha256(uri.encode()).hexdigest()[:16]
        self.path = Path(tempfile.gettempdir()) / f"coupler-mlflow-{digest}.lock"
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


def _flat_numbers(values: dict, prefix: str = "") -> dict:
    flat = {}
    for name, value in values.items():
        if isinstance(value, dict):
            flat.update(_flat_numbers(value, f"{prefix}{name}_"))
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            flat[f"{prefix}{name}"] = value
    return flat


def _version(distribution: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def _one_line(exc: BaseException, uri: str = "") -> str:
    """The exception in one line, ``uri`` in it redacted (a library's message may quote the URI it was given)."""
    text = " ".join((str(exc).replace(uri, redact(uri)) if uri else str(exc)).split())
    return f"{type(exc).__name__}: {text[:300]}"
