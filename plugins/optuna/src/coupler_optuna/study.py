"""The study: its storage (a file in the sweep directory by default), sampler and pruner, and the trials that a
killed worker left running."""

from __future__ import annotations

import os
import socket
from pathlib import Path

from coupler.errors import ConfigError, CouplerError

#: the study's file in the sweep directory when ``search.storage`` is not set: Optuna's journal, whose report of an
#: epoch costs about 4 ms where SQLite's costs about 50 ms (a commit per report), which would dwarf a boosting round
DEFAULT_FILE = "study.journal"


def storage_url(storage: str | None, sweep_dir: Path) -> str:
    """``search.storage`` as the URL (or journal path) the trials' jobs open: absolute, so that a job that changed
    directory (``hydra.job.chdir``) or runs elsewhere opens the same study."""
    if storage is None:
        return str((Path(sweep_dir) / DEFAULT_FILE).absolute())
    if "://" in storage:
        return storage
    return str(Path(storage).absolute())


#: what ``search.storage`` may be, for the messages that refuse a value
ALLOWED = ("allowed: an Optuna journal file (an existing one, or a new file in an existing directory), sqlite:///FILE, "
           "or a database URL (postgresql://...); unset, the sweep directory's " + DEFAULT_FILE)


def _is_journal(path: Path) -> bool:
    """Whether an existing file is an Optuna journal (empty, or a first line that is one of the journal's JSON
    operations): the only file a journal storage may append to."""
    import json

    try:
        with open(path, "rb") as handle:
            first = handle.readline(1 << 20)
    except OSError:
        return False
    if not first:  # empty: nothing of the user's to append to
        return True
    try:
        operation = json.loads(first)
    except ValueError:  # JSONDecodeError, UnicodeDecodeError: not a journal
        return False
    return isinstance(operation, dict) and "op_code" in operation and "worker_id" in operation


def check_storage(url: str, given: str | None) -> None:
    """Refuse, before anything is opened (or created, or appended to), a journal path that is a directory or a
    file that is not an Optuna journal, and a file storage (journal or SQLite) whose directory does not exist."""
    shown = f"search.storage={given}" if given is not None else f"the study's journal {url}"
    if "://" not in url:
        path = Path(url)
    elif url.startswith("sqlite:///"):
        path = Path(url[len("sqlite:///"):])
    else:
        return
    if not path.parent.is_dir():
        raise CouplerError(f"{shown}: the directory {path.parent} does not exist; create it, or give another "
                           f"path ({ALLOWED}).")
    if "://" in url or not path.exists():
        return
    if not path.is_file():
        raise CouplerError(f"{shown}: {path} is not a file; {ALLOWED}.")
    if not _is_journal(path):
        raise CouplerError(f"{shown}: {path} is a file that is not an Optuna journal, and a study is never written "
                           f"into someone else's file; give a new file name ({ALLOWED}).")


def open_storage(url: str):
    """An Optuna storage: an RDB URL, or a journal file (any path without ``://``)."""
    import json

    import optuna

    if "://" not in url:
        from optuna.storages.journal import JournalFileBackend

        try:
            return optuna.storages.JournalStorage(JournalFileBackend(url))
        except (OSError, json.JSONDecodeError, UnicodeDecodeError, KeyError, optuna.exceptions.OptunaError) as exc:
            raise CouplerError(f"search.storage={url}: cannot open the study's journal ({type(exc).__name__}: "
                               f"{(str(exc).splitlines() or [''])[0]}); {ALLOWED}.") from None
    try:
        return optuna.storages.RDBStorage(url, engine_kwargs={"connect_args": {"timeout": 60}}
                                          if url.startswith("sqlite") else {})
    except (ImportError, ModuleNotFoundError) as exc:
        raise CouplerError(f"search.storage={url}: {exc}. Install the database's driver, or use a sqlite:/// URL "
                           f"or a journal file path.") from None
    except Exception as exc:  # noqa: BLE001 - SQLAlchemy's errors: one line naming the storage
        raise CouplerError(f"search.storage={url}: cannot open the study's storage ({type(exc).__name__}: "
                           f"{str(exc).splitlines()[0]}). Check the URL, or leave search.storage unset.") from None


def open_study(url: str, name: str, sampler, pruner, direction: str):
    """The study ``name`` in its storage: loaded when it is there (a rerun writes nothing to the storage by
    opening it), else created."""
    import optuna

    storage = open_storage(url)
    if name in optuna.get_all_study_names(storage):
        return optuna.load_study(study_name=name, storage=storage, sampler=sampler, pruner=pruner)
    return optuna.create_study(storage=storage, study_name=name, load_if_exists=True, sampler=sampler, pruner=pruner,
                               direction=direction)


def make_pruner(name: str):
    import optuna

    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=1)
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner()
    if name == "none":
        return optuna.pruners.NopPruner()
    raise ConfigError("search.pruner", name, "median, hyperband or none")


def make_sampler(name: str, seed: int, grid: dict | None):
    import optuna

    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "grid":
        return optuna.samplers.GridSampler(grid, seed=seed)
    if name == "cmaes":
        try:
            import cmaes  # noqa: F401 - Optuna's CmaEsSampler needs it
        except ImportError:
            raise CouplerError("search.sampler=cmaes needs the cmaes package: pip install cmaes (or choose tpe, "
                               "random or grid).") from None
        return optuna.samplers.CmaEsSampler(seed=seed)
    raise ConfigError("search.sampler", name, "tpe, random, grid or cmaes")


def worker_id() -> str:
    """This process, as a trial records who runs it: ``HOST:PID``."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _alive(worker: str | None) -> bool:
    """Whether the worker that started a trial may still run it (another machine's is assumed alive)."""
    from coupler.run_directory import process_alive

    if not worker or ":" not in worker:
        return False
    host, pid = worker.rsplit(":", 1)
    return host != socket.gethostname() or (pid.isdigit() and process_alive(int(pid)))


def fail_abandoned(study) -> list[int]:
    """Mark failed the trials still RUNNING whose worker process on this machine is gone (killed: SIGKILL, a
    power cut); they do not count against ``n_trials``. Returns their numbers."""
    import optuna

    abandoned = []
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        if not _alive(trial.user_attrs.get("worker")):
            study.tell(trial.number, state=optuna.trial.TrialState.FAIL, skip_if_finished=True)
            study.set_user_attr(f"interrupted_{trial.number}", True)
            abandoned.append(trial.number)
    return abandoned


def counted(study) -> int:
    """Trials that count against ``n_trials``: every trial but the interrupted ones (those are run again)."""
    interrupted = {key for key in study.user_attrs if key.startswith("interrupted_")}
    return sum(1 for t in study.get_trials(deepcopy=False) if f"interrupted_{t.number}" not in interrupted)
