"""``coupler report RUN``: one self-contained HTML page of a finished run.

The page holds the metrics (validation, cross-validation, test), the run's plots (``RUN/plots/*.png``, inlined as
``data:`` URIs), its config, its data fingerprint and rows, the components and library versions the manifest
records, and, when present, the cross-validation folds (``folds.csv``) and the search the run belongs to
(``trials.csv``, ``best.json`` and ``best.yaml`` of coupler-optuna's sweep directory). It has no script and loads
nothing: it can be mailed, attached to a ticket or opened offline.

``RUN`` is a run directory, or a search's sweep directory (its best run is reported). The run is sealed: the page
is written outside it (``--output FILE``; by default ``RUNNAME-report.html`` in the working directory), and an
existing file is replaced only with ``--overwrite``.

A run directory is untrusted input: its manifest is checked (``run_directory.read_manifest``: the seal, every
checksum, no foreign file), its files are read as data (JSON, YAML with a safe loader, CSV, PNG bytes whose
signature is checked), and every string from it is HTML-escaped before it reaches the page.
"""

from __future__ import annotations

import base64
import csv
import html
import json
import re
from pathlib import Path

from coupler.errors import CouplerError

#: the first bytes of every PNG file
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: the most rows of ``trials.csv`` and ``folds.csv`` shown (the files hold them all)
MOST_ROWS = 500
#: what marks a search's sweep directory (coupler-optuna's ``coupler_optuna.record``)
SEARCH_FILES = ("trials.csv", "best.json", "best.yaml")


def run_name(run_dir: Path) -> str:
    """A run's name for the files made from it here (``RUNNAME-report.html``, ``RUNNAME-explain``): its last two path
    parts (``runs/DATE/TIME`` gives ``DATE_TIME``), in letters, digits, ``.``, ``_`` and ``-`` only."""
    parts = Path(run_dir).resolve().parts[-2:]
    return re.sub(r"[^A-Za-z0-9._-]+", "-", "_".join(parts)).strip(".-") or "run"


def default_output(run_dir: Path) -> Path:
    """``RUNNAME-report.html`` in the working directory (``run_name``)."""
    return Path(f"{run_name(run_dir)}-report.html")


def write_report(path: Path, output: Path | None = None, overwrite: bool = False) -> Path:
    """Write the report of the run (or search) at ``path`` and return the file written."""
    from coupler.run_directory import atomic_write_text, check_new_file

    run_dir, search_dir = locate(Path(path))
    output = Path(output) if output is not None else default_output(run_dir)
    check_new_file(output, overwrite, "the report", "report.html")
    page = render(run_dir, search_dir)
    atomic_write_text(output, page)
    return output


def locate(path: Path) -> tuple[Path, Path | None]:
    """``(run directory, search's sweep directory or None)`` for what the user gave; one line refusing anything
    else."""
    if not path.is_dir():
        raise CouplerError(f"{path} {'is a file' if path.exists() else 'does not exist'}: coupler report takes a "
                           f"run directory (or a search's sweep directory)")
    if _is_search(path):
        return _best_run(path), path
    if (path / "manifest.json").is_file():
        return path, path.parent if _is_search(path.parent) else None
    from coupler.compare import is_sweep

    if is_sweep(path):
        raise CouplerError(f"{path} is a multirun's sweep directory, not a run: give one of its runs "
                           f"(coupler compare {path} ranks them)")
    raise CouplerError(f"{path} is not a finished run (it has no manifest.json); give a directory `coupler train` "
                       f"finished")


def _is_search(path: Path) -> bool:
    return path.is_dir() and (path / "best.json").is_file() and (path / "trials.csv").is_file()


def _best_run(sweep: Path) -> Path:
    """The best trial's run directory: the sweep's subdirectory that ``best.json`` names (by its last part, so that
    a moved sweep still finds it, and nothing outside the sweep is read)."""
    record = _json(sweep / "best.json")
    named = record.get("run_directory") if isinstance(record, dict) else None
    if not isinstance(named, str) or not named:
        raise CouplerError(f"{sweep} is a search with no best run (best.json names none: no trial completed); "
                           f"nothing to report")
    candidate = sweep / Path(named).name
    if Path(named).name in ("", ".", "..") or candidate.is_symlink() or not (candidate / "manifest.json").is_file():
        raise CouplerError(f"{sweep}: the best run {Path(named).name!r} is not in the sweep directory; give the run "
                           f"directory itself: coupler report RUN")
    return candidate


# --- reading (as data) ----------------------------------------------------------------------------------------

def _unlinked(path: Path) -> Path:
    """``path``, refused when it is a symbolic link: a sweep's ``best.json``, ``best.yaml`` and ``trials.csv`` are in
    no manifest, and the page (meant to be mailed) must not carry a file such a link points at."""
    if path.is_symlink():
        raise CouplerError(f"{path} is a symbolic link; a search's records are files it wrote: give a directory "
                           f"Coupler wrote")
    return path


def _json(path: Path):
    from coupler.compare import _read_json

    return _read_json(_unlinked(path))


def _csv(path: Path) -> list[list[str]]:
    _unlinked(path)
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            return [row for _, row in zip(range(MOST_ROWS + 1), csv.reader(handle))]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise CouplerError(f"{path} is not a readable CSV file ({exc}); give a directory Coupler wrote") from None


def _text(path: Path) -> str:
    _unlinked(path)
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise CouplerError(f"{path} is not UTF-8 text; give a directory Coupler wrote") from None


def _plots(run_dir: Path, files: dict) -> list[tuple[str, str]]:
    """``(name, data URI)`` of each PNG under ``plots/`` that the manifest lists (and so checksummed), in the
    order ``coupler.plots.PLOTS`` gives."""
    from coupler.plots import DIRECTORY, PLOTS

    names = sorted((relative for relative in files if relative.startswith(f"{DIRECTORY}/")
                    and relative.endswith(".png") and relative.count("/") == 1),
                   key=lambda r: (PLOTS.index(Path(r).stem) if Path(r).stem in PLOTS else len(PLOTS), r))
    found = []
    for relative in names:
        data = (run_dir / relative).read_bytes()
        if data.startswith(PNG_SIGNATURE):  # anything else is not shown as an image
            found.append((Path(relative).stem, "data:image/png;base64," + base64.b64encode(data).decode("ascii")))
    return found


# --- the page ---------------------------------------------------------------------------------------------------

def e(value) -> str:
    """Any value from a run, as HTML text."""
    return html.escape(value if isinstance(value, str) else json.dumps(value, default=str), quote=True)


def _number(value) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return "n/a" if value is None else e(value)
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def _table(header: list, rows: list[list], numeric_from: int | None = 1) -> str:
    """A table of cells already in HTML; those from column ``numeric_from`` on are right-aligned numbers."""
    head = "".join(f"<th>{e(h)}</th>" for h in header) if any(header) else ""
    body = "".join("<tr>" + "".join(f"<td{' class=num' if numeric_from is not None and i >= numeric_from else ''}>{cell}</td>"
                                    for i, cell in enumerate(row)) + "</tr>" for row in rows)
    head = f"<thead><tr>{head}</tr></thead>" if head else ""
    return f"<table>{head}<tbody>{body}</tbody></table>"


def _metrics_section(results: dict) -> str:
    sections = [s for s in ("val", "cv", "test") if isinstance(results.get(s), dict) and results[s]]
    names = list(dict.fromkeys(n for s in sections for n in results[s]))
    if not names:
        return "<h2>Metrics</h2><p>No metrics were measured.</p>"
    header = ["metric", *({"val": "validation", "cv": "cross-validation (mean ± std)", "test": "test"}[s]
                          for s in sections)]
    rows = []
    for name in names:
        cells = [e(name)]
        for section in sections:
            value = results[section].get(name)
            if isinstance(value, dict):
                cells.append(f"{_number(value.get('mean'))} ± {_number(value.get('std'))}")
            else:
                cells.append(_number(value))
        rows.append(cells)
    return "<h2>Metrics</h2>" + _table(header, rows)


def _run_section(manifest: dict, timing: dict) -> str:
    components = manifest.get("components") if isinstance(manifest.get("components"), dict) else {}
    rows = []
    for role in ("model", "data"):
        record = components.get(role) if isinstance(components.get(role), dict) else {}
        rows.append([e(role), e(record.get("name", "")), e(record.get("plugin", "")),
                     e(record.get("distribution", "")), e(record.get("version", ""))])
    run_rows = [["task", e(manifest.get("task", ""))],
                ["classes", e(", ".join(map(str, manifest.get("classes") or [])) or "-")],
                ["rows", e(", ".join(f"{k} {v}" for k, v in (manifest.get("rows") or {}).items()))],
                ["data fingerprint", f"<code>{e(manifest.get('data_fingerprint', ''))}</code>"],
                ["seed", e(manifest.get("seed", ""))],
                ["finished", e(manifest.get("finished", ""))],
                ["best epoch", e(manifest.get("best_epoch")) if manifest.get("best_epoch") is not None else "-"],
                *([e(str(key).replace('_', ' ')), _number(value)] for key, value in timing.items()),
                ["coupler", e(manifest.get("coupler_version", ""))],
                ["python", e(manifest.get("python", ""))]]
    libraries = manifest.get("libraries") if isinstance(manifest.get("libraries"), dict) else {}
    return ("<h2>Run</h2>" + _table(["", ""], run_rows, numeric_from=None)
            + "<h2>Components</h2>" + _table(["role", "name", "plugin", "distribution", "version"], rows, None)
            + "<h2>Library versions</h2>"
            + _table(["library", "version"], [[e(k), e(v)] for k, v in libraries.items()], None))


def _plots_section(plots: list[tuple[str, str]]) -> str:
    if not plots:
        return "<h2>Plots</h2><p>The run has no plots (it was trained with <code>plots=none</code>, or before " \
               "Coupler drew them).</p>"
    figures = "".join(f'<figure><img src="{uri}" alt="{e(name)}"><figcaption>{e(name.replace("_", " "))}'
                      f"</figcaption></figure>" for name, uri in plots)
    return f'<h2>Plots</h2><div class="plots">{figures}</div>'


def _csv_section(title: str, rows: list[list[str]], note: str = "") -> str:
    if not rows:
        return ""
    header, body = rows[0], rows[1:MOST_ROWS + 1]
    more = f"<p>The first {MOST_ROWS} rows are shown.</p>" if len(rows) > MOST_ROWS else ""
    return f"<h2>{e(title)}</h2>{note}" + _table(header, [[_cell(c) for c in r] for r in body], 1) + more


def _cell(text: str) -> str:
    """A CSV cell as HTML: a number with a fraction to 4 decimals, anything else escaped as it is."""
    try:
        return f"{float(text):.4f}" if any(c in text for c in ".eE") and text.strip() else e(text)
    except ValueError:
        return e(text)


def _search_section(search_dir: Path, run_dir: Path) -> str:
    record = _json(search_dir / "best.json")
    record = record if isinstance(record, dict) else {}
    facts = [["sweep directory", e(str(search_dir))], ["study", e(record.get("study", ""))],
             ["trials", e(record.get("trials", ""))], ["metric", e(record.get("metric", ""))],
             ["best trial", e(record.get("best_trial", ""))], ["validation", _number(record.get("validation"))],
             ["this run", e("the best trial's run") if Path(str(record.get("run_directory", ""))).name == run_dir.name
              and run_dir.parent == search_dir else e("a trial of the search")]]
    if isinstance(record.get("test"), dict):
        facts.append(["best run's test", e(", ".join(f"{k}={_number(v)}" for k, v in record["test"].items()))])
    refit = record.get("refit") if isinstance(record.get("refit"), dict) else None
    if refit and isinstance(refit.get("test"), dict):
        facts.append(["refit's test", e(", ".join(f"{k}={_number(v)}" for k, v in refit["test"].items()))])
    best_yaml = search_dir / "best.yaml"
    overrides = f"<h3>best.yaml</h3><pre>{e(_text(best_yaml))}</pre>" if best_yaml.is_file() else ""
    return ("<h2>Search</h2>" + _table(["", ""], facts, None) + overrides
            + _csv_section("Trials", _csv(search_dir / "trials.csv")))


STYLE = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto; max-width: 1280px;
       padding: 0 1em; color: #1b1f24; }
h1 { font-size: 1.6em; margin-bottom: .2em; } h2 { margin-top: 1.6em; border-bottom: 1px solid #d0d7de; }
table { border-collapse: collapse; margin: .5em 0; } th, td { padding: .25em .7em; border-bottom: 1px solid #eaeef2;
       text-align: left; vertical-align: top; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
th { background: #f6f8fa; } pre { background: #f6f8fa; padding: .8em; overflow-x: auto; }
.plots { display: flex; flex-wrap: wrap; gap: 1em; } figure { margin: 0; }
figure img { width: 600px; max-width: 100%; border: 1px solid #eaeef2; } figcaption { text-align: center; color: #57606a; }
.sub { color: #57606a; }
"""


def render(run_dir: Path, search_dir: Path | None = None) -> str:
    """The page of the run at ``run_dir`` (checked and read as data), with the search's section when given."""
    from coupler.compare import read_run
    from coupler.run_directory import read_manifest

    manifest = read_manifest(run_dir)  # the seal and every checksum: what the page shows is what the run wrote
    run = read_run(run_dir)
    model = ((manifest.get("components") or {}).get("model") or {}).get("name", "?")
    data = ((manifest.get("components") or {}).get("data") or {}).get("name", "?")
    folds = _csv(run_dir / "folds.csv") if "folds.csv" in manifest["files"] else []
    body = [f"<h1>Run report: model {e(model)} on data {e(data)}</h1>",
            f'<p class="sub">{e(str(run_dir))} &middot; {e(manifest.get("task", ""))} &middot; finished '
            f'{e(manifest.get("finished", ""))}</p>',
            _metrics_section(run.results),
            _plots_section(_plots(run_dir, manifest["files"])),
            _csv_section("Cross-validation folds", folds, "<p>Each fold's metrics on its validation rows "
                         "(<code>folds.csv</code>).</p>") if folds else "",
            _search_section(search_dir, run_dir) if search_dir is not None else "",
            _run_section(manifest, run.timing),
            f"<h2>Config</h2><pre>{e(_text(run_dir / 'config.yaml'))}</pre>"]
    title = f"Coupler report: {model} on {data}"
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            # nothing runs and nothing is fetched, whatever a run's files hold: images are inline, styles here
            f'<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; img-src data:; '
            f'style-src \'unsafe-inline\'">'
            f"<title>{e(title)}</title><style>{STYLE}</style></head><body>\n" + "\n".join(body)
            + "\n</body></html>\n")
