"""Serving a finished run (``coupler serve``: FastAPI's TestClient, in this process; one real server process that
SIGTERM stops), measuring drift against its training distribution (``coupler drift``), the predict warning about
values far outside training (the issue's Atlantis rows), and the Python API's documented example.

One small penguins-like run (120 rows, a categorical ``island``, two numbers, logistic regression) serves them all."""

from __future__ import annotations

import json
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from coupler import drift
from coupler.testing import train_run

ROOT = Path(__file__).resolve().parent.parent
ATLANTIS = {"island": "Atlantis", "bill_length_mm": 9999, "body_mass_g": 3700}
ADELIE = {"island": "Dream", "bill_length_mm": 38.1, "body_mass_g": 3600}


def penguins(rows: int = 120, seed: int = 0, shift: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    species = rng.choice(["Adelie", "Gentoo", "Chinstrap"], rows)
    island = np.where(species == "Gentoo", "Biscoe", rng.choice(["Dream", "Torgersen"], rows))
    bill = np.where(species == "Adelie", 38, np.where(species == "Gentoo", 47, 49)) + rng.normal(0, 2, rows) + shift
    mass = np.where(species == "Gentoo", 5000, 3700) + rng.normal(0, 300, rows)
    return pd.DataFrame({"island": island, "bill_length_mm": bill.round(1), "body_mass_g": mass.round(0),
                         "species": species})


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("penguins")
    penguins().to_csv(directory / "penguins.csv", index=False)
    _, run_dir = train_run(directory, "data=csv", f"data.path={directory / 'penguins.csv'}", "data.target=species")
    return run_dir


@pytest.fixture(scope="module")
def client(run):
    from fastapi.testclient import TestClient

    from coupler.serving import create_app

    return TestClient(create_app(run))


# --- serve ------------------------------------------------------------------------------------------------

def test_predict_answers_json_records_with_labels_and_probabilities(client):
    answer = client.post("/predict", json=[ADELIE, {**ADELIE, "body_mass_g": None}])
    assert answer.status_code == 200
    body = answer.json()
    assert body["predictions"] == ["Adelie", "Adelie"]  # a null number is imputed as training imputed it
    assert set(body["probabilities"][0]) == {"Adelie", "Chinstrap", "Gentoo"}
    assert sum(body["probabilities"][0].values()) == pytest.approx(1.0)


def test_predict_answers_csv_as_the_run_predicts_it(client, run):
    from coupler.finished_run import FinishedRun

    rows = penguins(rows=20, seed=1).drop(columns="species")
    rows.loc[3, "body_mass_g"] = None  # an empty cell: missing, imputed as training imputed it
    answer = client.post("/predict", content=rows.to_csv(index=False), headers={"Content-Type": "text/csv"})
    assert answer.status_code == 200, answer.json()
    assert answer.json()["predictions"] == list(FinishedRun(run).predict(rows))
    oversized = client.post("/predict", content=b"x", headers={"Content-Type": "text/csv",
                                                               "Content-Length": str(2**40)})
    assert oversized.status_code == 413


def test_a_missing_or_ill_typed_field_is_a_422_naming_it(client):
    missing = client.post("/predict", json=[{"island": "Dream", "body_mass_g": 3600}])
    assert missing.status_code == 422
    assert {"loc": ["body", 0, "bill_length_mm"], "msg": "Field required", "type": "missing"} in missing.json()["detail"]
    ill_typed = client.post("/predict", json=[ADELIE, {**ADELIE, "bill_length_mm": "long"}])
    assert ill_typed.status_code == 422
    assert [e["loc"] for e in ill_typed.json()["detail"]] == [["body", 1, "bill_length_mm"]]
    infinite = client.post("/predict", content="island,bill_length_mm,body_mass_g\nDream,inf,3600\n",
                           headers={"Content-Type": "text/csv"})
    assert infinite.status_code == 422
    assert [(e["loc"], e["type"]) for e in infinite.json()["detail"]] == [(["body", 0, "bill_length_mm"], "finite_number")]
    assert client.post("/predict", json={"island": "Dream"}).status_code == 422  # a record, not a list of them
    assert client.post("/predict", content="x", headers={"Content-Type": "text/plain"}).status_code == 415


def test_health_and_metadata_and_far_outside_counts(client, run):
    assert client.get("/health").json() == {"status": "ok"}
    before = client.get("/metadata").json()["far_outside"]
    answer = client.post("/predict", json=[ATLANTIS, ADELIE]).json()
    assert answer["far_outside"] == {"island": 1, "bill_length_mm": 1}
    metadata = client.get("/metadata").json()
    assert metadata["classes"] == ["Adelie", "Chinstrap", "Gentoo"] and metadata["task"] == "multiclass"
    assert metadata["features"]["island"]["categories"] == ["Biscoe", "Dream", "Torgersen"]
    assert metadata["features"]["bill_length_mm"]["categorical"] is False
    assert set(metadata["metrics"]) >= {"val", "test"}
    assert metadata["versions"]["trained_with"]["scikit-learn"]
    assert metadata["run"] == run.name and str(run.parent) not in client.get("/metadata").text  # no server path
    assert metadata["far_outside"]["island"] == before.get("island", 0) + 1
    assert metadata["far_outside"]["bill_length_mm"] == before.get("bill_length_mm", 0) + 1


def test_a_tampered_run_is_refused_before_serving(run, tmp_path):
    from coupler.errors import CouplerError
    from coupler.serving import create_app

    copy = shutil.copytree(run, tmp_path / "copy")
    (copy / "preprocessor.json").write_text((copy / "preprocessor.json").read_text().replace("median", "mean"))
    with pytest.raises(CouplerError, match="preprocessor.json changed since the run finished"):
        create_app(copy)


def test_onnx_runtime_without_an_export_says_how_to_make_one(run):
    from coupler.errors import CouplerError
    from coupler.serving import create_app

    with pytest.raises(CouplerError, match=r"has no ONNX export; run coupler export .* --format onnx first"):
        create_app(run, runtime="onnx")


def test_onnx_runtime_answers_like_the_native_one_from_the_runs_export(run, client, tmp_path):
    """``coupler export RUN --format onnx``, then ``coupler serve RUN --runtime onnx``: the same labels and
    probabilities as the run's own model, an unseen category and a missing value included."""
    from fastapi.testclient import TestClient

    from coupler.onnx_export import export_finished
    from coupler.serving import create_app

    exported = shutil.copytree(run, tmp_path / "exported")
    export_finished(exported, "onnx")
    onnx_client = TestClient(create_app(exported, runtime="onnx"))
    records = [ADELIE, ATLANTIS, {**ADELIE, "island": "Biscoe", "body_mass_g": None}]
    native, answered = client.post("/predict", json=records).json(), onnx_client.post("/predict", json=records).json()
    assert answered["predictions"] == native["predictions"]
    for ours, theirs in zip(answered["probabilities"], native["probabilities"]):
        assert ours == pytest.approx(theirs, abs=1e-5)
    metadata = onnx_client.get("/metadata").json()
    assert metadata["runtime"] == "onnx" and not Path(metadata["onnx_file"]).is_absolute()
    assert (exported / metadata["onnx_file"]).is_file()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.slow
def test_coupler_serve_answers_and_stops_cleanly_on_sigterm(run):
    port = _free_port()
    server = subprocess.Popen([sys.executable, "-m", "coupler.cli", "serve", str(run), "--port", str(port)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        request = urllib.request.Request(f"http://127.0.0.1:{port}/predict", data=json.dumps([ADELIE]).encode(),
                                         headers={"Content-Type": "application/json"})
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(request, timeout=10) as response:
                    assert json.loads(response.read())["predictions"] == ["Adelie"]
                break
            except OSError:
                assert server.poll() is None, server.communicate()[1]
                assert time.monotonic() < deadline, "the server did not answer within 60 s"
                time.sleep(0.2)
        server.send_signal(signal.SIGTERM)
        _, err = server.communicate(timeout=30)
    finally:
        if server.poll() is None:
            server.kill()
    assert server.returncode == 0, err
    assert "Traceback" not in err


# --- drift -------------------------------------------------------------------------------------------------

def test_the_run_records_its_training_distribution(run):
    recorded = drift.read(run)
    island = recorded["features"]["island"]
    assert island["kind"] == "categorical" and set(island["frequencies"]) == {"Biscoe", "Dream", "Torgersen"}
    assert sum(island["frequencies"].values()) == pytest.approx(1.0)
    bill = recorded["features"]["bill_length_mm"]
    assert bill["min"] == bill["percentiles"][0] and bill["max"] == bill["percentiles"][-1]
    assert sum(bill["bin_fractions"]) == pytest.approx(1.0)


def test_drift_passes_like_data_and_flags_shifted_data(run, coupler_cli, tmp_path):
    penguins().to_csv(tmp_path / "same.csv", index=False)  # the training file: its split does not drift from it
    same = coupler_cli("drift", str(run), str(tmp_path / "same.csv"), "--json")
    assert same.rc == 0, same.err
    assert json.loads(same.out)["drifted"] == []

    shifted = penguins(seed=2, shift=10.0)
    shifted.loc[:9, "island"] = "Atlantis"
    shifted.to_csv(tmp_path / "shifted.csv", index=False)
    result = coupler_cli("drift", str(run), str(tmp_path / "shifted.csv"), "--json")
    assert result.rc == 3
    report = {row["feature"]: row for row in json.loads(result.out)["features"]}
    assert json.loads(result.out)["drifted"] == ["island", "bill_length_mm"]
    assert report["island"]["outside"] == 10 and report["island"]["test"] == "chi2"
    assert report["bill_length_mm"]["p_value"] < 1e-6 and report["bill_length_mm"]["test"] == "ks"
    assert report["body_mass_g"]["psi"] < 0.2
    assert "drift past PSI 0.2 in island, bill_length_mm" in result.err
    # the threshold is the user's: past 100, nothing drifted
    assert coupler_cli("drift", str(run), str(tmp_path / "shifted.csv"), "--psi-threshold", "100").rc == 0


def test_drift_of_a_run_without_a_distribution_says_it_cannot(run, coupler_cli, tmp_path):
    from coupler.run_directory import MANIFEST, write_manifest

    old = shutil.copytree(run, tmp_path / "old")
    (old / drift.DISTRIBUTION_FILE).unlink()
    manifest = json.loads((old / MANIFEST).read_text())
    del manifest["files"][drift.DISTRIBUTION_FILE]
    write_manifest(old, manifest)  # a run from before the distribution was recorded
    penguins(rows=10).to_csv(tmp_path / "new.csv", index=False)
    result = coupler_cli("drift", str(old), str(tmp_path / "new.csv"))
    assert result.rc == 2
    assert result.error_lines == [f"coupler: error: run {str(old)!r} has no feature_distribution.json (trained "
                                    f"before Coupler recorded the training distribution, or not a tabular run): drift "
                                    f"cannot be measured; retrain it."]


def test_predict_warns_about_the_atlantis_row(run, coupler_cli, tmp_path):
    pd.DataFrame([ATLANTIS, ADELIE]).to_csv(tmp_path / "in.csv", index=False)
    result = coupler_cli("predict", str(run), str(tmp_path / "in.csv"), str(tmp_path / "out.csv"))
    assert result.rc == 0, result.err
    warning = [line for line in result.err.splitlines() if "far outside the training data" in line]
    assert len(warning) == 1 and "island (1 row), bill_length_mm (1 row)" in warning[0]


# --- the Python API's documented example --------------------------------------------------------------------

def test_the_documented_python_example_runs(iris_run, monkeypatch, capsys):
    text = (ROOT / "docs" / "serving.md").read_text()
    example = re.search(r"## Python API.*?```python\n(.*?)```", text, re.S).group(1)
    monkeypatch.chdir(iris_run.parent)  # the example's run directory is "run", as coupler train hydra.run.dir=run
    exec(compile(example, "docs/serving.md", "exec"), {})
    printed = capsys.readouterr().out.splitlines()
    assert printed[0] == "['setosa' 'virginica']"
    assert printed[1].split() == ["setosa", "versicolor", "virginica"]
