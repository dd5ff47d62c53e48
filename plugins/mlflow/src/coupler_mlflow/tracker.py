"""``tracking=mlflow``: one MLflow run per Coupler run, for every engine, through the lifecycle hooks.

What a run logs, and when:

- ``on_run_start`` (before any data is read): the store is checked (a server that does not answer, or a SQLite
  file that cannot be written, is one ``coupler: error:`` line naming the URI and the fix), the experiment found or
  created, the MLflow run created (a child of the sweep's parent run in a multirun), and the flattened config
  logged as params; tags: the run directory, the git commit of the working directory when it is a git repository.
- ``on_fit_start``: the data fingerprint and task as tags.
- ``on_epoch_end``: the epoch's metrics (torch epochs, XGBoost rounds) at step = the epoch. Cross-validation
  folds' epochs (``run.fold``) are left out; their summary is logged at the end.
- ``on_evaluate_end``: the final metrics of each split, prefixed by it: ``val_accuracy``, ``test_accuracy`` (at
  the step after the last epoch; an engine's per-epoch metric of the same name, torch's ``val_accuracy``, so ends
  with the kept model's value).
- ``on_run_end`` (the run directory is complete and sealed): ``cv_*`` metrics, the versions the manifest
  records as tags, the sealed files (the manifest's list, the manifest, ``train.log`` as it stands) under the
  artifact path ``run/``, and the pyfunc model under ``model/``; then the run is ended FINISHED.
- ``on_run_failed``: the run is ended FAILED (KILLED for Ctrl-C), the error's first line in the tag
  ``coupler.error``.

**Where the logging happens.** The tracker turns each hook into a plain event (``coupler_mlflow.recorder.Recorder``
says what each holds and does). By default (``tracking.mlflow.synchronous=false``) it sends them through a pipe to
a background process (``coupler_mlflow.logger``), started by the first tracked run of this process and serving
every later one, and never waits for it: MLflow's import and store take seconds of CPU, which a short run would
otherwise wait for (the plugin's README has the figures). ``flush()`` waits for it.
``tracking.mlflow.synchronous=true`` hands the events to a ``Recorder`` in this process instead.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

from coupler.callback import Callback
from coupler.distributed import secondary_process
from coupler.errors import CouplerError
from coupler_mlflow.plugin import DEFAULT_STORE, check_uri, redact
from coupler_mlflow.recorder import Recorder, StoreError, one_line

log = logging.getLogger("coupler")


class MlflowTracker(Callback):
    """Logs one Coupler run into one MLflow run. Its attributes are plain (strings, numbers), so that
    cross-validation can copy and reset it between folds; the MLflow runs are the recorder's, by ``key``."""

    def __init__(self, uri: str | None = None, experiment: str = "coupler", artifacts: bool = True,
                 model: bool = True, synchronous: bool = False):
        self.uri, self.experiment, self.artifacts, self.model = uri, experiment, artifacts, model
        self.synchronous = synchronous
        self.key: str | None = None  # this run's, once started
        self.last_step = -1

    # --- the hooks ------------------------------------------------------------------------------------------------

    def on_run_start(self, run) -> None:
        if secondary_process():  # a rank other than 0 of a distributed fit logs nothing
            return
        cwd = original_cwd(run.directory)
        self.uri = store_uri(self.uri, cwd)
        check_store(self.uri)
        sweep = sweep_directory(run.directory)
        self.key = uuid.uuid4().hex
        self._send("start", uri=self.uri, experiment=self.experiment, directory=str(Path(run.directory).resolve()),
                   cwd=str(cwd), sweep=str(sweep.resolve()) if sweep is not None else None,
                   params=flat_config(run.config), commit=git_commit(cwd))

    def on_fit_start(self, run, model) -> None:
        self._send("tags", tags={"coupler.data_fingerprint": run.data_fingerprint, "coupler.task": run.task})

    def on_epoch_end(self, run, epoch, metrics) -> None:
        if run.fold is not None:
            return
        self.last_step = max(self.last_step, int(epoch))
        self._metrics(metrics, int(epoch))

    def on_evaluate_end(self, run, split, metrics) -> None:
        self._metrics({f"{split}_{name}": value for name, value in metrics.items()}, self.last_step + 1)

    def on_run_end(self, run, metrics) -> None:
        cv = {f"cv_{name}": value for name, value in _flat_numbers(metrics.get("cv") or {}).items()}
        self._send("finish", cv=cv, step=self.last_step + 1, timestamp=_now(), artifacts=self.artifacts,
                   model=self.model)
        self.key = None

    def on_run_failed(self, run, error) -> None:
        """The MLflow run ends FAILED (KILLED for Ctrl-C), its error's first line in the tag ``coupler.error``."""
        status = "KILLED" if isinstance(error, KeyboardInterrupt) else "FAILED"
        self._send("fail", status=status, reason=one_line(error, self.uri or ""))
        self.key = None

    # --- sending --------------------------------------------------------------------------------------------------

    def _metrics(self, metrics: dict, step: int) -> None:
        numbers = {name: float(value) for name, value in metrics.items()
                   if isinstance(value, (int, float)) and not isinstance(value, bool)}
        if numbers:
            self._send("metrics", metrics=numbers, step=step, timestamp=_now())

    def _send(self, kind: str, **fields) -> None:
        if self.key is None:  # untracked: a secondary process, or the run has ended
            return
        event = {"event": kind, "key": self.key, **fields}
        if self.synchronous:
            _in_this_process().apply(event)  # a start the store refuses raises StoreError
        else:
            background_logger().send(event)


def _now() -> int:
    return int(time.time() * 1000)


def store_uri(uri: str | None, cwd: Path) -> str:
    """The store's URI: ``sqlite:///mlflow.db`` in the directory the command started in when unset; a relative
    SQLite path is taken from that directory too (whatever ``hydra.job.chdir`` did, and in whichever process logs)."""
    if not uri:
        return f"sqlite:///{(cwd / DEFAULT_STORE).as_posix()}"
    if uri.startswith("sqlite:///") and not Path(uri[len("sqlite:///"):]).is_absolute():
        return f"sqlite:///{(cwd / uri[len('sqlite:///'):]).as_posix()}"
    return uri


def check_store(uri: str) -> None:
    """Before the run reads any data: a server URI must answer (MLflow's client would retry for minutes), and a
    SQLite file must be one that can be written (its directory too: SQLite writes its journal beside it)."""
    check_uri(uri)
    if uri.startswith(("http://", "https://")):
        _check_server(uri)
    elif uri.startswith("sqlite:///"):
        _check_sqlite(uri, Path(uri[len("sqlite:///"):].split("?", 1)[0]))


def _check_server(uri: str) -> None:
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


def _check_sqlite(uri: str, path: Path) -> None:
    fix = "(sqlite:///PATH/mlflow.db where PATH is a directory that can be written)"
    if not path.parent.is_dir():
        raise StoreError(f"tracking.mlflow.uri={redact(uri)}: the directory {path.parent} does not exist; create it "
                         f"or point the URI elsewhere {fix}.")
    if not os.access(path.parent, os.W_OK | os.X_OK) or (path.exists() and not os.access(path, os.R_OK | os.W_OK)):
        raise StoreError(f"tracking.mlflow.uri={redact(uri)}: {path if path.exists() else path.parent} cannot be "
                         f"written here; point the URI elsewhere {fix}.")
    if path.exists():
        try:
            with open(path, "rb") as store:
                header = store.read(16)
        except OSError as exc:
            raise StoreError(f"tracking.mlflow.uri={redact(uri)}: {path} cannot be read ({exc.strerror}); point the "
                             f"URI elsewhere {fix}.") from None
        if header and header != b"SQLite format 3\x00":
            raise StoreError(f"tracking.mlflow.uri={redact(uri)}: {path} is no SQLite database; move it away or "
                             f"point the URI elsewhere {fix}.")


# --- where the events go ------------------------------------------------------------------------------------------

_recorder: Recorder | None = None


def _in_this_process() -> Recorder:
    """``tracking.mlflow.synchronous=true``: this process's recorder; its warnings go to the run's log."""
    global _recorder
    if _recorder is None:
        _recorder = Recorder(warn=lambda directory, message: log.warning(message))
    return _recorder


#: the background logger's command: its module, run with nothing importable from the working directory (it may be a
#: run directory): Python's ``-P``; on Python 3.10, which has none, ``-c`` without the working directory's entry
LOGGER = [sys.executable, "-P", "-m", "coupler_mlflow.logger"] if sys.version_info >= (3, 11) else [
    sys.executable, "-c", "import sys; '' in sys.path and sys.path.remove(''); from coupler_mlflow.logger import main; "
                          "main()"]


class BackgroundLogger:
    """This process's background logger: ``LOGGER``, in a session of its own (a Ctrl-C in the terminal stops the
    training, not the logging of its KILLED end), fed one JSON event per line through its stdin. It ends when this
    process does (its stdin closes), once it has logged every event."""

    def __init__(self):
        self.owner = os.getpid()
        self.process = subprocess.Popen(LOGGER, stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True)
        self.ended = False
        self.flushes, self.answers = 0, b""  # flush() requests sent, and what the logger answered
        log.info("tracking=mlflow: logging into MLflow from a background process (pid %d); each MLflow run is "
                 "complete a few seconds after its run ends, and its warnings go to the run's train.log",
                 self.process.pid)

    def send(self, event: dict) -> None:
        if self.ended:
            return
        try:
            self.process.stdin.write(json.dumps(event).encode() + b"\n")
            self.process.stdin.flush()
        except (OSError, ValueError) as exc:  # the logger has ended (killed): this process's runs go on untracked
            self.ended = True
            log.warning("tracking=mlflow: the background logger (pid %d) has ended (%s, exit status %s); the runs of "
                        "this process go on untracked", self.process.pid, type(exc).__name__, self.process.poll())

    def flush(self, timeout: float) -> None:
        """Wait until every event sent so far is logged; ``TimeoutError`` after ``timeout`` seconds."""
        import select

        self.flushes += 1
        self.send({"event": "flush", "token": self.flushes})
        deadline, answer = time.monotonic() + timeout, self.process.stdout.fileno()
        while not self.ended and f"flushed {self.flushes}".encode() not in self.answers.split(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"tracking=mlflow: the background logger (pid {self.process.pid}) has not "
                                   f"logged its runs within {timeout} s")
            if select.select([answer], [], [], left)[0]:
                read = os.read(answer, 4096)
                self.ended = not read  # it has ended (its warnings are in the runs' train.log)
                self.answers = self.answers[-4096:] + read


_logger: BackgroundLogger | None = None


def background_logger() -> BackgroundLogger:
    """This process's background logger, started at its first tracked run (a forked child starts its own)."""
    global _logger
    if _logger is None or _logger.owner != os.getpid():
        _logger = BackgroundLogger()
    return _logger


def flush(timeout: float = 120) -> None:
    """Wait until this process's background logger has logged every event of the runs so far (a script or a test
    that reads a run from MLflow right after ``coupler.train_run``); nothing to wait for without one."""
    if _logger is not None and _logger.owner == os.getpid():
        _logger.flush(timeout)


# --- what the hooks read ------------------------------------------------------------------------------------------

def flat_config(config: dict) -> dict[str, str]:
    """The run's hyper-parameters (``coupler.config.flat_settings``: the ``tracking`` node left out) as MLflow's
    text params: ``{"model.params.max_depth": "6", ...}``."""
    from coupler.config import flat_settings

    return {name: value if isinstance(value, str) else json.dumps(value) for name, value in flat_settings(config).items()}


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


def _flat_numbers(values: dict, prefix: str = "") -> dict:
    flat = {}
    for name, value in values.items():
        if isinstance(value, dict):
            flat.update(_flat_numbers(value, f"{prefix}{name}_"))
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            flat[f"{prefix}{name}"] = value
    return flat
