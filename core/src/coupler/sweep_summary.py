"""The summary of a multirun: ``SWEEP_DIR/summary.csv`` (a row per job), ``SWEEP_DIR/groups.csv`` (a row per
group of jobs) and a table printed at the end.

A sweep compares settings, and a seed changes only the luck of the split and of training: jobs whose overrides
differ only in ``seed`` are one *group* (one setting), reported as n, and the mean ± the sample standard deviation
of every metric over its finished jobs. Pooling different settings into one mean says nothing, and choosing a
setting by its test score makes that score optimistic, so the groups are ranked by the *validation* value of the
run's primary metric (its first: ``accuracy`` for classification, ``rmse`` for regression, or the first of
``metrics=[...]``; the cross-validated mean when the runs have a ``cv`` section), in the direction of the metric's
``greater_is_better``. Test values are shown beside it, never ranked on. Failed jobs are listed, not averaged.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

FILE = "summary.csv"
GROUPS_FILE = "groups.csv"
#: the override keys whose values a group pools: jobs differing only in these are repeats of one setting
REPEAT_KEYS = ("seed",)


@dataclass(frozen=True)
class JobOutcome:
    number: int
    directory: Path
    sweep_directory: Path
    overrides: list[str]
    results: dict[str, dict] | None = None  # {"val": {metric: value}, "test": {...}, maybe "cv": {metric: {mean, std}}}
    error: str | None = None


@dataclass
class Group:
    """Jobs whose overrides, ``seed`` aside, are the same: one setting, repeated."""

    overrides: list[str]  # the setting: the jobs' overrides other than the seed
    jobs: list[JobOutcome] = field(default_factory=list)
    rank: int | None = None  # 1 for the best validation value; None when unranked

    @property
    def label(self) -> str:
        return " ".join(self.overrides) or "-"

    @property
    def finished(self) -> list[JobOutcome]:
        return [job for job in self.jobs if job.results is not None]

    @property
    def failed(self) -> list[JobOutcome]:
        return [job for job in self.jobs if job.results is None]

    def values(self, column: str) -> list[float]:
        """The finished jobs' values of ``column`` (``val_accuracy``, ``cv_accuracy_mean``, ...), missing ones
        left out."""
        found = (_flat(job.results).get(column) for job in self.finished)
        return [v for v in found if v is not None and not (isinstance(v, float) and math.isnan(v))]


@dataclass
class Summary:
    jobs: list[JobOutcome]
    groups: list[Group]  # ranked first (best first), then the groups with nothing to rank on, in job order
    metric: str | None  # the primary metric's name
    ranked_by: str | None  # the column ranked on (``val_accuracy``, ``cv_accuracy_mean``), None when unranked
    greater_is_better: bool | None
    unranked_why: str | None = None  # why no ranking, to print

    @property
    def failed(self) -> list[JobOutcome]:
        return [job for job in self.jobs if job.results is None]


def summarize(jobs: list[JobOutcome], greater_is_better: Callable[[str], bool | None]) -> Summary:
    """Group the jobs and rank the groups by the primary metric's validation mean. ``greater_is_better(name)``:
    the metric's direction (``Metric.greater_is_better``), None when unknown (then nothing is ranked)."""
    jobs = sorted(jobs, key=lambda job: job.number)
    groups = group_jobs(jobs)
    metric = primary_metric(jobs)
    column = validation_column(jobs, metric)
    direction = greater_is_better(metric) if metric else None
    why = None
    if metric is None:
        why = "no job finished"
    elif column is None:
        why = f"no job measured {metric} on a validation split (split.val=0?); test values are not ranked on"
    elif direction is None:
        why = f"whether a greater {metric} is better is unknown (its metric could not be built here)"
    if why:
        return Summary(jobs, groups, metric, None, None, why)
    scored = [g for g in groups if g.values(column)]
    scored.sort(key=lambda g: _mean(g.values(column)), reverse=direction)  # stable: ties keep job order
    for rank, group in enumerate(scored, start=1):
        group.rank = rank
    return Summary(jobs, [*scored, *(g for g in groups if g.rank is None)], metric, column, direction)


def group_jobs(jobs: list[JobOutcome]) -> list[Group]:
    """The jobs grouped by their overrides other than ``seed`` (in any order), groups in the order of their first
    job."""
    groups: dict[frozenset, Group] = {}
    for job in sorted(jobs, key=lambda j: j.number):
        setting = [o for o in job.overrides if _key(o) not in REPEAT_KEYS]
        groups.setdefault(frozenset(setting), Group(setting)).jobs.append(job)
    return list(groups.values())


def primary_metric(jobs: list[JobOutcome]) -> str | None:
    """The runs' first metric (the order ``metrics=[...]`` or the task's defaults give): on val, else cv, else
    test (shown, not ranked on)."""
    for section in ("val", "cv", "test"):
        for job in sorted(jobs, key=lambda j: j.number):
            if job.results and job.results.get(section):
                return next(iter(job.results[section]))
    return None


def validation_column(jobs: list[JobOutcome], metric: str | None) -> str | None:
    """The column holding ``metric``'s validation value: the cross-validated mean when the runs have one, else the
    validation split's; None when no job has either."""
    if metric is None:
        return None
    for column in (f"cv_{metric}_mean", f"val_{metric}"):
        if any(_flat(job.results).get(column) is not None for job in jobs if job.results):
            return column
    return None


def metric_direction(registry) -> Callable[[str], bool | None]:
    """``greater_is_better`` of a metric by name, as the registered metric declares it; None when no metric of
    that name is registered or it cannot be built without arguments."""
    def direction(name: str) -> bool | None:
        try:
            return bool(registry.get("metric", name).build(f"metrics.{name}", {}).greater_is_better)
        except Exception:  # a disabled plugin's metric, a factory that needs arguments: no ranking, said so
            return None

    return direction


def write_summary(summary: Summary, directory: Path) -> list[Path]:
    """``directory/summary.csv`` (a row per job) and ``directory/groups.csv`` (a row per group, ranked)."""
    from coupler.run_directory import atomic_write_text

    paths = [Path(directory) / FILE, Path(directory) / GROUPS_FILE]
    for path, frame in zip(paths, (_jobs_frame(summary), _groups_frame(summary))):
        atomic_write_text(path, frame.to_csv(index=False))
    return paths


def _jobs_frame(summary: Summary):
    """job, directory, status, error, group, a column per override key (empty where a job did not set it,
    ``(deleted)`` for ``~key``), then ``SPLIT_METRIC`` for every metric any job measured (empty where a job failed
    or lacks it)."""
    import pandas as pd

    jobs = summary.jobs
    group_of = {job.number: group.label for group in summary.groups for job in group.jobs}
    keys = list(dict.fromkeys(_key(o) for job in jobs for o in job.overrides))
    metrics = list(dict.fromkeys(name for job in jobs for name in _flat(job.results)))
    rows = []
    for job in jobs:
        given = {key: _given(job, key, missing="") for key in keys}  # empty: pandas reads it as missing
        measured = _flat(job.results)
        rows.append({"job": job.number, "directory": str(job.directory), "status": "failed" if job.error else "ok",
                     "error": job.error or "", "group": group_of[job.number], **given,
                     **{m: measured.get(m) for m in metrics}})
    return pd.DataFrame(rows)


def _groups_frame(summary: Summary):
    """rank (empty when unranked), group, a column per override key other than seed, n (finished jobs), failed,
    seeds (of the finished jobs), then ``COLUMN_mean`` and ``COLUMN_std`` for every metric column, validation ones first."""
    import pandas as pd

    keys = list(dict.fromkeys(_key(o) for g in summary.groups for o in g.overrides))
    columns = list(dict.fromkeys(name for job in summary.jobs for name in _flat(job.results)))
    columns.sort(key=lambda c: c.startswith("test_"))  # stable: val and cv first, test last
    rows = []
    for group in summary.groups:
        job = group.jobs[0]
        row = {"rank": group.rank, "group": group.label, **{k: _given(job, k, missing="") for k in keys},
               "n": len(group.finished), "failed": len(group.failed),
               "seeds": " ".join(_given(j, "seed", missing="") for j in group.finished).strip()}
        for column in columns:
            values = group.values(column)
            row[f"{column}_mean"], row[f"{column}_std"] = _mean(values), _std(values)
        rows.append(row)
    frame = pd.DataFrame(rows)
    frame["rank"] = frame["rank"].astype("Int64")  # whole numbers, empty when unranked
    return frame


def format_summary(summary: Summary) -> str:
    """The printed table: what it is ranked by, then a row per group (rank, the overrides that differ between
    groups, n, the primary metric's validation and test mean ± std), then the failed jobs."""
    groups, metric = summary.groups, summary.metric
    varying = [k for k in dict.fromkeys(_key(o) for g in groups for o in g.overrides)
               if len({_given(g.jobs[0], k) for g in groups}) > 1]
    columns = [c for c in (summary.ranked_by or validation_column(summary.jobs, metric),
                           f"test_{metric}" if metric else None)
               if c and any(g.values(c) for g in groups)]
    if summary.ranked_by:
        better = "greater" if summary.greater_is_better else "smaller"
        heading = f"groups ranked by {summary.ranked_by} ({better} is better); test is shown, never ranked on"
    else:
        heading = f"groups not ranked: {summary.unranked_why}"
    header = ["rank", "overrides", "n", *(c.removesuffix("_mean") for c in columns)]
    rows = [header]
    for group in groups:
        label = " ".join(f"{k}={_given(group.jobs[0], k)}" for k in varying) or (group.label if len(groups) == 1
                                                                                 else "-")
        count = f"{len(group.finished)}" + (f" ({len(group.failed)} failed)" if group.failed else "")
        cells = [_spread(group.values(c)) if group.finished else "failed" for c in columns]
        rows.append([str(group.rank or "-"), label, count, *cells])
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = [heading] + ["  ".join(cell.ljust(w) if i < 2 else cell.rjust(w)
                                   for i, (cell, w) in enumerate(zip(row, widths))).rstrip() for row in rows]
    for job in summary.failed:
        lines.append(f"failed: job {job.number} ({' '.join(job.overrides) or '-'}): {job.error}")
    return "\n".join(lines)


def _spread(values: list[float]) -> str:
    """``mean ± std``; the mean alone from one value; ``n/a`` from none."""
    if not values:
        return "n/a"
    std = _std(values)
    return _number(_mean(values)) + ("" if std is None else f" ± {_number(std)}")


def _key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")  # +key and ++key add a key no config file lists


def _value(override: str) -> str:
    """The value given; ``(deleted)`` for a ``~key`` deletion."""
    if override.startswith("~"):
        return "(deleted)"
    return override.split("=", 1)[1] if "=" in override else ""


def _flat(results: dict | None) -> dict[str, float | None]:
    """``{"val": {"accuracy": x}, "cv": {"accuracy": {"mean": m, "std": s}}}`` -> ``{"val_accuracy": x,
    "cv_accuracy_mean": m, "cv_accuracy_std": s}``."""
    flat: dict[str, float | None] = {}
    for section, values in (results or {}).items():
        for name, value in (values or {}).items() if isinstance(values, dict) else ():
            if isinstance(value, dict):
                flat.update({f"{section}_{name}_{stat}": v for stat, v in value.items() if not isinstance(v, (dict, list))})
            elif not isinstance(value, list):
                flat[f"{section}_{name}"] = value
    return flat


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
