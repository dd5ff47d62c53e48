"""``exporters=[onnx,torchscript]`` with model=mlp (coupler_torch.export): one 1-epoch run on a table with a
categorical column; both exports answer raw rows like the run, and their parity is recorded."""

from __future__ import annotations

import json
import time

import numpy as np
import pandas as pd
import pytest

from coupler.testing import train_run


@pytest.fixture(scope="module")
def mlp_run(tmp_path_factory):
    directory = tmp_path_factory.mktemp("mlp_export")
    generator = np.random.default_rng(0)
    rows = 40
    kind = generator.choice(["a", "b", "c"], rows)
    pd.DataFrame({"x": generator.normal(0, 1, rows) + (kind == "a"), "colour": generator.choice(["red", "blue"], rows),
                  "z": np.where(np.arange(rows) % 7 == 0, np.nan, generator.normal(5, 2, rows)),
                  "kind": kind}).to_csv(directory / "table.csv", index=False)
    started = time.process_time()
    _, run_dir = train_run(directory, "data=csv", f"data.path={directory / 'table.csv'}", "data.target=kind",
                           "data.categorical=[colour]", "model=mlp", "model.hidden=[4]", "trainer.max_epochs=1",
                           "exporters=[onnx,torchscript]")
    print(f"mlp run with both exports: {time.process_time() - started:.2f} s CPU")
    return run_dir, pd.read_csv(directory / "table.csv").drop(columns="kind")


def test_both_exports_record_their_parity(mlp_run):
    run_dir, _ = mlp_run
    exports = json.loads((run_dir / "manifest.json").read_text())["exports"]
    for fmt in ("onnx", "torchscript"):
        print(f"mlp {fmt} parity: {exports[fmt]['parity']} (export {exports[fmt]['seconds']} s)")
        assert exports[fmt]["parity"]["label_agreement"] == 1.0
        assert exports[fmt]["parity"]["max_abs_proba_diff"] <= 1e-5


def test_the_exports_answer_raw_rows_like_predict(mlp_run):
    import io

    import onnxruntime
    import torch

    from coupler.finished_run import FinishedRun
    from coupler.onnx_export import onnx_inputs
    from coupler_torch.export import scripted_inputs

    run_dir, rows = mlp_run
    rows = rows.head(10).copy()
    rows.loc[0, "colour"] = "green"  # unseen: all zeros, as the run encodes it
    run = FinishedRun(run_dir)
    state = json.loads((run_dir / "preprocessor.json").read_text())
    expected = run.predict_proba(rows).to_numpy()
    session = onnxruntime.InferenceSession(str(run_dir / "exports" / "model.onnx"))
    labels, proba = session.run(["label", "probabilities"], onnx_inputs(state, rows))
    assert list(labels) == list(run.predict(rows)) and np.abs(proba - expected).max() <= 1e-5
    # the file was written by this test's run: loaded here from its bytes, as a consumer would load it
    module = torch.jit.load(io.BytesIO((run_dir / "exports" / "model.torchscript.pt").read_bytes()))
    with torch.no_grad():
        out = module(*scripted_inputs(state, rows))
    assert np.abs(out["probabilities"].numpy() - expected).max() <= 1e-5
    assert [run.classes[i] for i in out["label"].tolist()] == list(run.predict(rows))
