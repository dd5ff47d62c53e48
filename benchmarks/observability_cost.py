"""What tracking and plots cost a default ``coupler train`` (issue #17 point 8: at most 10% longer).

Runs the whole ``coupler train`` process, interleaved, ``--repeats`` times (default 5) in each setting, in a fresh
temporary directory each time, and prints the median wall time of each and its ratio to the bare run:

- bare: ``plots=none`` (no tracking);
- default: the plots on by default (the cheap ones: the confusion matrix);
- observed: the default plots and ``'tracking=[mlflow,tensorboard]'`` (an MLflow run in the working directory's
  ``mlflow.db``, logged by coupler-mlflow's background logger; TensorBoard event files): the target's setting;
- everything: ``plots=all`` (every plot that applies, matplotlib's import included) and both trackers;
- synchronous: as observed, with ``tracking.mlflow.synchronous=true`` (MLflow logged from the training process).

For the runs with the background logger it also prints when their MLflow run was complete: the median seconds from
the start of ``coupler train`` until its logger process had ended (each run waits for the last one's logger, so that
no logger's work lands in the next run's time).

``--data``/``--model`` choose the run (default: the default run, logistic regression on iris). MLflow's first run
in a new directory creates its SQLite store (database migrations, seconds); ``--warm-store`` keeps one store for
every observed run, as a user's working directory does after its first tracked run.

    .venv/bin/python benchmarks/observability_cost.py [--repeats 5] [--warm-store] [--data iris] [--model ...]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TRACKERS = "tracking=[mlflow,tensorboard]"
SETTINGS = {"bare": ["plots=none"], "default": [], "observed": [TRACKERS], "everything": ["plots=all", TRACKERS],
            "synchronous": [TRACKERS, "tracking.mlflow.synchronous=true"]}


def timed_run(arguments: list[str], directory: Path) -> tuple[float, float]:
    """Seconds of the ``coupler train`` process, and until its MLflow background logger (if any) had ended."""
    coupler = Path(sys.executable).parent / "coupler"
    started = time.perf_counter()
    result = subprocess.run([str(coupler), "train", *arguments, "hydra.run.dir=run"], cwd=directory,
                            capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if result.returncode:
        raise SystemExit(f"coupler train {' '.join(arguments)} failed:\n{result.stderr[-2000:]}")
    deadline = time.monotonic() + 120
    while _loggers(directory) and time.monotonic() < deadline:
        time.sleep(0.05)
    return seconds, time.perf_counter() - started


def _loggers(directory: Path) -> list[int]:
    """The coupler-mlflow background loggers (``python -P -m coupler_mlflow.logger``) of runs started in
    ``directory``: a logger works in the directory its command started in."""
    found, where = [], str(directory.resolve())
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and b"coupler_mlflow.logger" in (entry / "cmdline").read_bytes() \
                    and os.readlink(entry / "cwd") == where:
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--data", default="iris")
    parser.add_argument("--model", default=None)
    parser.add_argument("--warm-store", action="store_true", help="one MLflow store for every observed run")
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS),
                        help="the settings to run (bare always)")
    args = parser.parse_args()
    common = [f"data={args.data}", *([f"model={args.model}"] if args.model else [])]
    store = Path(tempfile.mkdtemp(prefix="coupler-observed-store-"))
    chosen = {name: extra for name, extra in SETTINGS.items() if name == "bare" or name in args.settings}
    times: dict[str, list[float]] = {name: [] for name in chosen}
    complete: dict[str, list[float]] = {name: [] for name in chosen}
    try:
        for _ in range(args.repeats):
            for name, extra in chosen.items():
                directory = Path(tempfile.mkdtemp(prefix=f"coupler-{name}-"))
                try:
                    if name == "observed" and args.warm_store:
                        directory = store
                        shutil.rmtree(store / "run", ignore_errors=True)
                    seconds, logged = timed_run([*common, *extra], directory)
                    times[name].append(seconds)
                    complete[name].append(logged)
                finally:
                    if directory != store:
                        shutil.rmtree(directory, ignore_errors=True)
    finally:
        shutil.rmtree(store, ignore_errors=True)
    bare = statistics.median(times["bare"])
    print(f"coupler train {' '.join(common)}: median of {args.repeats} whole processes"
          f"{' (one MLflow store for the observed runs)' if args.warm_store else ' (a new MLflow store each run)'}")
    for name, extra in chosen.items():
        median = statistics.median(times[name])
        logged = statistics.median(complete[name])
        done = f"; MLflow run complete after {logged:.2f} s" if "mlflow" in " ".join(extra) and \
            "synchronous" not in " ".join(extra) else ""
        print(f"  {name:11s} {median:6.2f} s  {median / bare:5.2f}x  ({' '.join(extra) or 'the defaults'}{done})")
    print("target: observed <= 1.10x bare")


if __name__ == "__main__":
    main()
