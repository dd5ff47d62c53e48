"""The ``coupler`` command: ``plugins``, ``train``, ``evaluate``, ``predict``, ``new-plugin``.

Only argparse is imported at start-up: ``coupler --help`` loads no plugin, no Hydra and no ML library.
Every failure is one line (``coupler: error: ...``), with no traceback, and an exit status that says its kind:
2 for bad input (a ``CouplerError``), 1 for a fault of the machine (a full disk, a read-only directory: an
``OSError``), 130 for an interruption (Ctrl-C).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import sys
from pathlib import Path

from coupler import __version__

EXIT_USAGE = 2
EXIT_FAULT = 1
EXIT_INTERRUPTED = 130
#: set to 1 to let an unexpected error's traceback reach the terminal (for Coupler's and plugins' developers)
DEBUG_ENV = "COUPLER_DEBUG"

log = logging.getLogger("coupler")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="coupler",
        description="A plugin-based training harness: pick data, model and metrics by config, get one run "
                    "directory you can evaluate, predict with and ship.",
        epilog="Examples:\n"
               "  coupler train                                   # logistic regression on iris\n"
               "  coupler train data=breast_cancer model=random_forest model.params.n_estimators=300\n"
               "  coupler train -m model=logistic_regression,svm  # multirun\n"
               "  coupler evaluate runs/DATE/TIME\n"
               "  coupler predict runs/DATE/TIME input.csv predictions.csv\n"
               "  coupler plugins --json\n"
               "  coupler new-plugin my_model --kind model         # a plugin package to start from",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"coupler {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    plugins = commands.add_parser("plugins", help="list installed plugins, their components and status")
    plugins.add_argument("--json", action="store_true", help="print JSON instead of a table")

    commands.add_parser(
        "train", help="train with Hydra overrides (coupler train --help lists every choice)", add_help=False,
    )

    evaluate = commands.add_parser("evaluate", help="recompute a finished run's metrics, or on other data")
    evaluate.add_argument("run_dir", type=Path, help="the run directory")
    evaluate.add_argument("overrides", nargs="*", help="data overrides, e.g. data=csv data.path=F data.target=C")
    evaluate.add_argument("--json", action="store_true", help="print JSON instead of a table")

    predict = commands.add_parser("predict", help="predict every row of a CSV or Parquet file with a finished run")
    predict.add_argument("run_dir", type=Path, help="the run directory")
    predict.add_argument("input", type=Path, help="a CSV (or .parquet) file holding the training columns; for "
                                                       "numeric features (sequences) also an .npy/.npz array")
    predict.add_argument("output", type=Path, help="the CSV (or .parquet) file to write: a new file, outside any run "
                                                   "directory")
    predict.add_argument("--overwrite", action="store_true", help="replace OUTPUT if it exists (never the input)")
    predict.add_argument("--impute", action="store_true",
                         help="impute values that are not numbers in a numeric training column, as training imputed "
                              "missing values (without it, such a value is an error naming it)")

    new_plugin = commands.add_parser("new-plugin", help="write a new plugin package to start from: coupler-NAME/")
    new_plugin.add_argument("name", metavar="NAME", help="the plugin's and its component's name: a lower-case letter, "
                                                         "then lower-case letters, digits or underscores")
    new_plugin.add_argument("--kind", default="model", help="the component it provides: model (the default), data, "
                                                            "callback, metric, exporter or optimizer")
    new_plugin.add_argument("--directory", type=Path, default=Path("."),
                            help="where to create coupler-NAME/ (default: the current directory)")
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format="coupler: %(levelname)s: %(message)s", stream=sys.stderr, force=True)
    from coupler.errors import CouplerError

    try:
        if argv[:1] == ["train"]:
            return train(argv[1:])
        args = _parser().parse_args(argv)
        if args.command == "plugins":
            return plugins(args.json)
        if args.command == "evaluate":
            return evaluate(args.run_dir, args.overrides, args.json)
        if args.command == "predict":
            return predict(args.run_dir, args.input, args.output, args.overwrite, args.impute)
        if args.command == "new-plugin":
            return new_plugin(args.name, args.kind, args.directory)
        _parser().print_help(sys.stderr)
        return EXIT_USAGE
    except CouplerError as exc:
        print(f"coupler: error: {exc}", file=sys.stderr)
        return exc.exit_status
    except BrokenPipeError:  # the reader went away (coupler evaluate RUN | head): stop quietly
        _silence_stdout()
        return 1
    except OSError as exc:  # a full disk, a read-only or vanished directory
        from coupler.errors import describe_os_error

        print(f"coupler: error: {describe_os_error(exc)}", file=sys.stderr)
        return EXIT_FAULT
    except KeyboardInterrupt:
        print("coupler: error: interrupted (Ctrl-C); nothing was written.", file=sys.stderr)
        return EXIT_INTERRUPTED


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so that the interpreter's last flush into the closed pipe is no traceback."""
    import os

    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # an in-memory stdout (tests): nothing will be flushed
        pass


def plugins(as_json: bool) -> int:
    from coupler.plugin_manager import get_plugin_manager

    infos = list(get_plugin_manager().plugins.values())
    if as_json:
        print(json.dumps([info.as_dict() for info in infos], indent=2))
        return 0
    for info in infos:
        status = f"{info.status}: {info.error}" if info.status in ("failed", "incompatible") else info.status
        source = f"{info.distribution} {info.version}" + (" (built in)" if info.builtin else "")
        print(f"{info.name:<14} {source:<34} {status}")
        for kind, names in info.components.items():
            print(f"    {kind + ':':<10} {', '.join(sorted(names))}")
    return 0


def train(overrides: list[str]) -> int:
    """Hand the overrides to Hydra, which composes the config and runs (or sweeps) the job."""
    import hydra
    from hydra._internal.utils import get_args_parser

    from coupler.config import PRIMARY, check_overrides, loosen, store_configs
    from coupler.errors import CouplerError
    from coupler.plugin_manager import get_plugin_manager

    manager = get_plugin_manager()
    store_configs(manager)
    if any(arg in COMPLETION_FLAGS for arg in overrides):
        return _shell_completion([arg for arg in overrides if arg not in COMPLETION_FLAGS])  # no run, no checks
    if any(map(_is_resume, overrides)):
        overrides = _resume_overrides(overrides)
    # Hydra's own parser tells its flags (--cfg job, -m, --info searchpath) from the overrides
    check_overrides(get_args_parser().parse_known_args(overrides)[0].overrides, manager)
    outcomes: list = []  # a multirun's jobs (coupler.sweep_summary.JobOutcome), in the order they ran

    def job(cfg) -> dict | None:
        return _train_job(cfg, manager, outcomes)

    job.__module__ = __name__
    argv = sys.argv
    sys.argv = ["coupler-train", *loosen(overrides)]
    root = logging.getLogger()
    ours = list(root.handlers)  # Hydra configures logging itself (job_logging, hydra_logging): one handler, not two
    for handler in ours:
        root.removeHandler(handler)
    try:
        with _mode_from_the_command_line():
            hydra.main(version_base="1.3", config_path="conf", config_name=PRIMARY)(job)()
    except (FileExistsError, NotADirectoryError, PermissionError) as exc:  # Hydra could not make the run directory
        raise CouplerError(f"cannot create the run directory: {exc}. Choose another hydra.run.dir.") from None
    finally:
        sys.argv = argv
        for handler in ours:
            root.addHandler(handler)
    if not outcomes:
        return 0
    from coupler.sweep_summary import format_summary, write_summary

    path = write_summary(outcomes, outcomes[0].sweep_directory)
    print(f"sweep: {len(outcomes)} job(s), summary in {path}\n{format_summary(outcomes)}")
    failures = [outcome for outcome in outcomes if outcome.error]
    if failures:
        listing = "\n".join(f"  {outcome.directory}: {outcome.error}" for outcome in failures)
        print(f"coupler: error: {len(failures)} job(s) of the multirun failed:\n{listing}", file=sys.stderr)
        return EXIT_USAGE
    return 0


COMPLETION_FLAGS = ("-sc", "--shell-completion")
COMMANDS = ("plugins", "train", "evaluate", "predict", "new-plugin", "--help", "--version")
#: ``eval "$(coupler train -sc install=bash)"``: Hydra's own script completes ``python app.py`` or ``app``, and
#: asks ``app -sc query=bash``; ``coupler`` has commands, so this one completes them, asks ``coupler train`` for
#: the overrides after ``train``, and leaves file names to the shell after ``evaluate`` and ``predict``.
BASH_COMPLETION = """\
_coupler_completion()
{
    local word="${COMP_WORDS[COMP_CWORD]}"
    if (( COMP_CWORD == 1 )); then
        COMPREPLY=($(compgen -W "%s" -- "$word"))
        compopt +o nospace 2> /dev/null
    elif [ "${COMP_WORDS[1]}" == "train" ]; then
        local choices=$(COMP_LINE="$COMP_LINE" "${COMP_WORDS[0]}" train -sc query=bash 2> /dev/null)
        COMPREPLY=($(compgen -W "$choices" -- "$word"))
    else
        COMPREPLY=()
    fi
}
COMP_WORDBREAKS=${COMP_WORDBREAKS//=}
complete -o nospace -o default -F _coupler_completion coupler
""" % " ".join(COMMANDS)


def _shell_completion(requests: list[str]) -> int:
    """``-sc install=bash|zsh``, ``-sc uninstall=bash|zsh`` and the shell's own ``-sc query=bash``."""
    import os
    import re

    from coupler.errors import CouplerError

    action, _, shell = (requests[0] if len(requests) == 1 else "").partition("=")
    if action not in ("install", "uninstall", "query") or shell not in ("bash", "zsh"):
        given = " ".join(requests) or "(nothing)"
        raise CouplerError(f"-sc {given}: shell completion takes exactly one of install=bash, install=zsh, "
                           f"uninstall=bash, uninstall=zsh, and no overrides; e.g. "
                           f"eval \"$(coupler train -sc install=bash)\"")
    if action == "install":
        print(("autoload -Uz bashcompinit && bashcompinit\n" if shell == "zsh" else "") + BASH_COMPLETION, end="")
        return 0
    if action == "uninstall":
        print("complete -r coupler 2> /dev/null\nunset -f _coupler_completion")
        return 0
    import hydra

    from coupler.config import PRIMARY

    # Hydra strips the program's name from COMP_LINE and completes the rest: leave it "coupler OVERRIDES"
    os.environ["COMP_LINE"] = re.sub(r"^(\s*\S+)\s+train(?=\s|$)", r"\1", os.environ.get("COMP_LINE", "coupler"))
    argv, sys.argv = sys.argv, ["coupler", "-sc", "query=bash"]
    try:
        hydra.main(version_base="1.3", config_path="conf", config_name=PRIMARY)(_no_job)()
    finally:
        sys.argv = argv
    return 0


def _no_job(cfg) -> None:  # pragma: no cover - Hydra answers the query and returns before any job
    pass


#: Hydra flags that bring config files Coupler does not know of (and which might set ``hydra.mode``)
OTHER_CONFIG_FLAGS = ("--config-dir", "-cd", "--config-path", "-cp", "--config-name", "-cn")


@contextlib.contextmanager
def _mode_from_the_command_line():
    """Compose the config once, not twice. Hydra 1.3 composes the whole config a first time only to read
    ``hydra.mode`` (``Hydra.get_mode``), then again for the job: about 0.2 s of every run. Coupler's configs
    and its plugins' never set ``hydra.mode`` (docs/plugins.md), so unless the command line brings other
    config files (``--config-dir``, ``hydra.searchpath``, a ``+group=`` added from elsewhere) the mode is
    what the overrides say: ``hydra.mode=MULTIRUN``, or ``-m``, which Hydra reads from its own flag. In any
    other case, Hydra's own ``get_mode`` answers."""
    from hydra._internal.hydra import Hydra
    from hydra.types import RunMode

    original = Hydra.get_mode
    other_configs = any(arg.split("=", 1)[0] in OTHER_CONFIG_FLAGS for arg in sys.argv[1:])

    def get_mode(self, config_name, overrides):
        keys = [o.split("=", 1)[0] for o in overrides]
        if other_configs or any(k.startswith(("hydra.searchpath", "+")) and not k.startswith("++") for k in keys):
            return original(self, config_name, overrides)
        given = [o.split("=", 1)[1] for o, k in zip(overrides, keys) if k.lstrip("~") == "hydra.mode" and "=" in o]
        if not given:
            return None
        if given[-1] in RunMode.__members__:
            return RunMode[given[-1]]
        return original(self, config_name, overrides)  # RunMode.MULTIRUN, 2, a quoted value: Hydra parses it

    Hydra.get_mode = get_mode
    try:
        yield
    finally:
        Hydra.get_mode = original


def _is_resume(override: str) -> bool:
    return override.split("=", 1)[0].lstrip("+") == "resume"


def _resume_overrides(overrides: list[str]) -> list[str]:
    """``resume=RUN_DIR``: the interrupted run's own overrides, its directory, and the checkpoint to continue.
    The directory is checked to be a Coupler run in progress before anything touches it."""
    from coupler.errors import CouplerError

    values = [o.split("=", 1)[1] if "=" in o else "" for o in overrides if _is_resume(o)]
    others = [o for o in overrides if not _is_resume(o)]
    if len(values) != 1 or not values[0]:
        raise CouplerError("resume=RUN_DIR takes one run directory.")
    if others:
        raise CouplerError(f"resume={values[0]} continues the run with its own config; drop the other arguments "
                           f"{others}, or start a new run without resume=.")
    directory = Path(values[0]).resolve()
    _check_resumable(directory, values[0])
    saved = _saved_overrides(directory, values[0])
    return [*saved, f"resume={directory}", f"hydra.run.dir={directory}"]


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
    if not (directory / "checkpoints" / "last.ckpt").is_file() or not (directory / "overrides.yaml").is_file():
        raise CouplerError(f"resume={given}: the directory holds no checkpoints/last.ckpt to continue from. "
                           f"Engines that checkpoint (the torch engine, with trainer.resumable=true) write one after "
                           f"the first epoch; a run killed before its first epoch ended must start again.")
    unknown = unknown_entries(directory)
    if unknown:
        raise CouplerError(f"resume={given}: the directory holds {', '.join(unknown[:5])}"
                           f"{' ...' if len(unknown) > 5 else ''}, which a Coupler run does not write; it was left "
                           f"as it is. Move those out, or start a new run elsewhere.")


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
    return saved


def _prepare_resume(run_dir: Path) -> None:
    """Clear what the interrupted run left besides its checkpoints, its overrides, its log and its lock. Every
    entry is one a run writes (``_check_resumable`` refused any other before the resume began)."""
    import shutil

    from coupler.run_directory import LOCK

    for path in run_dir.iterdir():
        if path.name == "checkpoints":
            for stale in path.glob(".*.tmp"):  # a checkpoint being written when the run was killed
                stale.unlink()
        elif path.name not in ("overrides.yaml", "train.log", LOCK):
            shutil.rmtree(path) if path.is_dir() else path.unlink()


def _train_job(cfg, manager, outcomes: list) -> dict | None:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from coupler.config import to_plain
    from coupler.errors import CouplerError
    from coupler.run_directory import LOCK, MANIFEST, RunLock, RunLockedError, atomic_write_text
    from coupler.sweep_summary import JobOutcome
    from coupler.training import train as run_training

    hydra_config = HydraConfig.get()
    run_dir = Path(hydra_config.runtime.output_dir)
    sweeping = hydra_config.mode == RunMode.MULTIRUN
    # relative to where coupler was started: with hydra.job.chdir=true the job runs inside its own directory
    sweep_dir = Path(hydra_config.runtime.cwd, hydra_config.sweep.dir).resolve() if sweeping else None
    # Hydra made the directory and opened the log in it; anything else there is not this run's to touch.
    log_file = run_dir / f"{hydra_config.job.name}.log"
    new_log = not log_file.exists() or log_file.stat().st_size == 0
    resuming = cfg.get("resume") is not None
    checkpoint = run_dir / "checkpoints" / "last.ckpt"
    resumed_from = _file_state(checkpoint) if resuming else None

    def failed(message: str, status: int, job_only: bool = True) -> None:
        print(f"coupler: error: {message}", file=sys.stderr)
        if sweeping and job_only:  # the other jobs of the sweep still run; failures are listed last
            outcomes.append(JobOutcome(hydra_config.job.num, run_dir, sweep_dir, list(hydra_config.overrides.task),
                                       error=message.splitlines()[0]))
            return None
        raise SystemExit(status)

    try:  # atomic: of two runs started at one moment in one directory, one claims it, the other touches nothing
        lock = RunLock.claim(run_dir, resume=resuming)
    except RunLockedError as exc:
        return failed(str(exc), exc.exit_status)
    foreign = sorted(p.name for p in run_dir.iterdir() if p.name not in (log_file.name, LOCK))
    try:
        if MANIFEST in foreign:
            raise CouplerError(f"{run_dir} already holds a finished run; choose another directory (hydra.run.dir=...).")
        if resuming:
            _prepare_resume(run_dir)
        elif foreign:
            raise CouplerError(f"{run_dir} is not empty ({', '.join(foreign[:5])}{' ...' if len(foreign) > 5 else ''}); "
                               f"a run needs a new or empty directory (hydra.run.dir=...).")
        else:
            atomic_write_text(run_dir / "overrides.yaml", "".join(f"- {o}\n" for o in hydra_config.overrides.task))
        results = run_training(to_plain(cfg), run_dir, manager)
    except BaseException as exc:
        logged = getattr(exc, "traceback_file", None) == log_file  # a plugin's failure: its traceback is there
        fate = _clean_up_failed_run(run_dir, log_file, lock, own=not foreign or resuming, new_log=new_log,
                                    keep_log=logged or (not isinstance(exc, OSError) and _log_traceback(exc, log_file)))
        if isinstance(exc, KeyboardInterrupt):
            return failed(f"interrupted (Ctrl-C); {fate}", EXIT_INTERRUPTED, job_only=False)
        if isinstance(exc, OSError):
            from coupler.errors import describe_os_error

            return failed(f"{describe_os_error(exc)} {fate[0].upper()}{fate[1:]}", EXIT_FAULT, job_only=False)
        if isinstance(exc, SystemExit) or (not isinstance(exc, CouplerError) and _debugging()):
            raise
        if not isinstance(exc, CouplerError):  # a bug: one line here, the traceback in the log
            return failed(f"{type(exc).__name__}: {exc} (unexpected; {fate} Set {DEBUG_ENV}=1 to see the traceback "
                          f"on the terminal, and please report it)", EXIT_FAULT)
        # a resume refused before it wrote a checkpoint (a damaged one, say) would be refused again: no advice
        if fate.startswith("the run was kept") and not (resuming and _file_state(checkpoint) == resumed_from):
            print(f"coupler: the run stopped; continue it with: coupler train resume={run_dir}", file=sys.stderr)
        return failed(str(exc), exc.exit_status)
    lock.release()
    _print_results(results, run_dir)
    if sweeping:
        outcomes.append(JobOutcome(hydra_config.job.num, run_dir, sweep_dir,
                                   list(hydra_config.overrides.task), results))
    return results


def _file_state(path: Path) -> tuple | None:
    """(size, modification time) of a file, or None: whether it was written since."""
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_size, stat.st_mtime_ns


def _debugging() -> bool:
    import os

    return os.environ.get(DEBUG_ENV, "") not in ("", "0", "false", "no")


def _clean_up_failed_run(run_dir: Path, log_file: Path, lock, own: bool, new_log: bool, keep_log: bool) -> str:
    """Leave no half-written run: remove what the failed run wrote, keep an interrupted run that can resume,
    never touch what was there before. Returns what became of the directory, for the error line."""
    import shutil

    if (run_dir / "checkpoints" / "last.ckpt").is_file():  # an interrupted run that can go on: keep it
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


def evaluate(run_dir: Path, overrides: list[str], as_json: bool) -> int:
    from coupler.errors import CouplerError
    from coupler.evaluation import format_table
    from coupler.finished_run import FinishedRun
    from coupler.plugin_manager import get_plugin_manager

    manager = get_plugin_manager()
    run = FinishedRun(run_dir, manager)
    data_config = None
    if overrides:
        bad = [o for o in overrides if not o.lstrip("+~").startswith("data")]
        if bad:
            raise CouplerError(f"evaluate takes data overrides only (data=..., data.KEY=...), not {bad}")
        if any(o.startswith("data=") for o in overrides):
            data_config = compose(overrides, manager)["data"]
        else:  # data.KEY=... changes the run's own data config
            from omegaconf import OmegaConf

            changes = OmegaConf.from_dotlist([o.lstrip("+") for o in overrides])
            data_config = OmegaConf.to_container(OmegaConf.merge({"data": run.config["data"]}, changes))["data"]
    results = run.evaluate(data_config)
    print(json.dumps(results, indent=2) if as_json else format_table(results))
    return 0


def compose(overrides: list[str], manager) -> dict:
    """The config that ``overrides`` compose to, without running anything."""
    from hydra import compose as hydra_compose
    from hydra import initialize

    from coupler.config import PRIMARY, check_overrides, loosen, store_configs, to_plain

    store_configs(manager)
    check_overrides(overrides, manager)
    with initialize(version_base="1.3", config_path="conf"):
        return to_plain(hydra_compose(PRIMARY, overrides=loosen(overrides)))


def predict(run_dir: Path, input_path: Path, output_path: Path, overwrite: bool = False, impute: bool = False) -> int:
    from coupler.finished_run import FinishedRun
    from coupler.plugin_manager import get_plugin_manager
    from coupler.run_directory import remove_stale_temporaries

    check_output(output_path, input_path, overwrite)
    remove_stale_temporaries(output_path)
    rows = FinishedRun(run_dir, get_plugin_manager()).predict(input_path, output_path, impute)
    print(f"wrote {rows} predictions to {output_path}")
    return 0


def check_output(output_path: Path, input_path: Path, overwrite: bool) -> None:
    """Refuse an output that would destroy something: the input itself, a file inside a run directory, an
    existing file (unless ``overwrite``), or a path whose directory does not exist."""
    from coupler.errors import CouplerError
    from coupler.run_directory import inside_run

    output_path, shown = Path(output_path), repr(str(output_path))
    if output_path.exists() and input_path.exists() and output_path.resolve() == Path(input_path).resolve():
        raise CouplerError(f"output {shown} is the input file; write the predictions to a new file.")
    run = inside_run(output_path)
    if run is not None:
        raise CouplerError(f"output {shown} lies inside the run directory {str(run)!r}; a run's files are sealed. "
                           f"Write the predictions outside it.")
    if output_path.is_dir():
        raise CouplerError(f"output {shown} is a directory; give a file name (out.csv or out.parquet).")
    if output_path.exists() and not overwrite:
        raise CouplerError(f"output {shown} exists; give a new file name, or --overwrite to replace it.")
    if not output_path.absolute().parent.is_dir():
        raise CouplerError(f"output {shown}: the directory {str(output_path.absolute().parent)!r} does not exist; "
                           f"create it first.")


def new_plugin(name: str, kind: str, directory: Path) -> int:
    from coupler.plugin_manager import get_plugin_manager
    from coupler.scaffold import create

    path = create(name, kind, directory, get_plugin_manager())
    print(f"created {path}: the {kind} plugin {name}. Next:\n"
          f"  cd {path}\n"
          f"  pip install -e '.[test]'\n"
          f"  python -m pytest\n"
          f"then see its README.md for how to use and publish it.")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
