"""``coupler.FinishedRun``: a finished run in Python, public and light to import: its preprocessing applied to
raw rows (``transform``), its predictions in the user's labels (``predict``) and its probabilities
(``predict_proba``), with the checks ``coupler predict`` makes."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from coupler.errors import DataError


@pytest.fixture(scope="module")
def rows():
    from sklearn.datasets import load_iris

    return load_iris(as_frame=True).frame.drop(columns="target").iloc[[0, 60, 120]]


def test_coupler_exports_finished_run_without_importing_it_until_asked():
    probe = ("import sys, coupler; print('coupler.finished_run' in sys.modules); "
             "from coupler import FinishedRun; print(FinishedRun.__module__)")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60).stdout.split()
    assert out == ["False", "coupler.finished_run"]


def test_a_finished_run_predicts_raw_rows_in_its_own_labels(iris_run, rows):
    from coupler import FinishedRun

    run = FinishedRun(iris_run)
    assert run.transform(rows).shape == (3, 4)
    predicted = run.predict(rows)
    assert list(predicted) == [run.classes[0], run.classes[1], run.classes[2]]
    proba = run.predict_proba(rows)
    assert list(proba.columns) == list(run.classes) and list(proba.index) == [0, 60, 120]
    assert np.allclose(proba.sum(axis=1), 1) and (proba.to_numpy().argmax(axis=1) == [0, 1, 2]).all()


def test_rows_without_a_training_column_are_refused_naming_it(iris_run, rows):
    from coupler import FinishedRun

    with pytest.raises(DataError, match=r"the input lacks 1 of the 4 training columns: \['petal width \(cm\)'\]"):
        FinishedRun(iris_run).predict(rows.drop(columns="petal width (cm)"))
