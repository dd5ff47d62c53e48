"""``coupler compare RUN_OR_SWEEP...``: runs side by side, and a sweep's grouped leaderboard.

Runs: the settings that differ between them (their ``config.yaml``, flattened to dotted keys), then every metric
side by side, validation first (``val_``, then the cross-validated ``cv_..._mean``/``_std``, then ``test_``),
then the fit and total seconds (``metrics.json``'s ``timing``). A sweep directory (a multirun's: it holds
``multirun.yaml`` or ``summary.csv``) is its jobs grouped and ranked by ``coupler.sweep_summary`` (jobs that differ
only in ``seed`` are one group; ranked on validation, test shown, never ranked on).

A run directory is untrusted input: ``config.yaml`` is read with ``yaml.safe_load`` and ``metrics.json`` with
``json``, as data; nothing in it is imported, unpickled or run. What is not a run or a sweep is refused in one line
naming the path and what it lacks. Reading does not verify the manifest's checksums (``coupler evaluate`` does).
"""

from __future__ import annotations

import json
import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path

from coupler.errors import CouplerError

#: what marks a multirun's directory (Hydra writes the first, ``coupler.sweep_summary`` the second)
SWEEP_MARKS = ("multirun.yaml", "summary.csv")
#: the sections of ``metrics.json`` that hold measured metrics, in the order they are shown (validation first)
SECTIONS = ("val", "cv", "test")


@dataclass
class Run:
    directory: Path
    settings: dict[str, object]  # config.yaml flattened: {"model.params.C": 1.0, ...}
    metrics: dict[str, float | None]  # {"val_accuracy": x, "cv_accuracy_mean": m, "test_accuracy": y}
    timing: dict[str, float] = field(default_factory=dict)
    results: dict[str, dict] = field(default_factory=dict)  # metrics.json's val, cv and test sections


# --- reading ------------------------------------------------------------------------------------------------

def is_sweep(path: Path) -> bool:
    return path.is_dir() and any((path / mark).is_file() for mark in SWEEP_MARKS)


def read_run(path: Path) -> Run:
    """A finished run's settings, metrics and timing; a ``CouplerError`` naming the path when it is not one."""
    path = Path(path)
    if not path.is_dir():
        what = "is a file, not" if path.exists() else "does not exist: it is not"
        raise CouplerError(f"{path} {what} a run or sweep directory")
    missing = [name for name in ("config.yaml", "metrics.json") if not (path / name).is_file()]
    if missing:
        raise CouplerError(f"{path} is not a run directory (it lacks {' and '.join(missing)}) nor a sweep directory "
                           f"(it lacks {' and '.join(SWEEP_MARKS)}); give a directory `coupler train` wrote")
    if not (path / "manifest.json").is_file():
        raise CouplerError(f"{path} is a run that did not finish (no manifest.json): it has no final metrics to "
                           f"compare; finish it (coupler train resume={path}) or leave it out")
    config = _read_yaml(path / "config.yaml")
    if not isinstance(config, dict):
        raise CouplerError(f"{path / 'config.yaml'} is not a run's config (a mapping of settings); give a directory "
                           f"`coupler train` wrote")
    document = _read_json(path / "metrics.json")
    if not isinstance(document, dict) or not all(isinstance(document.get(s, {}), dict) for s in SECTIONS):
        raise CouplerError(f"{path / 'metrics.json'} is not a run's metrics ({{\"val\": {{name: number}}, ...}}); "
                           f"give a directory `coupler train` wrote")
    timing = document.get("timing") if isinstance(document.get("timing"), dict) else {}
    return Run(path, flatten(config), flat_metrics(document), {k: v for k, v in timing.items() if _is_number(v)},
               {section: document[section] for section in SECTIONS if isinstance(document.get(section), dict)})


def _read_yaml(path: Path):
    """The file's data, read with a safe loader that also refuses aliases (``*name``): files Coupler writes have
    none, and a few nested aliases expand to billions of keys. Nesting too deep for Python is refused too."""
    import yaml

    class DataOnly(yaml.SafeLoader):
        def compose_node(self, parent, index):
            if self.check_event(yaml.AliasEvent):
                raise yaml.composer.ComposerError(None, None, "an alias (*name), which Coupler's files never hold",
                                                  self.peek_event().start_mark)
            return super().compose_node(parent, index)

    try:
        return yaml.load(path.read_text(), Loader=DataOnly)  # noqa: S506 - a SafeLoader
    except (yaml.YAMLError, UnicodeDecodeError, RecursionError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CouplerError(f"{path} is not valid YAML ({reason}); give a directory `coupler train` wrote") from None


def _read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        reason = str(exc) or type(exc).__name__
        raise CouplerError(f"{path} is not valid JSON ({reason}); give a directory `coupler train` wrote") from None


def _is_job_number(name: str) -> bool:
    return name.isascii() and name.isdigit()  # "²".isdigit() holds, and int("²") fails


def flatten(node, prefix: str = "") -> dict[str, object]:
    """``{"model": {"params": {"C": 1}}}`` -> ``{"model.params.C": 1}``; lists stay values."""
    if not isinstance(node, dict):
        return {prefix: node}
    flat: dict[str, object] = {}
    for key, value in node.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, dict) and value:
            flat.update(flatten(value, name))
        else:
            flat[name] = value
    return flat


def flat_metrics(document: dict) -> dict[str, float | None]:
    """``{"val": {"accuracy": x}, "cv": {"accuracy": {"mean": m, "std": s}}}`` -> ``{"val_accuracy": x,
    "cv_accuracy_mean": m, "cv_accuracy_std": s}``, validation first; what is not a number is left out."""
    flat: dict[str, float | None] = {}
    for section in SECTIONS:
        for name, value in (document.get(section) or {}).items():
            if isinstance(value, dict):
                flat.update({f"{section}_{name}_{stat}": v for stat, v in value.items() if _is_number(v)})
            elif _is_number(value):
                flat[f"{section}_{name}"] = value
    return flat


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def read_sweep(path: Path):
    """The sweep's ``sweep_summary.Summary``, from its jobs' directories (the numbered subdirectories Hydra makes,
    each holding an ``overrides.yaml``; any such subdirectory when none is numbered, as with another
    ``hydra.sweep.subdir``): a job without final metrics is a failed job (a search's pruned trial among them)."""
    from coupler.sweep_summary import JobOutcome, metric_direction, summarize

    jobs = []
    directories = sorted((d for d in Path(path).iterdir() if d.is_dir() and (d / "overrides.yaml").is_file()),
                         key=lambda d: (not _is_job_number(d.name), int(d.name) if _is_job_number(d.name) else 0,
                                        d.name))
    if any(_is_job_number(d.name) for d in directories):  # Hydra's job directories; a search's refit/ is no job
        directories = [d for d in directories if _is_job_number(d.name)]
    for number, directory in enumerate(directories):
        overrides = _read_yaml(directory / "overrides.yaml")
        if not isinstance(overrides, list) or not all(isinstance(o, str) for o in overrides):
            raise CouplerError(f"{directory / 'overrides.yaml'} is not a list of overrides; give a sweep directory "
                               f"`coupler train -m` wrote")
        job_number = int(directory.name) if _is_job_number(directory.name) else number
        try:
            run = read_run(directory)
        except CouplerError as exc:
            jobs.append(JobOutcome(job_number, directory, Path(path), overrides, None, str(exc)))
            continue
        jobs.append(JobOutcome(job_number, run.directory, Path(path), overrides, run.results))
    if not jobs:
        raise CouplerError(f"{path} is a sweep directory without jobs (no subdirectory holds an overrides.yaml)")
    return summarize(jobs, metric_direction(_registry()))


def _registry():
    from coupler.plugin_manager import get_plugin_manager

    return get_plugin_manager().registry


# --- comparing ----------------------------------------------------------------------------------------------

#: the value of a setting a run's config does not have (shown ``-``; ``null`` in JSON, as a null setting is)
ABSENT = type("Absent", (), {"__repr__": lambda self: "ABSENT"})()


def differing_settings(runs: list[Run]) -> dict[str, list]:
    """The settings whose values are not the same in every run (``ABSENT`` where a run's config lacks the key), in
    the order of the first run's config; every setting when there is one run."""
    keys = list(dict.fromkeys(key for run in runs for key in run.settings))
    differing = {}
    for key in keys:
        values = [run.settings.get(key, ABSENT) for run in runs]
        if len(runs) == 1 or any(v != values[0] for v in values[1:]):
            differing[key] = values
    return differing


def metrics_table(runs: list[Run]) -> dict[str, list]:
    """Every metric any run measured, validation first, each with its value per run (None where missing)."""
    names = list(dict.fromkeys(name for run in runs for name in run.metrics))
    names.sort(key=lambda name: SECTIONS.index(name.split("_", 1)[0]))  # stable: val, cv, test
    return {name: [run.metrics.get(name) for run in runs] for name in names}


def as_json(runs: list[Run], sweeps: list[tuple[Path, object]]) -> dict:
    document: dict = {}
    if runs:
        document["runs"] = {
            "directories": [str(run.directory) for run in runs],
            # those that differ (all of them for one run); a key a run lacks is null there
            "settings": {key: [None if v is ABSENT else v for v in values]
                         for key, values in differing_settings(runs).items()},
            "metrics": metrics_table(runs),
            "timing": {key: [run.timing.get(key) for run in runs]
                       for key in dict.fromkeys(k for run in runs for k in run.timing)},
        }
    if sweeps:
        document["sweeps"] = [_sweep_json(path, summary) for path, summary in sweeps]
    return document


def _sweep_json(path: Path, summary) -> dict:
    columns = list(dict.fromkeys(name for job in summary.jobs if job.results
                                 for name in flat_metrics(job.results)))
    columns.sort(key=lambda name: SECTIONS.index(name.split("_", 1)[0]))
    groups = []
    for group in summary.groups:
        stats = {}
        for column in columns:
            values = group.values(column)
            stats[column] = {"mean": statistics.fmean(values) if values else None,
                             "std": statistics.stdev(values) if len(values) > 1 else None}
        groups.append({"rank": group.rank, "overrides": group.overrides, "n": len(group.finished),
                       "failed": [{"job": job.number, "error": job.error} for job in group.failed],
                       "metrics": stats})
    return {"directory": str(path), "metric": summary.metric, "ranked_by": summary.ranked_by,
            "greater_is_better": summary.greater_is_better, "unranked_why": summary.unranked_why, "groups": groups}


def format_runs(runs: list[Run]) -> str:
    """The settings that differ, then the metrics and the seconds side by side, a column per run."""
    header = ["", *(f"[{i}]" for i in range(1, len(runs) + 1))]
    lines = [f"[{i}] {run.directory}" for i, run in enumerate(runs, start=1)]
    settings = differing_settings(runs)
    if len(runs) > 1:
        lines.append("")
        lines.append("settings that differ" if settings else "settings that differ: none")
        if settings:
            lines += _table([header, *([key, *(_setting(v) for v in values)] for key, values in settings.items())])
    lines.append("")
    lines.append("metrics (validation first)")
    metrics = metrics_table(runs)
    lines += _table([header, *([name, *(_number(v) for v in values)] for name, values in metrics.items())])
    timing = as_json(runs, [])["runs"]["timing"]
    if timing:
        lines.append("")
        lines.append("seconds")
        lines += _table([header, *([key, *(_number(v, ".2f") for v in values)] for key, values in timing.items())])
    return "\n".join(lines)


def format_sweep(path: Path, summary) -> str:
    from coupler.sweep_summary import format_summary

    return f"sweep {path}: {len(summary.jobs)} job(s) in {len(summary.groups)} group(s); " \
           f"{format_summary(summary)}"


def _table(rows: list[list[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths)))
            .rstrip() for row in rows]


def _setting(value) -> str:
    """``-`` where the run lacks the key; YAML's spelling otherwise (``null``, ``true``, ``[a, b]``)."""
    if value is ABSENT:
        return "-"
    return json.dumps(value) if isinstance(value, (list, dict, bool)) or value is None else str(value)


def _number(value, spec: str = ".4f") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return format(value, spec)


def compare(paths: list[Path], as_json_output: bool = False) -> str:
    """What ``coupler compare PATHS`` prints: the runs side by side, then each sweep's leaderboard."""
    runs, sweeps = [], []
    for path in map(Path, paths):
        if is_sweep(path):
            sweeps.append((path, read_sweep(path)))
        else:
            runs.append(read_run(path))
    if as_json_output:
        return json.dumps(as_json(runs, sweeps), indent=2)
    parts = ([format_runs(runs)] if runs else []) + [format_sweep(path, summary) for path, summary in sweeps]
    return "\n\n".join(parts)
