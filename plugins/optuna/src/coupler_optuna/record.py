"""The study's record in the sweep directory: ``trials.csv`` (number, params, state, value, duration, run
directory), ``best.yaml`` (the best trial's overrides, for ``coupler train``), ``best.json`` (the best trial, its
validation score and its test metrics, and the refit's), and what is printed: the counts, the best run's path and
its validation score, and test metrics for that run alone.

The trials never read the test rows (``split.measure_test=false``): after the study the best run alone is tested,
as ``coupler evaluate RUN`` tests it (``coupler.finished_run.FinishedRun``); its sealed directory is not changed."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from coupler.run_directory import atomic_write_text

TRIALS = "trials.csv"
BEST = "best.yaml"
BEST_JSON = "best.json"
#: the sweep's subdirectory of the refit run (``search.refit=true``)
REFIT = "refit"


def _duration(trial) -> float | None:
    if trial.datetime_start is None or trial.datetime_complete is None:
        return None
    return round((trial.datetime_complete - trial.datetime_start).total_seconds(), 3)


def _searched(overrides: list[str]) -> list[str]:
    """A trial's overrides without the sweeper's own keys, each key once (the last value, which Hydra applied):
    what ``coupler train`` needs to rerun it."""
    last = {o.split("=", 1)[0]: o for o in overrides if not o.split("=", 1)[0].lstrip("+").startswith("search")}
    return list(last.values())


def write_trials(study, sweep_dir: Path) -> None:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["number", "params", "state", "value", "duration_s", "run_directory"])
    for trial in sorted(study.get_trials(deepcopy=False), key=lambda t: t.number):
        writer.writerow([trial.number, " ".join(_searched(trial.user_attrs.get("overrides", []))), trial.state.name,
                         trial.value if trial.state.name == "COMPLETE" else "", _duration(trial) or "",
                         trial.user_attrs.get("directory", "")])
    atomic_write_text(Path(sweep_dir) / TRIALS, out.getvalue())


def report(study, sweep_dir: Path, metric: str, replay):
    """Write the record and print the summary; return the best trial (None when no trial completed).
    ``replay(trial)``: the overrides that train a trial's configuration again (``best.yaml``)."""
    import optuna

    write_trials(study, sweep_dir)
    trials = study.get_trials(deepcopy=False)
    counts = {state: sum(1 for t in trials if t.state == state) for state in optuna.trial.TrialState}
    print(f"search: study {study.study_name!r}: {len(trials)} trial(s): "
          + ", ".join(f"{n} {s.name.lower()}" for s, n in counts.items() if n)
          + f"; trials in {Path(sweep_dir) / TRIALS}")
    if not counts[optuna.trial.TrialState.COMPLETE]:
        print("search: no trial completed; nothing is best.")
        _write_best(sweep_dir, {"study": study.study_name, "trials": len(trials), "metric": metric,
                                "best_trial": None})
        return None
    best = study.best_trial
    command_line = overrides = replay(best)
    atomic_write_text(Path(sweep_dir) / BEST,
                      f"# the best trial ({best.number}) of study {study.study_name!r}: validation {metric}="
                      f"{best.value}\n# its overrides: pass them to coupler train to train it again\n"
                      + "".join(f"- {json.dumps(o)}\n" for o in command_line))
    run_dir = Path(best.user_attrs.get("directory", ""))
    print(f"search: best trial {best.number}: validation {metric}={best.value:.6g} ({' '.join(overrides)})")
    print(f"best run: {run_dir}")
    print(f"best overrides: {Path(sweep_dir) / BEST}")
    test = test_run(run_dir)
    if test is not None:
        print_test("best run", run_dir, test)
    _write_best(sweep_dir, {"study": study.study_name, "trials": len(trials), "metric": metric,
                            "best_trial": best.number, "validation": best.value, "run_directory": str(run_dir),
                            "overrides": command_line, "test": test})
    return best


def test_run(run_dir: Path) -> dict | None:
    """The run's test metrics, measured now as ``coupler evaluate RUN`` measures them (its trial never did); None,
    said, when the run cannot be reloaded here (a trial another machine ran, a plugin missing)."""
    from coupler.errors import CouplerError
    from coupler.finished_run import FinishedRun

    if not (run_dir / "manifest.json").is_file():
        print(f"search: the best run {run_dir} is not here; test it where it is: coupler evaluate {run_dir}")
        return None
    try:
        return FinishedRun(run_dir).evaluate()["test"]
    except CouplerError as exc:
        print(f"search: cannot test the best run {run_dir}: {exc}")
        return None


def _write_best(sweep_dir: Path, record: dict) -> None:
    atomic_write_text(Path(sweep_dir) / BEST_JSON, json.dumps(record, indent=2, default=str) + "\n")


def _read_best(sweep_dir: Path) -> dict | None:
    try:
        record = json.loads((Path(sweep_dir) / BEST_JSON).read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def is_current(study, sweep_dir: Path) -> bool:
    """Whether the sweep directory's record was written after the study's last trial (``best.json``, written last,
    counts the trials it saw): a rerun then has nothing to write."""
    record = _read_best(sweep_dir)
    return record is not None and record.get("trials") == len(study.get_trials(deepcopy=False))


def refit_done(sweep_dir: Path) -> bool:
    return (Path(sweep_dir) / REFIT / "manifest.json").is_file()


def record_refit(sweep_dir: Path, test: dict) -> None:
    """The refit's test metrics, added to ``best.json``."""
    record = _read_best(sweep_dir) or {}
    record["refit"] = {"run_directory": str(Path(sweep_dir) / REFIT), "test": test}
    _write_best(sweep_dir, record)


def print_test(what: str, run_dir: Path, test: dict) -> None:
    scalars = {k: v for k, v in test.items() if isinstance(v, (int, float))}
    if scalars:
        print(f"{what} test: " + ", ".join(f"{k}={v:.6g}" for k, v in scalars.items()) + f" ({run_dir})")
