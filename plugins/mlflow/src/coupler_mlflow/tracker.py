"""``tracking=mlflow``: one MLflow run per Coupler run, for every engine, through the lifecycle hooks.

What a run logs, and when:

- ``on_run_start``: the store is checked before any data is read (``check_store``: an unknown scheme, a server
  that does not answer, a SQLite file that cannot be written is one ``coupler: error:`` line naming the URI and the
  fix); then the experiment found or created, the MLflow run created (a child of the sweep's parent run in a
  multirun), and the flattened config logged as params; tags: the run directory, the git commit of the working
  directory when it is a git repository.
- ``on_fit_start``: the data fingerprint and task as tags.
- ``on_epoch_end``: the epoch's metrics (torch epochs, XGBoost rounds) at step = the epoch. Cross-validation
  folds' epochs (``run.fold``) are left out; their summary is logged at the end.
- ``on_evaluate_end``: the final metrics of each split, prefixed by it: ``val_accuracy``, ``test_accuracy`` (at
  the step after the last epoch; an engine's per-epoch metric of the same name, torch's ``val_accuracy``, so ends
  with the kept model's value).
- ``on_run_end`` (the run directory is complete and sealed): ``cv_*`` metrics, the versions the manifest
  records as tags, the sealed files (the manifest's list, the manifest, ``train.log`` as it stands when logged) under the
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
        check_store(self.uri, self.synchronous)
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
            return
        logger = background_logger(Path(event["directory"]) if kind == "start" else None)
        if logger is None:  # it could not be started (said): this run goes on untracked
            self.key = None
            return
        logger.send(event)


def _now() -> int:
    return int(time.time() * 1000)


#: the store URI schemes MLflow itself knows (``mlflow.tracking._tracking_service.utils``), a database's with or without
#: its driver (``postgresql+psycopg2``); a plugin's come from the ``mlflow.tracking_store`` entry points
SCHEMES = {"", "file", "http", "https", "databricks", "databricks-uc", "uc", "postgresql", "mysql", "sqlite", "mssql"}


def store_uri(uri: str | None, cwd: Path) -> str:
    """The store's URI: ``sqlite:///mlflow.db`` in the directory the command started in when unset; a relative
    SQLite file or a plain path is taken from that directory too (whatever ``hydra.job.chdir`` did, and in whichever
    process logs)."""
    if not uri:
        return f"sqlite:///{(cwd / DEFAULT_STORE).as_posix()}"
    path = _sqlite_file(uri)
    if path is not None and not Path(path).is_absolute():
        head, _, rest = uri.partition(":///")
        return f"{head}:///{(cwd / rest).as_posix()}"
    if _scheme(uri) == "" and not Path(uri).is_absolute():
        return str(cwd / uri)
    return uri


def _scheme(uri: str) -> str:
    """The URI's scheme, lower case, without a database driver; "" for a plain path."""
    from urllib.parse import urlsplit

    try:
        scheme = urlsplit(uri).scheme.lower()
    except ValueError:
        return "?"
    return "" if len(scheme) == 1 else scheme.split("+")[0]  # C:\\... is a Windows path


def _sqlite_file(uri: str) -> str | None:
    """The file of a SQLite store's URI (``sqlite[+DRIVER]:///PATH[?QUERY]``: ``PATH``); None for another store, and
    for an in-memory one (``sqlite://``, ``sqlite:///:memory:``)."""
    path = uri.partition(":///")[2].split("?", 1)[0]
    if _scheme(uri) != "sqlite" or ":///" not in uri or not path or path.startswith(":memory:"):
        return None
    return path


def check_store(uri: str, synchronous: bool = True) -> None:
    """Before the run reads any data: the scheme must be one MLflow knows; a server must answer (MLflow's client
    would retry for minutes); a SQLite file must be one that can be written (its directory too: SQLite writes its
    journal beside it); and a background logger cannot log into a store held in its own memory."""
    check_uri(uri)
    scheme = _scheme(uri)
    known = SCHEMES | _plugin_schemes()
    if scheme not in known:
        raise StoreError(f"tracking.mlflow.uri={redact(uri)}: MLflow knows no store scheme {scheme!r}; use one of "
                         f"{', '.join(sorted(s for s in known if s))} (http://HOST:PORT for a server, "
                         f"sqlite:///PATH/mlflow.db for a file), or leave tracking.mlflow.uri unset to log into "
                         f"sqlite:///mlflow.db here.")
    if scheme in ("http", "https"):
        _check_server(uri)
    elif scheme == "sqlite" and _sqlite_file(uri) is not None:
        _check_sqlite(uri, Path(_sqlite_file(uri)))
    elif scheme == "sqlite" and not synchronous:
        raise StoreError(f"tracking.mlflow.uri={redact(uri)}: an in-memory store ends with the process that logs "
                         f"into it, here the background logger; use a file (sqlite:///PATH/mlflow.db) or set "
                         f"tracking.mlflow.synchronous=true.")


def _plugin_schemes() -> set[str]:
    """The store schemes MLflow's plugins add (entry points ``mlflow.tracking_store``), read without importing them."""
    from importlib import metadata

    return {entry.name.lower() for entry in metadata.entry_points(group="mlflow.tracking_store")}


def _check_server(uri: str) -> None:
    import urllib.error
    import urllib.request

    try:
        urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=5).close()
    except urllib.error.HTTPError:
        return  # a server answered (a proxy that wants a login, a server without /health): MLflow's calls will tell
    except (OSError, ValueError) as exc:
        reason = str(getattr(exc, "reason", None) or exc).replace(uri, redact(uri))
        raise StoreError(f"tracking.mlflow.uri={redact(uri)}: no MLflow server answers there ({reason}); start one "
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


#: the background logger's command on Python 3.10, which has no ``-P``: ``-c``, without the working directory's
#: entry ``''`` that ``-c`` puts first in ``sys.path``
LOGGER_WITHOUT_P = [sys.executable, "-c", "import sys; '' in sys.path and sys.path.remove(''); "
                                          "from coupler_mlflow.logger import main; main()"]
#: the background logger's command: its module, run with nothing importable from the working directory (it may be a
#: run directory): Python's ``-P``
LOGGER = [sys.executable, "-P", "-m", "coupler_mlflow.logger"] if sys.version_info >= (3, 11) else LOGGER_WITHOUT_P


class BackgroundLogger:
    """This process's background logger (``LOGGER``), fed one JSON event per line through its stdin, answering
    ``flush`` on its stdout. It detaches itself (``coupler_mlflow.logger``: a session of its own, no child of this
    process), so that neither a Ctrl-C in the terminal nor a launcher ending this process's tree (joblib's) stops
    the logging of a run's end; it ends when this process does (its stdin closes), once it has logged every event.
    It starts in the directory the command started in, with no empty entry in ``PYTHONPATH`` (which would stand for
    the working directory), and its stderr appended to the ``train.log`` of the run that started it."""

    def __init__(self, cwd: Path, run_directory: Path):
        self.owner = os.getpid()
        # MLflow's printed run links and INFO lines (a new store's tables) would only be noise in a run's train.log
        environment = {"MLFLOW_LOGGING_LEVEL": "WARNING", **os.environ, "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true"}
        if "PYTHONPATH" in environment:
            environment["PYTHONPATH"] = os.pathsep.join(
                entry for entry in environment["PYTHONPATH"].split(os.pathsep) if entry not in ("", "."))
        log_file = run_directory / "train.log"
        with open(log_file, "ab") if log_file.is_file() else open(os.devnull, "wb") as errors:
            self.process = subprocess.Popen(LOGGER, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=errors,
                                            cwd=cwd, env=environment, start_new_session=True)
        self.ended = False
        self.flushes, self.answers = 0, b""  # flush() requests sent, and what the logger answered
        self.pid: int | None = None  # the detached logger's process id, once it has answered a flush
        log.info("tracking=mlflow: logging into MLflow from a background process; each MLflow run is complete a few "
                 "seconds after its run ends, and the logger's warnings go to the run's train.log")

    def send(self, event: dict) -> None:
        if self.ended:
            return
        self.process.poll()  # reaps the launching process once it has detached the logger
        try:
            self.process.stdin.write(json.dumps(event).encode() + b"\n")
            self.process.stdin.flush()
        except (OSError, ValueError) as exc:  # the logger has ended (killed)
            self._ended(type(exc).__name__)

    def flush(self, timeout: float) -> None:
        """Wait until every event sent so far is logged; ``TimeoutError`` after ``timeout`` seconds."""
        import select

        self.flushes += 1
        self.send({"event": "flush", "token": self.flushes})
        deadline, answer = time.monotonic() + timeout, self.process.stdout.fileno()
        while not self.ended and f"flushed {self.flushes}".encode() not in self.answers.split(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"tracking=mlflow: the background logger has not logged its runs within "
                                   f"{timeout} s")
            if select.select([answer], [], [], left)[0]:
                read = os.read(answer, 4096)
                if not read:
                    self._ended("its output closed")
                self.answers = self.answers[-4096:] + read
                if self.pid is None and b"\n" in self.answers and self.answers.startswith(b"pid "):
                    self.pid = int(self.answers.split(b"\n", 1)[0][4:])

    def _ended(self, how: str) -> None:
        self.ended = True
        log.warning("tracking=mlflow: the background logger has ended (%s) before logging every event; the runs "
                    "this process sent it may be incomplete in MLflow, and its later runs start a new one", how)

    def forget(self) -> None:
        """In a forked child: close the pipes it inherited (the logger ends with the process that started it)."""
        for pipe in (self.process.stdin, self.process.stdout):
            try:
                pipe.close()
            except (OSError, ValueError):
                pass
        self.ended = True


_logger: BackgroundLogger | None = None


def background_logger(run_directory: Path | None) -> BackgroundLogger | None:
    """This process's background logger. A run's start (``run_directory`` given) starts one where there is none
    yet, or the last one has ended; a process that cannot start one says so, and that run goes on untracked."""
    global _logger
    if run_directory is not None and (_logger is None or _logger.ended):
        try:
            _logger = BackgroundLogger(original_cwd(run_directory), run_directory)
        except OSError as exc:
            log.warning("tracking=mlflow: the background logger could not start (%s); this run goes on untracked "
                        "(tracking.mlflow.synchronous=true logs from this process instead)", one_line(exc))
            _logger = None
    return _logger


def _forget_logger() -> None:
    global _logger
    if _logger is not None:
        _logger.forget()
        _logger = None


if hasattr(os, "register_at_fork"):  # a forked child (a DataLoader worker) keeps no pipe to the logger open
    os.register_at_fork(after_in_child=_forget_logger)


def flush(timeout: float = 120) -> None:
    """Wait until this process's background logger has logged every event of the runs so far (a script or a test
    that reads a run from MLflow right after ``coupler.train_run``); nothing to wait for without one."""
    if _logger is not None:
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
