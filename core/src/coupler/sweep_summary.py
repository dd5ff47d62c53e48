"""The summary of a multirun: one row per job in ``SWEEP_DIR/summary.csv``, and a table printed at the end.

A sweep over seeds (``coupler train -m seed=range(10)``) reads as the mean and the spread of a metric; a sweep
over settings (``-m model.params.max_depth=3,6``) reads as which job scored best. Both come from one table:
a row per job with the overrides that differ between jobs, the validation and test values of the run's first
metric, then the mean and the standard deviation over the jobs that finished.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

FILE = "summary.csv"


@dataclass(frozen=True)
class JobOutcome:
    number: int
    directory: Path
    sweep_directory: Path
    overrides: list[str]
    results: dict[str, dict[str, float | None]] | None = None  # {"val": {metric: value}, "test": {...}}
    error: str | None = None


def _key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")  # +key and ++key add a key no config file lists


def _value(override: str) -> str:
    """The value given; ``(deleted)`` for a ``~key`` deletion."""
    if override.startswith("~"):
        return "(deleted)"
    return override.split("=", 1)[1] if "=" in override else ""


def write_summary(jobs: list[JobOutcome], directory: Path) -> Path:
    """``directory/summary.csv``: job, directory, status, error, a column per override key (empty where a job
    did not set it, ``(deleted)`` for ``~key``), then ``SPLIT_METRIC`` for every metric any job measured
    (empty where a job failed or lacks it)."""
    import pandas as pd

    from coupler.run_directory import atomic_write_text

    keys = list(dict.fromkeys(_key(o) for job in jobs for o in job.overrides))
    metrics = list(dict.fromkeys(name for job in jobs for name in _flat(job.results)))
    rows = []
    for job in sorted(jobs, key=lambda j: j.number):
        given = {key: _given(job, key, missing="") for key in keys}  # empty: pandas reads it as missing
        measured = _flat(job.results)
        rows.append({"job": job.number, "directory": str(job.directory), "status": "failed" if job.error else "ok",
                     "error": job.error or "", **given, **{m: measured.get(m) for m in metrics}})
    path = Path(directory) / FILE
    atomic_write_text(path, pd.DataFrame(rows).to_csv(index=False))
    return path


def format_summary(jobs: list[JobOutcome]) -> str:
    """The printed table: a row per job (the overrides that differ between jobs, the first metric on val and
    test), then ``mean`` and ``std`` over the jobs that finished."""
    jobs = sorted(jobs, key=lambda j: j.number)
    finished = [j for j in jobs if j.results is not None]
    metric = next((name for j in finished for split in ("test", "val") for name in j.results.get(split, {})), None)
    splits = [s for s in ("val", "test") if any(j.results.get(s) for j in finished)]
    varying = [k for k in dict.fromkeys(_key(o) for j in jobs for o in j.overrides)
               if len({_given(j, k) for j in jobs}) > 1]
    columns = [f"{s}_{metric}" for s in splits] if metric else []

    def cells(job: JobOutcome) -> list[str]:
        if job.results is None:
            return ["failed"] + [""] * (len(columns) - 1) if columns else ["failed"]
        return [_number(job.results.get(s, {}).get(metric)) for s in splits]

    label = {j.number: " ".join(f"{k}={_given(j, k)}" for k in varying) or "-" for j in jobs}
    rows = [(str(j.number), label[j.number], cells(j)) for j in jobs]
    if len(finished) > 1 and metric:
        for name, reduce in (("mean", _mean), ("std", _std)):
            values = [[j.results.get(s, {}).get(metric) for j in finished] for s in splits]
            rows.append((name, "", [_number(reduce([v for v in column if v is not None])) for column in values]))
    header = ("job", "overrides", columns or ["result"])
    width = [max(len(r[i]) for r in [header[:2], *[(r[0], r[1]) for r in rows]]) for i in range(2)]
    cell = max([12, *(len(c) for c in header[2])])
    lines = [f"{row[0]:<{width[0]}}  {row[1]:<{width[1]}}  " + "  ".join(f"{c:>{cell}}" for c in row[2])
             for row in [header, *rows]]
    return "\n".join(line.rstrip() for line in lines)


def _flat(results: dict | None) -> dict[str, float | None]:
    """``{"val": {"accuracy": x}}`` -> ``{"val_accuracy": x}``."""
    return {f"{split}_{name}": value for split, values in (results or {}).items() for name, value in values.items()}


def _given(job: JobOutcome, key: str, missing: str = "-") -> str:
    """The job's value for ``key``; ``missing`` where the job did not override it."""
    return next((_value(o) for o in job.overrides if _key(o) == key), missing)


def _number(value: float | None) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else format(value, ".4f")


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _std(values: list[float]) -> float | None:
    """The sample standard deviation (n - 1), as a spread over seeds is usually reported."""
    if len(values) < 2:
        return None
    mean = sum(values) / len(values)
    return math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
