"""``coupler report RUN``: one self-contained HTML page, written outside the sealed run; its cross-validation and
search sections; every string from the run escaped; what is not a run refused in one line. Rendered in headless
Chromium (Debian's ``chromium`` package): the page's text, every image loaded, a screenshot kept."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import warnings
from pathlib import Path

import pytest
import yaml

from coupler.run_directory import checksums, read_manifest, write_manifest
from coupler.testing import read_metrics, train_run

HOSTILE_METRIC = "<script>alert(1)</script>"
HOSTILE_VALUE = "<img src=x onerror=alert(2)>"
#: where the screenshot is kept (printed in the test's report): COUPLER_TEST_ARTIFACTS, else the temporary directory
ARTIFACTS = Path(os.environ.get("COUPLER_TEST_ARTIFACTS") or Path(tempfile.gettempdir()) / "coupler-test-artifacts")


@pytest.fixture(scope="module")
def cv_run(tmp_path_factory):
    """Cross-validated logistic regression on iris, with the plots its probabilities allow."""
    return train_run(tmp_path_factory.mktemp("report"), "cv.folds=2", "plots=[confusion_matrix,roc,calibration]")[1]


@pytest.fixture(scope="module")
def search(cv_run, tmp_path_factory):
    """A search's sweep directory as coupler-optuna records it (``trials.csv``, ``best.json``, ``best.yaml``), the
    run its best trial ``0``, and ``1`` a trial of it. A sealed run copied keeps its seal."""
    sweep = tmp_path_factory.mktemp("search")
    shutil.copytree(cv_run, sweep / "0")
    (sweep / "trials.csv").write_text("number,params,state,value,duration_s,run_directory\n"
                                      f"0,model.params.C=0.5,COMPLETE,0.93,1.2,{sweep / '0'}\n"
                                      "1,model.params.C=9.0,PRUNED,,0.4,\n")
    (sweep / "best.json").write_text(json.dumps({"study": "iris_study", "trials": 2, "metric": "accuracy",
                                                 "best_trial": 0, "validation": 0.93,
                                                 "run_directory": "/elsewhere/moved/0"}))
    (sweep / "best.yaml").write_text('- "model.params.C=0.5"\n')
    return sweep


def hostile_copy(run: Path, directory: Path) -> Path:
    """The run with a metric named ``HOSTILE_METRIC`` and a config value ``HOSTILE_VALUE``, sealed again (as
    someone who rewrites a run on purpose would)."""
    copy = directory / "hostile"
    shutil.copytree(run, copy)
    metrics = json.loads((copy / "metrics.json").read_text())
    metrics["test"][HOSTILE_METRIC] = 0.5
    (copy / "metrics.json").write_text(json.dumps(metrics))
    config = yaml.safe_load((copy / "config.yaml").read_text())
    config["data"]["note"] = HOSTILE_VALUE
    (copy / "config.yaml").write_text(yaml.safe_dump(config))
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["files"] = checksums(copy)
    manifest["components"]["model"]["version"] = HOSTILE_VALUE
    write_manifest(copy, manifest)
    return copy


def test_the_page_holds_metrics_plots_config_fingerprint_versions_and_the_cv_folds(coupler_cli, cv_run, tmp_path):
    result = coupler_cli("report", str(cv_run), "--output", "page.html")
    assert result.rc == 0, result.err
    page = (tmp_path / "page.html").read_text()
    manifest = read_manifest(cv_run)  # the run is untouched: still sealed, nothing added
    test = read_metrics(cv_run)["test"]
    assert f"{test['accuracy']:.4f}" in page and "logistic_regression" in page
    assert page.count('<img src="data:image/png;base64,') == 3, "three plots, inlined"
    assert manifest["data_fingerprint"] in page and manifest["components"]["model"]["version"] in page
    assert "Cross-validation folds" in page and "cross-validation (mean ± std)" in page
    assert "<script" not in page and "http://" not in page and "https://" not in page, "self-contained, static"


def test_the_default_output_is_named_after_the_run_in_the_working_directory_and_never_overwritten(coupler_cli, cv_run,
                                                                                                   tmp_path):
    first = coupler_cli("report", str(cv_run))
    assert first.rc == 0, first.err
    written = tmp_path / f"{cv_run.parent.name}_{cv_run.name}-report.html"
    assert written.is_file() and first.out.strip() == f"wrote {written.name}"
    again = coupler_cli("report", str(cv_run))
    assert again.rc == 2 and "--overwrite" in again.error_lines[0]
    assert coupler_cli("report", str(cv_run), "--overwrite").rc == 0


def test_an_output_inside_the_sealed_run_or_a_path_that_is_not_a_run_is_refused_in_one_line(coupler_cli, cv_run,
                                                                                             tmp_path):
    inside = coupler_cli("report", str(cv_run), "--output", str(cv_run / "report.html"))
    assert inside.rc == 2 and len(inside.error_lines) == 1 and "sealed" in inside.error_lines[0]
    assert not (cv_run / "report.html").exists()
    (tmp_path / "empty").mkdir()
    for path in (tmp_path / "empty", tmp_path / "missing"):
        result = coupler_cli("report", str(path))
        assert result.rc == 2 and len(result.error_lines) == 1 and str(path) in result.error_lines[0], result.err
        assert "Traceback" not in result.err


def test_every_string_from_the_run_is_escaped(cv_run, tmp_path):
    from coupler.report import render

    page = render(hostile_copy(cv_run, tmp_path))
    assert HOSTILE_METRIC not in page and HOSTILE_VALUE not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "&lt;img src=x onerror=alert(2)&gt;" in page


def test_a_search_sweep_reports_its_best_run_with_the_trials(coupler_cli, search):
    result = coupler_cli("report", str(search), "--output", "search.html")
    assert result.rc == 0, result.err
    page = Path("search.html").read_text() if Path("search.html").exists() else ""
    assert "<h2>Search</h2>" in page and "iris_study" in page and "PRUNED" in page and "model.params.C=0.5" in page
    assert "the best trial&#x27;s run" in page


def chromium(*args: str, profile: Path) -> str:
    program = shutil.which("chromium") or shutil.which("chromium-browser")
    if program is None:
        pytest.fail("chromium is not installed: the report is checked in headless Chromium. Install it with "
                    "`apt-get install -y chromium` (Debian/Ubuntu; .ci/run does) and run the test again.")
    command = [program, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
               "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={profile}", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=120).stdout


#: a test-only page: the report in a frame; once it loaded, each image's natural width, the script count and the
#: report's text go into #result, which --dump-dom prints
CHECK_PAGE = """<!DOCTYPE html><html><body><pre id="result">not loaded</pre>
<iframe id="page" src="report.html" width="1280" height="900"></iframe>
<script>
document.getElementById("page").addEventListener("load", function () {
  var doc = this.contentDocument;
  document.getElementById("result").textContent = JSON.stringify({
    images: Array.from(doc.images).map(function (image) { return image.naturalWidth; }),
    scripts: doc.scripts.length, text: doc.body.innerText});
});
</script></body></html>"""


def test_chromium_renders_the_page_every_image_loads_and_a_screenshot_is_kept(cv_run, tmp_path, record_property):
    from coupler.report import write_report

    write_report(hostile_copy(cv_run, tmp_path), tmp_path / "report.html")
    (tmp_path / "check.html").write_text(CHECK_PAGE)
    dom = chromium("--allow-file-access-from-files", "--virtual-time-budget=10000", "--dump-dom",
                   (tmp_path / "check.html").as_uri(), profile=tmp_path / "profile")
    start, end = dom.find('<pre id="result">') + len('<pre id="result">'), dom.find("</pre>")
    import html

    seen = json.loads(html.unescape(dom[start:end]))
    assert len(seen["images"]) == 3 and all(width > 0 for width in seen["images"]), seen["images"]
    assert seen["scripts"] == 0, "a hostile value stays text"
    assert HOSTILE_METRIC in seen["text"] and "logistic_regression" in seen["text"]
    assert f"{read_metrics(cv_run)['test']['accuracy']:.4f}" in seen["text"]

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    screenshot = ARTIFACTS / "report-screenshot.png"
    screenshot.unlink(missing_ok=True)
    chromium(f"--screenshot={screenshot}", "--window-size=1280,2400", (tmp_path / "report.html").as_uri(),
             profile=tmp_path / "profile")
    assert screenshot.read_bytes().startswith(b"\x89PNG"), "the screenshot is kept"
    record_property("screenshot", str(screenshot))
    # shown in pytest's warnings summary, with or without xdist (a passing test's print is not)
    warnings.warn(UserWarning(f"screenshot of the report (a test artifact): {screenshot}"), stacklevel=1)
