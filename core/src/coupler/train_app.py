"""The ``coupler-train`` program: Coupler's Hydra application, which ``coupler train`` runs.

It is an ordinary ``@hydra.main`` application: Hydra reads its command line, so Hydra's flags and config groups
work as in any Hydra app (``-m``, ``--cfg``, ``--info``, ``-sc``, ``-cp``/``-cn``, ``--config-dir``,
``hydra/launcher=...``, ``hydra/sweeper=...``, ``hydra/job_logging=...``), and a launcher or strategy that
re-executes the command line (Lightning's DDP, submitit, torchrun) runs the same job again. Coupler adds, through
public seams only:

- before Hydra composes anything, the overrides are checked (``config.check_overrides``): an unknown component, a
  key no config lists, a value of the wrong type is one line naming the fix, with exit status 2;
- ``resume=RUN_DIR`` starts the program again (``restart``) with the interrupted run's own overrides, so that the
  command line of the resumed process says the whole job;
- the job (``train_job``, the task function) claims the run directory, trains and seals it; a secondary process
  of a distributed job (``coupler.distributed``) trains its share and writes nothing;
- each job of a multirun records its outcome, and ``hydra_callbacks.SweepOutcomes`` collects them into the sweep's
  summary after the last one, in whichever processes the launcher ran them.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path

from coupler.cli import DEBUG_ENV, EXIT_FAULT, EXIT_INTERRUPTED, EXIT_USAGE, reported

log = logging.getLogger("coupler")

#: Hydra's flags that take a value (``--cfg job``, ``-cp DIR``); ``--info`` takes one of ``INFO_CHOICES`` or none
VALUE_FLAGS = frozenset({"--cfg", "-c", "--package", "-p", "--config-path", "-cp", "--config-name", "-cn",
                         "--config-dir", "-cd", "--shell-completion", "-sc", "--experimental-rerun"})
INFO_FLAGS = frozenset({"--info", "-i"})
INFO_CHOICES = frozenset({"all", "config", "defaults", "defaults-tree", "plugins", "searchpath"})
#: flags under which Hydra composes nothing Coupler should check (help, completion)
UNCHECKED_FLAGS = frozenset({"--hydra-help", "--version", "--shell-completion", "-sc"})


def main() -> None:
    """The ``coupler-train`` console script."""
    sys.exit(run())


def split_command_line(args: list[str]) -> tuple[dict[str, str | None], list[str]]:
    """Hydra's command line (``hydra --help`` documents it) split into its flags, ``{flag: value or None}``, and
    its overrides, in order. An override never starts with ``-``; a flag's value follows it or its ``=``."""
    flags: dict[str, str | None] = {}
    overrides: list[str] = []
    position = 0
    while position < len(args):
        arg = args[position]
        if arg.startswith("-"):
            name, equals, value = arg.partition("=")
            following = args[position + 1] if position + 1 < len(args) else None
            if equals:
                flags[name] = value
            elif following is not None and (name in VALUE_FLAGS or (name in INFO_FLAGS and following in INFO_CHOICES)):
                flags[name] = following
                position += 1
            else:
                flags[name] = None
        else:
            overrides.append(arg)
        position += 1
    return flags, overrides


def run() -> int:
    """Check ``sys.argv``'s overrides, then hand the command line to Hydra, which composes the config and runs (or
    sweeps) ``train_job``. Returns the exit status."""
    root = logging.getLogger()
    handlers = list(root.handlers)  # Hydra configures logging for the job; the caller's comes back afterwards
    logging.basicConfig(level=logging.INFO, format="coupler: %(levelname)s: %(message)s", stream=sys.stderr, force=True)
    try:
        return reported(_run)
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in handlers:
            root.addHandler(handler)


def _run() -> int:
    import hydra

    from coupler.config import PRIMARY, check_overrides, register_resolvers, store_configs
    from coupler.distributed import secondary_process
    from coupler.errors import CouplerError
    from coupler.hydra_callbacks import SweepOutcomes
    from coupler.plugin_manager import get_plugin_manager

    root = logging.getLogger()
    manager = get_plugin_manager()
    flags, overrides = split_command_line(sys.argv[1:])
    store_configs(manager, chosen=_chosen_groups(overrides) if "--help" in flags or "-h" in flags else None)
    register_resolvers()
    _check_flags(flags)
    if not secondary_process() and not UNCHECKED_FLAGS.intersection(flags):
        # the first process checks; a secondary one of a distributed job runs what it checked
        resume = [o for o in overrides if _is_resume(o)]
        if resume:
            replayed = _resume_command(resume, [o for o in overrides if not _is_resume(o)])
            if replayed is not None:
                return restart([*_flag_arguments(sys.argv[1:]), *replayed])
        # Hydra reads a --config-dir from the current directory, a relative -cp from this module's (known here)
        extra_dirs = (*(d for d in (flags.get("--config-path"), flags.get("-cp")) if d and Path(d).is_absolute()),
                      *(str(Path(d).absolute()) for d in (flags.get("--config-dir"), flags.get("-cd")) if d))
        check_overrides(overrides, manager, extra_dirs=extra_dirs,
                        own_primary=flags.get("--config-name", flags.get("-cn")) in (None, PRIMARY))
    SweepOutcomes.directory = None
    for handler in list(root.handlers):  # Hydra's logging configs take over: one handler per message, not two
        root.removeHandler(handler)
    try:
        hydra.main(version_base="1.3", config_path="conf", config_name=PRIMARY)(train_job)()
    except (FileExistsError, NotADirectoryError, PermissionError) as exc:  # Hydra could not make the directory
        raise CouplerError(f"cannot create the run directory: {exc}. Choose another hydra.run.dir.") from None
    if SweepOutcomes.directory is not None:
        return _report_sweep(SweepOutcomes.directory)
    return 0


def _chosen_groups(overrides: list[str]) -> dict:
    """``{group: option}`` of the plain ``group=option`` overrides (``callbacks=[a,b]``: a list), for ``--help``."""
    chosen: dict = {}
    for override in overrides:
        key, equals, value = override.partition("=")
        if not equals or not key.isidentifier() or not value:
            continue
        if value.startswith("[") and value.endswith("]"):
            chosen[key] = [item.strip() for item in value[1:-1].split(",") if item.strip()]
        elif "," not in value:  # a sweep's values: not one choice
            chosen[key] = value
    return chosen


def restart(args: list[str], program: list[str] | None = None) -> int:
    """Replace this process by ``coupler-train ARGS``, so that the command line says the whole job and a strategy
    that re-executes it (DDP) runs the same job. ``program``: how to start ``coupler-train``; by default, as this
    process was started (``python SCRIPT`` or ``python -m MODULE``). Returns only on Windows, which has no exec:
    there the program runs as a child, and its exit status is returned."""
    import __main__

    if program is None:
        spec = getattr(__main__, "__spec__", None)
        program = [sys.executable, "-m", spec.name] if spec is not None else [sys.executable, sys.argv[0]]
    command = [*program, *args]
    sys.stdout.flush()
    sys.stderr.flush()
    if sys.platform == "win32":  # pragma: no cover - no exec there
        import subprocess

        return subprocess.call(command)
    os.execv(command[0], command)
    raise AssertionError("unreachable")  # pragma: no cover


#: Hydra's flags that choose what the program does; Hydra takes one at most
MODE_FLAGS = (("--run", "-r"), ("--multirun", "-m"), ("--cfg", "-c"), ("--info", "-i"), ("--shell-completion", "-sc"))
#: what ``-sc`` takes: Hydra's completion plugins are bash, zsh and fish
COMPLETION_REQUEST = r"(install|uninstall|query)=(bash|zsh|fish)"


def _check_flags(flags: dict[str, str | None]) -> None:
    """Refuse in one line what Hydra would refuse with a traceback (``ValueError``): two of ``MODE_FLAGS``, and a
    completion request no plugin answers."""
    import re

    from coupler.errors import CouplerError

    modes = [next(name for name in names if name in flags) for names in MODE_FLAGS if set(names) & flags.keys()]
    if len(modes) > 1:
        raise CouplerError(f"{' and '.join(modes)} cannot go together: Hydra takes one of --run, --multirun, --cfg, "
                           f"--info and --shell-completion.")
    for name in MODE_FLAGS[-1]:
        if name in flags and not re.fullmatch(COMPLETION_REQUEST, flags[name] or ""):
            given = f"{name} {flags[name]}" if flags[name] else name
            raise CouplerError(f"{given}: shell completion takes install=bash, install=zsh, install=fish, "
                               f"uninstall=SHELL or query=SHELL; for coupler itself: eval \"$(coupler completion bash)\".")


def _flag_arguments(args: list[str]) -> list[str]:
    """The flags of a command line with their values, in order (the overrides left out)."""
    flags, _ = split_command_line(args)
    out: list[str] = []
    for name, value in flags.items():
        out += [name] if value is None else [f"{name}={value}"]
    return out


def _is_resume(override: str) -> bool:
    return override.split("=", 1)[0].lstrip("+") == "resume"


def _resume_command(resume: list[str], others: list[str]) -> list[str] | None:
    """``resume=RUN_DIR`` alone: the overrides that continue the run (its own, its directory, the resume point),
    for ``restart``. The command line ``restart`` gives (those overrides already): None, go on. Anything else
    beside ``resume=`` is refused. The directory is checked to be a Coupler run in progress first."""
    from coupler.errors import CouplerError

    values = [o.split("=", 1)[1] if "=" in o else "" for o in resume]
    if len(values) != 1 or not values[0]:
        raise CouplerError("resume=RUN_DIR takes one run directory.")
    directory = Path(values[0]).resolve()
    drop = CouplerError(f"resume={values[0]} continues the run with its own config; drop the other arguments "
                        f"{others}, or start a new run without resume=.")
    if others and others[-1] != f"hydra.run.dir={directory}":  # not the command line restart gives
        raise drop
    _check_resumable(directory, values[0])
    saved = _saved_overrides(directory, values[0])
    if not others:
        return [*saved, f"resume={directory}", f"hydra.run.dir={directory}"]
    if others == [*saved, f"hydra.run.dir={directory}"] and values[0] == str(directory):
        return None
    raise drop


def resume_points(directory: Path) -> list[Path]:
    """Where the installed engines would continue a run in ``directory`` from (the ``resume_point`` hook)."""
    from coupler.plugin_manager import get_plugin_manager

    points = []
    for implementation in get_plugin_manager().hooks.hook.resume_point.get_hookimpls():
        try:  # an engine's failing answer must not keep a failed run from being cleaned up
            point = implementation.function(directory=Path(directory))
        except Exception as exc:  # noqa: BLE001 - any plugin failure: named, and counted as no resume point
            log.warning("plugin %r failed in resume_point (%s: %s); its answer is ignored",
                        implementation.plugin_name, type(exc).__name__, exc)
            continue
        if point is not None:
            points.append(Path(point))
    return points


def resume_point(directory: Path) -> Path | None:
    """The file an installed engine wrote in ``directory`` to continue the run from, or None: a run without one
    cannot resume."""
    return next((p for p in resume_points(directory) if p.is_file()), None)


def _top_entry(path: Path | None, directory: Path) -> str | None:
    """The entry of ``directory`` that holds ``path`` (``checkpoints`` for ``checkpoints/last.ckpt``), or None."""
    if path is None or not path.resolve().is_relative_to(directory.resolve()):
        return None
    parts = path.resolve().relative_to(directory.resolve()).parts
    return parts[0] if parts else None


def _check_resumable(directory: Path, given: str) -> None:
    from coupler.errors import CouplerError
    from coupler.run_directory import MANIFEST, lock_holder, unknown_entries

    if not directory.is_dir():
        raise CouplerError(f"resume={given}: no such directory.")
    if (directory / MANIFEST).exists():
        raise CouplerError(f"resume={given}: this run finished; there is nothing to resume "
                           f"(start a new run, or evaluate it with coupler evaluate {given}).")
    holder = lock_holder(directory)
    if holder:
        raise CouplerError(f"resume={given}: the run is still training ({holder}); wait for it, or stop it first.")
    if resume_point(directory) is None or not (directory / "overrides.yaml").is_file():
        wanted = " or ".join(str(p.relative_to(directory)) if p.is_relative_to(directory) else str(p)
                             for p in resume_points(directory)) or "resume point of an installed engine"
        raise CouplerError(f"resume={given}: the directory holds no {wanted} to continue from. An engine that can "
                           f"resume (the torch engine) writes one after the first epoch; a run killed before then, "
                           f"or of a model that cannot resume, must start again.")
    engine_entries = frozenset(_top_entry(p, directory) for p in resume_points(directory))
    unknown = unknown_entries(directory, engine_entries)
    if unknown:  # the folders the run's trackers write (RUN/tensorboard) are its own too
        unknown = unknown_entries(directory, engine_entries | _tracker_entries(directory, given))
    if unknown:
        raise CouplerError(f"resume={given}: the directory holds {', '.join(unknown[:5])}"
                           f"{' ...' if len(unknown) > 5 else ''}, which a Coupler run does not write; it was left "
                           f"as it is. Move those out, or start a new run elsewhere.")


def _tracker_entries(directory: Path, given: str) -> frozenset[str]:
    """The entries of ``directory`` the interrupted run's trackers write (each tracker's ``entries``, the first
    part of each path): its trackers as its saved overrides compose and build them. None where those overrides
    do not compose (the resume refuses them next, naming why)."""
    from pathlib import PurePosixPath

    from coupler.config import compose
    from coupler.errors import CouplerError
    from coupler.plugin_manager import get_plugin_manager

    manager = get_plugin_manager()
    try:
        nodes = compose(_saved_overrides(directory, given), manager).get("tracking") or {}
        trackers = [manager.registry.get("tracker", (node or {}).get("name", key)).build(f"tracking.{key}", node or {})
                    for key, node in nodes.items()]
    except CouplerError:
        return frozenset()
    return frozenset(PurePosixPath(entry).parts[0] for tracker in trackers for entry in getattr(tracker, "entries", ()))


#: Hydra settings a resume replays from ``overrides.yaml``: they name no code
REPLAYED_HYDRA_KEYS = ("hydra.job.chdir", "hydra.verbose")


def _saved_overrides(directory: Path, given: str) -> list[str]:
    """The run's ``overrides.yaml``: Coupler settings, and of Hydra's only ``REPLAYED_HYDRA_KEYS``. Any other
    ``hydra`` key there (a callback, a launcher: code Hydra would import) is refused: nothing from a run
    directory chooses code to run."""
    import yaml

    from coupler.errors import CouplerError

    try:
        saved = yaml.safe_load((directory / "overrides.yaml").read_text()) or []
    except (yaml.YAMLError, UnicodeDecodeError):
        saved = None
    if not isinstance(saved, list) or not all(isinstance(o, str) for o in saved):
        raise CouplerError(f"resume={given}: overrides.yaml is not a list of overrides; the run is damaged. Start "
                           f"a new run.")
    saved = [o for o in saved if o.split("=", 1)[0].lstrip("+") != "hydra.run.dir"]
    hydra_keys = [o for o in saved if o.lstrip("+~").startswith(("hydra.", "hydra/"))
                  and o.split("=", 1)[0].lstrip("+~") not in REPLAYED_HYDRA_KEYS]
    if hydra_keys:
        raise CouplerError(f"resume={given}: overrides.yaml sets {hydra_keys[0]}; a resume replays Coupler settings "
                           f"only, never Hydra's (they can name code to run). Start a new run with that setting.")
    if any(_is_resume(o) for o in saved):
        raise CouplerError(f"resume={given}: overrides.yaml holds a resume=; the run is damaged. Start a new run.")
    return saved


def _prepare_resume(run_dir: Path) -> None:
    """Clear what the interrupted run left besides the entry holding its resume point (the engine's, which the
    engine tidies), its overrides, its log and its lock. Every entry is one a run writes (``_check_resumable``
    refused any other before the resume began)."""
    import shutil

    from coupler.run_directory import LOCK

    point = resume_point(run_dir)
    kept = {"overrides.yaml", "train.log", LOCK, _top_entry(point, run_dir)}
    for path in run_dir.iterdir():
        if path.name not in kept:
            shutil.rmtree(path) if path.is_dir() else path.unlink()


def train_job(cfg) -> dict | None:
    """Hydra's task function: one job, in whichever process the launcher runs it."""
    from coupler.distributed import secondary_process
    from coupler.plugin_manager import get_plugin_manager

    manager = get_plugin_manager()
    if secondary_process():
        return _secondary_job(cfg, manager)
    return _job(cfg, manager)


#: the prefix of a secondary process's scratch directory, followed by its pid: ``coupler-secondary-PID-XXXX``
SCRATCH_PREFIX = "coupler-secondary-"


def _secondary_job(cfg, manager) -> None:
    """A secondary process of a distributed job: it trains its share into a scratch directory that goes
    afterwards (``training.train`` stops after ``Model.fit`` there); the run directory is rank 0's. Its console
    shows warnings only (rank 0 says the rest). A launcher may kill it (Lightning does on Ctrl-C) before it
    removes its scratch: the next one removes those whose process is gone."""
    import shutil
    import tempfile

    from coupler.config import to_plain
    from coupler.training import train as run_training

    logging.getLogger().setLevel(logging.WARNING)
    _remove_stale_scratch(Path(tempfile.gettempdir()))
    scratch = Path(tempfile.mkdtemp(prefix=f"{SCRATCH_PREFIX}{os.getpid()}-"))
    try:
        run_training(to_plain(cfg), scratch, manager)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _remove_stale_scratch(directory: Path) -> None:
    import shutil

    from coupler.run_directory import process_alive

    for path in directory.glob(f"{SCRATCH_PREFIX}*-*"):
        pid = path.name[len(SCRATCH_PREFIX):].split("-", 1)[0]
        if pid.isdigit() and not process_alive(int(pid)) and path.is_dir() and not path.is_symlink() \
                and path.stat().st_uid == os.getuid():  # ours alone
            shutil.rmtree(path, ignore_errors=True)


def _job(cfg, manager) -> dict | None:
    from functools import partial

    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from coupler.config import to_plain
    from coupler.hydra_callbacks import record_outcome
    from coupler.run_directory import LOCK, RunLock, RunLockedError
    from coupler.training import train as run_training

    hydra_config = HydraConfig.get()
    run_dir = Path(hydra_config.runtime.output_dir)
    sweeping = hydra_config.mode == RunMode.MULTIRUN
    failed = partial(_failed, hydra_config, run_dir, sweeping)
    # Hydra made the directory and opened the log in it; anything else there is not this run's to touch.
    log_file = run_dir / f"{hydra_config.job.name}.log"
    new_log = not log_file.exists() or log_file.stat().st_size == 0
    resuming = cfg.get("resume") is not None
    resumed_from = _file_state(resume_point(run_dir)) if resuming else None

    try:  # atomic: of two runs started at one moment in one directory, one claims it, the other touches nothing
        lock = RunLock.claim(run_dir, resume=resuming)
    except RunLockedError as exc:
        return failed(str(exc), exc.exit_status)
    foreign = sorted(p.name for p in run_dir.iterdir() if p.name not in (log_file.name, LOCK))
    try:
        _take_directory(run_dir, foreign, resuming, hydra_config.overrides.task)
        results = run_training(to_plain(cfg), run_dir, manager)
    except BaseException as exc:
        logged = getattr(exc, "traceback_file", None) == log_file  # a plugin's failure: its traceback is there
        fate = _clean_up_failed_run(run_dir, log_file, lock, own=not foreign or resuming, new_log=new_log,
                                    keep_log=logged or (not isinstance(exc, OSError) and _log_traceback(exc, log_file)))
        kept_new_resume_point = not (resuming and _file_state(resume_point(run_dir)) == resumed_from)
        return _job_failed(exc, fate, run_dir, failed, kept_new_resume_point)
    lock.release()
    _print_results(results, run_dir)
    if sweeping:
        record_outcome(hydra_config, run_dir, results=results)
    return results


def _failed(hydra_config, run_dir: Path, sweeping: bool, message: str, status: int, job_only: bool = True) -> None:
    """Print a job's failure; in a sweep, record it and let the other jobs run (unless the machine failed)."""
    from coupler.hydra_callbacks import record_outcome

    print(f"coupler: error: {message}", file=sys.stderr)
    if sweeping:  # the summary lists the failures
        record_outcome(hydra_config, run_dir, error=message.splitlines()[0])
        if job_only:
            return None
    raise SystemExit(status)


def _take_directory(run_dir: Path, foreign: list[str], resuming: bool, overrides: list[str]) -> None:
    """Refuse a directory that holds a finished run or someone else's files; prepare a resume; record the
    command line's overrides of a new run."""
    from coupler.errors import CouplerError
    from coupler.run_directory import MANIFEST, atomic_write_text

    if MANIFEST in foreign:
        raise CouplerError(f"{run_dir} already holds a finished run; choose another directory (hydra.run.dir=...).")
    if resuming:
        _prepare_resume(run_dir)
    elif foreign:
        raise CouplerError(f"{run_dir} is not empty ({', '.join(foreign[:5])}{' ...' if len(foreign) > 5 else ''}); "
                           f"a run needs a new or empty directory (hydra.run.dir=...).")
    else:
        atomic_write_text(run_dir / "overrides.yaml", "".join(f"- {o}\n" for o in overrides))


def _job_failed(exc: BaseException, fate: str, run_dir: Path, failed, kept_new_resume_point: bool) -> None:
    """Report a job that raised ``exc`` (its directory already cleaned up: ``fate`` says how) with the exit status
    its kind deserves: interrupted, a fault of the machine, a bug (traceback in the log), or the user's error."""
    from coupler.errors import CouplerError

    if isinstance(exc, KeyboardInterrupt):
        print(f"coupler: error: interrupted (Ctrl-C); {fate}", file=sys.stderr)
        raise SystemExit(EXIT_INTERRUPTED) from None
    if isinstance(exc, OSError):
        from coupler.errors import describe_os_error

        return failed(f"{describe_os_error(exc)} {fate[0].upper()}{fate[1:]}", EXIT_FAULT, job_only=False)
    from coupler.errors import RunPruned

    if isinstance(exc, RunPruned):  # stopped by the search (coupler-optuna), which records the trial as pruned
        print(f"coupler: {exc}; {fate}", file=sys.stderr)
        return None
    if isinstance(exc, SystemExit) or (not isinstance(exc, CouplerError) and _debugging()):
        raise exc
    if not isinstance(exc, CouplerError):  # a bug: one line here, the traceback in the log
        return failed(f"{type(exc).__name__}: {exc} (unexpected; {fate} Set {DEBUG_ENV}=1 to see the traceback "
                      f"on the terminal, and please report it)", EXIT_FAULT)
    # a resume refused before it wrote a new resume point (a damaged one, say) would be refused again: no advice
    if fate.startswith("the run was kept") and kept_new_resume_point:
        print(f"coupler: the run stopped; continue it with: coupler train resume={run_dir}", file=sys.stderr)
    return failed(str(exc), exc.exit_status)


def _report_sweep(directory: Path) -> int:
    """Print the sweep's summary (``hydra_callbacks.SweepOutcomes`` wrote it): its groups of jobs, ranked by
    validation; exit status 2 if a job failed."""
    from coupler.hydra_callbacks import SweepOutcomes
    from coupler.sweep_summary import FILE, GROUPS_FILE, format_summary

    outcomes, summary = SweepOutcomes.outcomes, SweepOutcomes.summary
    if not outcomes or summary is None:
        return 0
    print(f"sweep: {len(outcomes)} job(s) in {len(summary.groups)} group(s), summary in {directory / FILE}, groups in "
          f"{directory / GROUPS_FILE}\n{format_summary(summary)}")
    failures = [outcome for outcome in outcomes if outcome.error]
    if failures:
        listing = "\n".join(f"  {outcome.directory}: {outcome.error}" for outcome in failures)
        print(f"coupler: error: {len(failures)} job(s) of the multirun failed:\n{listing}", file=sys.stderr)
        return EXIT_USAGE
    return 0


def _file_state(path: Path | None) -> tuple | None:
    """(size, modification time) of a file, or None: whether it was written since."""
    if path is None:
        return None
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_size, stat.st_mtime_ns


def _debugging() -> bool:
    return os.environ.get(DEBUG_ENV, "") not in ("", "0", "false", "no")


def _clean_up_failed_run(run_dir: Path, log_file: Path, lock, own: bool, new_log: bool, keep_log: bool) -> str:
    """Leave no half-written run: remove what the failed run wrote, keep an interrupted run that can resume,
    never touch what was there before. Returns what became of the directory, for the error line."""
    import shutil

    if resume_point(run_dir) is not None:  # an interrupted run that can go on: keep it
        lock.release(keep=True)
        return f"the run was kept; continue it with: coupler train resume={run_dir}"
    lock.release()
    if not own:  # someone else's directory: take back only the log Hydra opened in it
        if new_log and not keep_log:
            log_file.unlink(missing_ok=True)
        return f"{run_dir} was left as it was."
    if keep_log:  # only the log stays, with the traceback
        for path in run_dir.iterdir():
            if path != log_file:
                shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
        return f"the half-written run was removed; the traceback is in {log_file}."
    shutil.rmtree(run_dir, ignore_errors=True)
    return f"the half-written run directory {run_dir} was removed."


def _log_traceback(exc: BaseException, log_file: Path) -> bool:
    """Write to the run's log the traceback of a failure inside code (a library's, Coupler's own), through
    ``plugin_faults.record_traceback`` as for a plugin's: the terminal gets one line. Returns whether the
    traceback is in ``log_file`` (a ``CouplerError`` of bad input has none to keep, unless it wraps another
    exception)."""
    from coupler.errors import CouplerError
    from coupler.plugin_faults import record_traceback

    cause = exc.__cause__ if isinstance(exc, CouplerError) else exc
    if cause is None or isinstance(cause, (KeyboardInterrupt, SystemExit, CouplerError)):
        return False
    try:
        return record_traceback(cause, f"the run failed: {type(cause).__name__}", log_file.parent) == log_file
    except OSError:
        return False


def _print_results(results: dict, run_dir: Path) -> None:
    from coupler.evaluation import format_table

    print(format_table(results))
    if (run_dir / "baseline.json").is_file():  # the data set's reference predictions, measured alike
        baseline = json.loads((run_dir / "baseline.json").read_text())
        print(f"baseline ({baseline.pop('name')}):")
        print(format_table(baseline))
    print(f"run directory: {run_dir}")


if __name__ == "__main__":  # pragma: no cover
    main()
