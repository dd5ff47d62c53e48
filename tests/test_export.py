"""ONNX export of a run (coupler.onnx_export): the raw columns in, the run's answers out, parity recorded; and
``coupler export RUN --format F`` on a finished run, its checksums extended. One small run per fixture."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from coupler.finished_run import FinishedRun
from coupler.onnx_export import onnx_inputs
from coupler.testing import train_run


def _penguins(path, rows: int = 60):
    """A small table with two categorical columns, missing values in both kinds of column."""
    generator = np.random.default_rng(0)
    species = generator.choice(["Adelie", "Gentoo", "Chinstrap"], rows)
    frame = pd.DataFrame({
        "bill": np.where(species == "Adelie", 38.0, 48.0) + generator.normal(0, 2, rows).round(1),
        "island": np.where(species == "Gentoo", "Biscoe", generator.choice(["Dream", "Torgersen"], rows)),
        "sex": generator.choice(["male", "female", None], rows),
        "mass": np.where(np.arange(rows) % 11 == 0, np.nan, 3700 + 1300 * (species == "Gentoo")
                         + generator.normal(0, 200, rows).round()),
        "species": species,
    })
    frame.to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A logistic regression on categorical and numeric columns, exported at train time."""
    directory = tmp_path_factory.mktemp("export")
    data = _penguins(directory / "penguins.csv")
    _, run_dir = train_run(directory, "data=csv", f"data.path={data}", "data.target=species",
                           "data.categorical=[island,sex]", "model=logistic_regression", "exporters=[onnx]")
    return run_dir, data


def test_the_onnx_export_answers_raw_rows_like_predict(exported):
    import onnxruntime

    run_dir, data = exported
    run = FinishedRun(run_dir)
    rows = pd.read_csv(data).drop(columns="species").head(12)
    rows.loc[0, "island"] = "Atlantis"  # unseen in training: all zeros, as the run encodes it
    rows.loc[1, ["sex", "mass"]] = [None, np.nan]  # missing: filled / imputed as training did
    state = json.loads((run_dir / "preprocessor.json").read_text())
    session = onnxruntime.InferenceSession(str(run_dir / "exports" / "model.onnx"))
    assert [i.name for i in session.get_inputs()] == ["bill", "island", "sex", "mass"]
    labels, proba = session.run(["label", "probabilities"], onnx_inputs(state, rows))
    assert list(labels) == list(run.predict(rows))
    assert np.abs(proba - run.predict_proba(rows).to_numpy()).max() <= 1e-5


def test_the_parity_on_the_test_rows_is_recorded_in_the_manifest(exported):
    run_dir, _ = exported
    manifest = json.loads((run_dir / "manifest.json").read_text())
    parity = manifest["exports"]["onnx"]["parity"]
    print("sklearn logistic_regression onnx parity:", parity)
    assert parity["split"] == "test" and parity["rows"] == manifest["rows"]["test"]
    assert parity["label_agreement"] == 1.0 and parity["max_abs_proba_diff"] <= 1e-5
    assert {"exports/model.onnx", "exports/onnx.json"} <= set(manifest["files"])
    assert json.loads((run_dir / "exports" / "onnx.json").read_text())["parity"] == parity


@pytest.fixture(scope="module")
def regression_run(tmp_path_factory):
    _, run_dir = train_run(tmp_path_factory.mktemp("regression"), "data=diabetes", "model=linear_regression")
    return run_dir


def test_coupler_export_extends_a_finished_runs_checksums(regression_run, coupler_cli):
    before = json.loads((regression_run / "manifest.json").read_text())
    result = coupler_cli("export", str(regression_run), "--format", "onnx")
    assert result.rc == 0, result.err
    manifest = json.loads((regression_run / "manifest.json").read_text())
    parity = manifest["exports"]["onnx"]["parity"]
    print("sklearn linear_regression onnx parity (coupler export):", parity)
    assert parity["max_rel_diff"] <= parity["rtol"]
    assert {k: v for k, v in manifest["files"].items() if not k.startswith("exports/")} == before["files"]
    FinishedRun(regression_run)  # the seal and every checksum hold: predict still loads it
    again = coupler_cli("export", str(regression_run), "--format", "onnx")
    assert again.rc == 2 and "never replaced" in again.err
    assert json.loads((regression_run / "manifest.json").read_text()) == manifest


def test_coupler_export_refuses_a_format_the_model_lacks_and_a_changed_run(regression_run, coupler_cli, tmp_path):
    import shutil

    result = coupler_cli("export", str(regression_run), "--format", "torchscript")
    assert result.rc == 2 and "--format onnx" in result.err
    changed = tmp_path / "changed"
    shutil.copytree(regression_run, changed)
    with open(changed / "metrics.json", "a") as handle:
        handle.write(" ")
    result = coupler_cli("export", str(changed), "--format", "onnx")
    assert result.rc == 2 and "metrics.json changed" in result.err



def test_coupler_export_recovers_from_an_export_killed_before_the_manifest(regression_run, coupler_cli, tmp_path):
    """A ``coupler export`` killed (SIGTERM, SIGKILL) after writing exports/model.onnx and before resealing the
    manifest leaves its unlocked lock and files the manifest does not list (made here by hand, as the kill leaves
    them): loading says what left them, and the next ``coupler export`` takes the lock over, removes them and
    exports."""
    import shutil

    from coupler.errors import CouplerError
    from coupler.run_directory import LOCK, write_manifest

    run_dir = tmp_path / "run"
    shutil.copytree(regression_run, run_dir)
    manifest = json.loads((run_dir / "manifest.json").read_text())
    if manifest.get("exports"):  # another test exported the shared run already: the copy, resealed without it
        shutil.rmtree(run_dir / "exports")
        manifest = {k: v for k, v in manifest.items() if k != "exports"}
        manifest["files"] = {k: v for k, v in manifest["files"].items() if not k.startswith("exports/")}
        write_manifest(run_dir, manifest)
    (run_dir / LOCK).write_text(json.dumps({"pid": 2 ** 22 + 1, "host": "gone", "started": 0}))  # nobody holds it
    (run_dir / "exports").mkdir()
    (run_dir / "exports" / "model.onnx").write_bytes(b"half a graph")
    (run_dir / "exports" / ".onnx.json.4194305.x1.tmp").write_text("{")
    with pytest.raises(CouplerError, match="An interrupted `coupler export` left them: run it again"):
        FinishedRun(run_dir)
    result = coupler_cli("export", str(run_dir), "--format", "onnx")
    assert result.rc == 0, result.err
    assert not (run_dir / LOCK).exists()
    assert sorted(p.name for p in (run_dir / "exports").iterdir()) == ["model.onnx", "onnx.json"]
    assert FinishedRun(run_dir).manifest["exports"]["onnx"]["parity"]["passed"]
