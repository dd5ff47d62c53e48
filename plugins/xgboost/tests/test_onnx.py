"""``exporters=[onnx]`` with model=xgboost (coupler_xgboost.onnx): parity recorded, and the refusals."""

from __future__ import annotations

import json

import numpy as np
import pytest

from coupler.errors import CouplerError
from coupler.testing import train_run


@pytest.fixture(scope="module")
def xgboost_run(tmp_path_factory):
    _, run_dir = train_run(tmp_path_factory.mktemp("xgboost_onnx"), "data=breast_cancer", "model=xgboost",
                           "model.num_boost_round=5", "exporters=[onnx]")
    return run_dir


def test_an_xgboost_export_answers_like_the_run_and_records_its_parity(xgboost_run):
    import onnxruntime

    from coupler.finished_run import FinishedRun
    from coupler.onnx_export import onnx_inputs

    parity = json.loads((xgboost_run / "manifest.json").read_text())["exports"]["onnx"]["parity"]
    print("xgboost onnx parity:", parity)
    assert parity["label_agreement"] == 1.0 and parity["max_abs_proba_diff"] <= 1e-5
    run = FinishedRun(xgboost_run)
    from sklearn.datasets import load_breast_cancer

    rows = load_breast_cancer(as_frame=True).data.head(20).copy()
    rows.iloc[0, 0] = np.nan  # missing: the default branch, as XGBoost takes it
    state = json.loads((xgboost_run / "preprocessor.json").read_text())
    session = onnxruntime.InferenceSession(str(xgboost_run / "exports" / "model.onnx"))
    labels, proba = session.run(["label", "probabilities"], onnx_inputs(state, rows))
    assert list(labels) == list(run.predict(rows))
    assert np.abs(proba - run.predict_proba(rows).to_numpy()).max() <= 1e-5


def test_native_categorical_splits_are_refused_by_name():
    from coupler.onnx_export import preprocessing_graph

    state = {"columns": ["island", "bill"], "categorical": {"island": {"fill": "Dream", "categories": ["Dream"]}},
             "numeric": {}, "encode": "onehot", "input_format": "frame"}
    with pytest.raises(CouplerError, match="'island' is categorical and the model reads it natively"):
        preprocessing_graph(state)


def test_torchscript_is_refused_for_xgboost_before_any_data(coupler_cli):
    result = coupler_cli("train", "model=xgboost", "exporters=[torchscript]", "data=csv", "data.path=never_read.csv",
                         "data.target=y")
    assert result.rc == 2 and "exporters that support model 'xgboost': model_card, onnx" in result.err
    assert "model=mlp" in result.err  # what would export as torchscript


def test_onnx_with_native_categorical_columns_is_refused_before_fit(coupler_cli, tmp_path, monkeypatch):
    """The data are read before fitting, so the run knows then that XGBoost would split on categories natively:
    refused at once with the fixes, instead of after 500 rounds (the run's directory is not kept)."""
    from coupler_xgboost.model import XGBoostModel

    def never(*args, **kwargs):
        raise AssertionError("fit ran: the export should have been refused before it")

    monkeypatch.setattr(XGBoostModel, "fit", never)
    rows = 12
    (tmp_path / "penguins.csv").write_text("bill,island,species\n" + "".join(
        f"{38 + i % 5},{('Dream', 'Biscoe')[i % 2]},{('Adelie', 'Gentoo')[i % 2]}\n" for i in range(rows)))
    result = coupler_cli("train", "data=csv", "data.path=penguins.csv", "data.target=species",
                         "data.categorical=[island]", "model=xgboost", "exporters=[onnx]", "hydra.run.dir=run")
    print(result.err.strip())
    assert result.rc == 2 and len(result.err.strip().splitlines()) == 1
    assert "'island' natively" in result.err and "remove onnx from exporters" in result.err
    assert "data.features=[...]" in result.err and "model=random_forest" in result.err
    assert not (tmp_path / "run" / "model").exists()


def test_a_converter_failure_is_one_error_naming_model_format_and_library(tmp_path):
    """onnxmltools cannot convert a linear booster (gblinear): a CouplerError naming the model, the format and
    the library's own first line, and nothing written, instead of a KeyError traceback from inside onnxmltools."""
    import pandas as pd
    import xgboost as xgb

    from coupler.onnx_export import export_model
    from coupler.preprocessing import Preprocessor
    from coupler_xgboost.model import XGBoostModel

    X = pd.DataFrame(np.random.default_rng(0).random((16, 3)), columns=["a", "b", "c"])
    y = (X["a"] > 0.5).astype(float)
    model = XGBoostModel(task="binary", seed=0, params={"booster": "gblinear"}, num_boost_round=2)
    model.booster = xgb.train({"booster": "gblinear", "objective": "binary:logistic"}, xgb.DMatrix(X, label=y), 2)
    preprocessor = Preprocessor().fit(X, [], "frame")
    with pytest.raises(CouplerError) as caught:
        export_model("onnx", model, preprocessor, "binary", [0, 1], ("test", X), tmp_path, name="xgboost")
    print(caught.value)
    assert str(caught.value).startswith("exporting model 'xgboost' as onnx failed in onnxmltools: KeyError: ")
    assert "gbtree_model_param" in str(caught.value) and "\n" not in str(caught.value)
    assert list(tmp_path.iterdir()) == []
