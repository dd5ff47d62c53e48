"""The ``coupler`` command: ``plugins``, ``train``, ``evaluate``, ``predict``, ``export``, ``compare``, ``explain``,
``report``, ``drift``, ``serve``, ``new-plugin``.

Only argparse is imported at start-up: ``coupler --help`` loads no plugin, no Hydra and no ML library.
Every failure is one line (``coupler: error: ...``), with no traceback, and an exit status that says its kind:
2 for bad input (a ``CouplerError``), 1 for a fault of the machine (a full disk, a read-only directory: an
``OSError``), 130 for an interruption (Ctrl-C).
"""

from __future__ import annotations

import argparse
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


EXAMPLES = """Examples:
  coupler train                                   # logistic regression on iris
  coupler train data=breast_cancer model=random_forest model.params.n_estimators=300
  coupler train -m model=logistic_regression,svm  # multirun
  coupler evaluate runs/DATE/TIME
  coupler predict runs/DATE/TIME input.csv predictions.csv
  coupler export runs/DATE/TIME --format onnx     # one file that answers like predict
  coupler compare runs/A runs/B                   # settings that differ, metrics side by side
  coupler explain runs/DATE/TIME                  # permutation importance and SHAP values
  coupler report runs/DATE/TIME                   # one HTML page: metrics, plots, config
  coupler serve runs/DATE/TIME --port 8000        # a REST server; coupler drift RUN new.csv
  coupler plugins --json
  coupler new-plugin my_model --kind model         # a plugin package to start from"""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="coupler",
        description="A plugin-based training harness: pick data, model and metrics by config, get one run "
                    "directory you can evaluate, predict with and ship.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"coupler {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    plugins = commands.add_parser("plugins", help="list installed plugins, their components and status")
    plugins.add_argument("--json", action="store_true", help="print JSON instead of a table")

    commands.add_parser(
        "train", help="train with Hydra overrides: runs coupler-train, Coupler's Hydra app (coupler train --help "
                      "lists every choice)", add_help=False,
    )

    evaluate = commands.add_parser("evaluate", help="recompute a finished run's metrics, or on other data")
    evaluate.add_argument("run_dir", type=Path, help="the run directory")
    evaluate.add_argument("overrides", nargs="*", help="data overrides, e.g. data=csv data.path=F data.target=C")
    evaluate.add_argument("--json", action="store_true", help="print JSON instead of a table")

    _add_predict(commands)
    _add_export(commands)
    _add_compare(commands)
    _add_explain(commands)
    _add_report(commands)
    _add_drift_and_serve(commands)
    new_plugin = commands.add_parser("new-plugin", help="write a new plugin package to start from: coupler-NAME/")
    new_plugin.add_argument("name", metavar="NAME", help="the plugin's and its component's name: a lower-case letter, "
                                                         "then lower-case letters, digits or underscores")
    new_plugin.add_argument("--kind", default="model", help="the component it provides: model (the default), data, "
                                                            "callback, metric, exporter or optimizer (for coupler-torch)")
    new_plugin.add_argument("--directory", type=Path, default=Path("."),
                            help="where to create coupler-NAME/ (default: the current directory)")

    shell = commands.add_parser("completion", help="print the shell completion script: eval \"$(coupler completion "
                                                   "bash)\" (coupler-train has Hydra's own: coupler-train -sc "
                                                   "install=bash)")
    shell.add_argument("shell", choices=("bash", "zsh"), help="the shell")
    return parser


def _add_predict(commands) -> None:
    predict = commands.add_parser("predict", help="predict every row of a CSV or Parquet file (or a directory of "
                                                  "Parquet files) with a finished run, a batch of rows at a time")
    predict.add_argument("run_dir", type=Path, help="the run directory")
    predict.add_argument("input", type=Path, help="a CSV (or .parquet) file holding the training columns, or a "
                                                  "directory of Parquet files; for numeric features (sequences) also "
                                                  "an .npy/.npz array")
    predict.add_argument("output", type=Path, help="the CSV (or .parquet) file to write: a new file, outside any run "
                                                   "directory")
    predict.add_argument("--overwrite", action="store_true", help="replace OUTPUT if it exists (never the input)")
    predict.add_argument("--impute", action="store_true",
                         help="impute values that are not numbers in a numeric training column, as training imputed "
                              "missing values (without it, such a value is an error naming it)")
    predict.add_argument("--batch-rows", type=_positive_int, default=65_536, metavar="N",
                         help="rows read, predicted and written at a time: memory grows with it, not with the input "
                              "(default 65536)")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of at least 1")
    return value


def _add_compare(commands) -> None:
    compare = commands.add_parser("compare", help="runs side by side (the settings that differ, the metrics, "
                                                  "validation first); a sweep directory: its grouped leaderboard")
    compare.add_argument("paths", nargs="+", type=Path, metavar="RUN_OR_SWEEP",
                         help="a run directory, or a multirun's sweep directory")
    compare.add_argument("--json", action="store_true", help="print JSON instead of tables")


def _add_explain(commands) -> None:
    explain = commands.add_parser("explain", help="which features a finished run's model relies on: permutation "
                                                  "importance for every model, SHAP values where the model allows")
    explain.add_argument("run_dir", type=Path, metavar="RUN", help="the run directory")
    explain.add_argument("--data", type=Path, default=None, metavar="FILE",
                         help="a CSV or Parquet file with the training columns and the target (default: the run's "
                              "test rows)")
    explain.add_argument("--output", type=Path, default=None, metavar="DIR",
                         help="the directory to write, outside the run (default: RUNNAME-explain here)")
    explain.add_argument("--overwrite", action="store_true", help="replace DIR if it exists")
    explain.add_argument("--rows", type=int, default=1000, help="explain at most this many rows (a random sample)")
    explain.add_argument("--repeats", type=int, default=5, help="shuffles of each column for permutation importance")
def _add_report(commands) -> None:
    report = commands.add_parser("report", help="write one self-contained HTML page of a finished run (metrics, "
                                                "plots, config, versions; its cross-validation and search)")
    report.add_argument("run_dir", type=Path, metavar="RUN", help="a run directory, or a search's sweep directory "
                                                                  "(its best run)")
    report.add_argument("--output", type=Path, default=None, metavar="FILE",
                        help="the HTML file to write, outside the run (default: RUNNAME-report.html here)")
    report.add_argument("--overwrite", action="store_true", help="replace FILE if it exists")


def _add_export(commands) -> None:
    export = commands.add_parser("export", help="export a finished run as one file that answers like predict: ONNX "
                                                "(every engine) or TorchScript (torch), parity checked")
    export.add_argument("run_dir", type=Path, help="the run directory (the export goes into its exports/, and its "
                                                   "checksums are extended)")
    export.add_argument("--format", required=True, choices=("onnx", "torchscript"), help="the export's format")
def _add_drift_and_serve(commands) -> None:
    drift = commands.add_parser("drift", help="how far new rows drift from a run's training data: PSI, KS or "
                                              "chi-square test, out-of-range values and unseen categories per feature")
    drift.add_argument("run_dir", type=Path, help="the run directory")
    drift.add_argument("input", type=Path, help="a CSV (or .parquet) file holding the training columns")
    drift.add_argument("--psi-threshold", type=float, default=0.2,
                       help="exit 3 when a feature's population stability index exceeds this (default 0.2, the "
                            "customary line between a moderate and a significant shift)")
    drift.add_argument("--json", action="store_true", help="print JSON instead of a table")

    serve = commands.add_parser("serve", help="serve a finished run over HTTP (FastAPI + uvicorn): POST /predict, "
                                              "GET /health, GET /metadata; needs pip install 'coupler[serve]'")
    serve.add_argument("run_dir", type=Path, help="the run directory")
    serve.add_argument("--host", default="127.0.0.1", help="the address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="the port (default 8000)")
    serve.add_argument("--runtime", choices=("native", "onnx"), default="native",
                       help="native: the run's own model (default); onnx: its ONNX export (coupler export RUN "
                            "--format onnx) with onnxruntime")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format="coupler: %(levelname)s: %(message)s", stream=sys.stderr, force=True)
    return reported(lambda: _command(argv))


def _command(argv: list[str]) -> int:
    if argv[:1] == ["train"]:
        return train(argv[1:])
    args = _parser().parse_args(argv)
    if args.command == "plugins":
        return plugins(args.json)
    if args.command == "evaluate":
        return evaluate(args.run_dir, args.overrides, args.json)
    if args.command == "predict":
        return predict(args.run_dir, args.input, args.output, args.overwrite, args.impute, args.batch_rows)
    if args.command == "export":
        return export(args.run_dir, args.format)
    if args.command == "compare":
        return compare(args.paths, args.json)
    if args.command == "explain":
        return explain(args.run_dir, args.data, args.output, args.overwrite, args.rows, args.repeats)
    if args.command == "report":
        return report(args.run_dir, args.output, args.overwrite)
    if args.command == "drift":
        return drift(args.run_dir, args.input, args.psi_threshold, args.json)
    if args.command == "serve":
        return serve(args.run_dir, args.host, args.port, args.runtime)
    if args.command == "new-plugin":
        return new_plugin(args.name, args.kind, args.directory)
    if args.command == "completion":
        return completion(args.shell)
    _parser().print_help(sys.stderr)
    return EXIT_USAGE


def reported(command) -> int:
    """Run ``command()`` and return its exit status; a failure is one line and the status of its kind (the
    ``coupler`` and ``coupler-train`` programs alike)."""
    from coupler.errors import CouplerError

    try:
        return command()
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
        if info.declares:  # kinds and config groups of its own (register_kinds, register_config_groups)
            print(f"    {'declares:':<10} {', '.join(info.declares)}")
        for kind, names in info.components.items():
            print(f"    {kind + ':':<10} {', '.join(sorted(names))}")
        for group, names in info.config_files().items():  # config files, of its groups or another plugin's
            print(f"    {group + ' files:':<10} {', '.join(names)}")
    return 0


def train(args: list[str]) -> int:
    """``coupler train ARGS`` is ``coupler-train ARGS`` (``coupler.train_app``, Coupler's Hydra application): this
    process becomes that program, so that its command line is the one Hydra reads and a launcher or strategy that
    re-executes it runs the same job."""
    from coupler.train_app import restart

    return restart(args, program=[sys.executable, str(_train_program())])


def _train_program() -> Path:
    """The ``coupler-train`` script installed beside this interpreter (or beside the ``coupler`` script)."""
    import sysconfig

    for directory in (Path(sys.argv[0]).parent, Path(sysconfig.get_path("scripts")), Path(sys.executable).parent):
        script = directory / "coupler-train"
        if script.is_file():
            return script
    from coupler.errors import CouplerError

    raise CouplerError("the coupler-train program is not installed beside coupler; reinstall coupler "
                       "(pip install coupler), or run python -m coupler.train_app ARGS")


COMMANDS = ("plugins", "train", "evaluate", "predict", "export", "compare", "explain", "report", "drift", "serve",
            "new-plugin", "completion", "--help", "--version")
#: ``eval "$(coupler completion bash)"``: completes ``coupler``'s commands; after ``coupler train``, it asks Hydra's
#: own completion (``coupler-train -sc query=bash``) as ``coupler-train`` would be; after ``evaluate``, ``compare``,
#: ``explain``, ``report``, ``drift``, ``serve``, ``export`` and ``predict`` it leaves file names to the shell.
BASH_COMPLETION = """\
_coupler_completion()
{
    local word="${COMP_WORDS[COMP_CWORD]}"
    if (( COMP_CWORD == 1 )); then
        COMPREPLY=($(compgen -W "%s" -- "$word"))
        compopt +o nospace 2> /dev/null
    elif [ "${COMP_WORDS[1]}" == "train" ]; then
        local line="coupler-train ${COMP_LINE#*train}"
        local choices=$(COMP_LINE="$line" COMP_POINT=${#line} coupler-train -sc query=bash 2> /dev/null)
        COMPREPLY=($(compgen -W "$choices" -- "$word"))
    else
        COMPREPLY=()
    fi
}
COMP_WORDBREAKS=${COMP_WORDBREAKS//=}
complete -o nospace -o default -F _coupler_completion coupler
""" % " ".join(COMMANDS)


def completion(shell: str) -> int:
    """Print the completion script of ``coupler`` for ``shell`` (bash or zsh)."""
    print(("autoload -Uz bashcompinit && bashcompinit\n" if shell == "zsh" else "") + BASH_COMPLETION, end="")
    return 0


def evaluate(run_dir: Path, overrides: list[str], as_json: bool) -> int:
    from coupler.config import compose
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


def predict(run_dir: Path, input_path: Path, output_path: Path, overwrite: bool = False, impute: bool = False,
            batch_rows: int | None = None) -> int:
    from coupler.errors import CouplerError
    from coupler.finished_run import FinishedRun
    from coupler.plugin_manager import get_plugin_manager
    from coupler.run_directory import check_new_file, remove_stale_temporaries

    check_new_file(output_path, overwrite, "the predictions", "out.csv or out.parquet", input_path)
    if Path(input_path).is_dir() and Path(input_path).resolve() in Path(output_path).resolve().parents:
        raise CouplerError(f"output {str(output_path)!r} lies inside the input directory {str(input_path)!r} (it would "
                           f"join the data set it reads); write the predictions outside it.")
    remove_stale_temporaries(output_path)
    rows = FinishedRun(run_dir, get_plugin_manager()).predict_file(input_path, output_path, impute, batch_rows)
    print(f"wrote {rows} predictions to {output_path}")
    return 0


def export(run_dir: Path, fmt: str) -> int:
    """``coupler export RUN --format F``: ``coupler.onnx_export.export_finished``."""
    from coupler.onnx_export import export_finished

    written = export_finished(run_dir, fmt)
    parity = json.loads(written[-1].read_text())["parity"]
    delta = parity.get("max_abs_proba_diff")
    shown = (f"labels agree {parity['label_agreement']:.0%}" + (f", max |dp| {delta:.1e}" if delta is not None else "")
             if "label_agreement" in parity else f"max relative difference {parity['max_rel_diff']:.1e}")
    print(f"wrote {written[0]} (parity on {parity['rows']} {parity['split']} rows: {shown}); the run's manifest "
          f"lists it")
    return 0


def compare(paths: list[Path], as_json: bool) -> int:
    from coupler.compare import compare as compared

    print(compared(paths, as_json))
    return 0


def explain(run_dir: Path, data: Path | None, output: Path | None, overwrite: bool, rows: int, repeats: int) -> int:
    from coupler.errors import ConfigError
    from coupler.explain import describe
    from coupler.explain import explain as explained

    for key, value in (("--rows", rows), ("--repeats", repeats)):
        if value < 1:
            raise ConfigError(key, value, "a whole number >= 1")
    print(describe(explained(run_dir, data, output, overwrite, repeats=repeats, rows=rows)))
    return 0


def report(run_dir: Path, output: Path | None, overwrite: bool) -> int:
    from coupler.report import write_report

    print(f"wrote {write_report(run_dir, output, overwrite)}")
    return 0


#: ``coupler drift``'s exit status when a feature drifted past the threshold (2 is bad input, 1 a fault)
EXIT_DRIFTED = 3


def drift(run_dir: Path, input_path: Path, threshold: float, as_json: bool) -> int:
    """Compare ``input_path``'s rows with the run's training distribution; exit ``EXIT_DRIFTED`` past
    ``threshold``."""
    import math

    from coupler import drift as drifts
    from coupler.errors import ConfigError
    from coupler.finished_run import FinishedRun
    from coupler.plugin_manager import get_plugin_manager

    if not math.isfinite(threshold) or threshold < 0:
        raise ConfigError("--psi-threshold", threshold, "a number >= 0 (0.2, the customary line, by default)")
    run = FinishedRun(run_dir, get_plugin_manager())  # verifies the run's checksums, its distribution's too
    distribution = drifts.check_run(run_dir)
    input_path = Path(input_path)
    if not input_path.is_file():
        from coupler.errors import DataError

        raise DataError(f"input file {str(input_path)!r} does not exist; give a CSV or Parquet file.")
    rows = drifts.compare(run.read_rows(input_path), distribution)
    drifted = drifts.drifted(rows, threshold)
    if as_json:
        print(json.dumps({"threshold": threshold, "drifted": drifted, "features": rows}, indent=2))
    else:
        print(drifts.report_table(rows, threshold))
    if drifted:
        print(f"coupler: drift past PSI {threshold:g} in {', '.join(drifted)}", file=sys.stderr)
        return EXIT_DRIFTED
    return 0


def serve(run_dir: Path, host: str, port: int, runtime: str) -> int:
    """Serve the run until SIGTERM or Ctrl-C (``coupler.serving``)."""
    from coupler.serving import serve as served

    return served(run_dir, host, port, runtime)


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
