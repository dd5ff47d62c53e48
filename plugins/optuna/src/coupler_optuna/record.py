"""The study's record in the sweep directory: ``trials.csv`` (number, params, state, value, duration, run
directory), ``best.yaml`` (the best trial's overrides, for ``coupler train``), and what is printed: the counts,
the best run's path and its validation score, and test metrics for that run alone."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from coupler.run_directory import atomic_write_text

TRIALS = "trials.csv"
BEST = "best.yaml"


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


def report(study, sweep_dir: Path, metric: str):
    """Write the record and print the summary; return the best trial (None when no trial completed)."""
    import optuna

    write_trials(study, sweep_dir)
    trials = study.get_trials(deepcopy=False)
    counts = {state: sum(1 for t in trials if t.state == state) for state in optuna.trial.TrialState}
    print(f"search: study {study.study_name!r}: {len(trials)} trial(s): "
          + ", ".join(f"{n} {s.name.lower()}" for s, n in counts.items() if n)
          + f"; trials in {Path(sweep_dir) / TRIALS}")
    if not counts[optuna.trial.TrialState.COMPLETE]:
        print("search: no trial completed; nothing is best.")
        return None
    best = study.best_trial
    overrides = _searched(best.user_attrs.get("overrides", []))
    command_line = [*_searched(best.user_attrs.get("fixed", [])), *overrides]
    overrides = command_line
    atomic_write_text(Path(sweep_dir) / BEST,
                      f"# the best trial ({best.number}) of study {study.study_name!r}: validation {metric}="
                      f"{best.value}\n# its overrides: pass them to coupler train to train it again\n"
                      + "".join(f"- {json.dumps(o)}\n" for o in command_line))
    run_dir = Path(best.user_attrs.get("directory", ""))
    print(f"search: best trial {best.number}: validation {metric}={best.value:.6g} ({' '.join(overrides)})")
    print(f"best run: {run_dir}")
    print(f"best overrides: {Path(sweep_dir) / BEST}")
    metrics = run_dir / "metrics.json"
    if metrics.is_file():
        print_test("best run", run_dir, json.loads(metrics.read_text()).get("test") or {})
    return best


def print_test(what: str, run_dir: Path, test: dict) -> None:
    scalars = {k: v for k, v in test.items() if isinstance(v, (int, float))}
    if scalars:
        print(f"{what} test: " + ", ".join(f"{k}={v:.6g}" for k, v in scalars.items()) + f" ({run_dir})")
