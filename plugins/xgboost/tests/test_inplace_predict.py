"""Predictions through ``Booster.inplace_predict`` (``XGBoostModel._raw``): the answers of a DMatrix built from the
frame, from a float32 matrix that copies what XGBoost would read, and never a matrix it would refuse."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xgboost as xgb

from coupler.finished_run import FinishedRun
from coupler.testing import train_run
from coupler_xgboost.model import _plain_matrix


@pytest.fixture(scope="module")
def booster():
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"f0": rng.normal(size=300), "c": pd.Categorical(rng.choice(list("abc"), 300)),
                          "f1": rng.normal(size=300)})
    label = ((frame["f0"] + (frame["c"] == "b") * 2) > 0.5).astype(int)
    model = xgb.train({"objective": "binary:logistic"}, xgb.DMatrix(frame, label=label, enable_categorical=True), 8)
    return model, frame


def categories(model) -> dict:
    return {name: values.to_pylist() for name, values in model.get_categories(export_to_arrow=True).to_arrow()
            if values is not None}


def test_a_frame_of_the_training_columns_and_categories_is_predicted_as_a_dmatrix_of_it_would_be(booster):
    model, frame = booster
    frame = frame.copy()
    frame.loc[::7, "c"] = None  # missing values
    matrix = _plain_matrix(frame, model, categories(model))
    assert isinstance(matrix, np.ndarray) and matrix.dtype == np.float32
    expected = model.predict(xgb.DMatrix(frame, enable_categorical=True))
    np.testing.assert_array_equal(model.inplace_predict(matrix), expected)


def test_what_the_codes_would_misread_goes_as_a_frame_for_xgboost_to_check(booster):
    model, frame = booster
    other_order = frame.assign(c=pd.Categorical(frame["c"].astype(str), categories=list("cba")))
    assert _plain_matrix(other_order, model, categories(model)) is other_order  # XGBoost codes by the values
    np.testing.assert_array_equal(model.inplace_predict(other_order),
                                  model.predict(xgb.DMatrix(frame, enable_categorical=True)))
    swapped = frame[["f1", "c", "f0"]]
    assert _plain_matrix(swapped, model, categories(model)) is swapped
    with pytest.raises(ValueError, match="feature_names mismatch"):
        model.inplace_predict(swapped)


def test_a_frame_changed_in_place_is_predicted_again(tmp_path):
    """A caller (``coupler explain``'s permutations, a user's loop) that changes its rows between two calls gets
    the new rows' answers, not the first call's."""
    _, run_dir = train_run(tmp_path, "data=iris", "model=xgboost", "model.num_boost_round=5", "plots=none")
    finished = FinishedRun(run_dir)
    rows, _ = finished.labelled_rows()
    rows = rows.copy()
    first = finished.predict_proba(rows).to_numpy()
    rows["petal length (cm)"] = rows["petal length (cm)"].to_numpy()[::-1]
    again = finished.predict_proba(rows).to_numpy()
    np.testing.assert_array_equal(again, finished.predict_proba(rows.copy()).to_numpy())
    assert not np.array_equal(first, again)
