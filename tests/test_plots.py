"""Plots: ``RUN/plots/*.png``, chosen with ``plots=[...]``/``all``/``none``, drawn from what the evaluation measured,
written before the seal (the manifest's checksums cover them), each only where it applies."""

from __future__ import annotations

import json

import numpy as np
import pytest

from coupler.plots import DEFAULT, PLOTS, Evidence, applies, write_plots
from coupler.testing import train_run

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def xgboost_run(tmp_path_factory):
    """Every plot a binary run with probabilities, rounds and importances can have."""
    return train_run(tmp_path_factory.mktemp("plots"), "data=breast_cancer", "model=xgboost",
                     "model.num_boost_round=5", "plots=all")[1]


def drawn(run_dir) -> set[str]:
    return {path.stem for path in (run_dir / "plots").glob("*.png")} if (run_dir / "plots").is_dir() else set()


def test_all_draws_every_plot_a_binary_run_with_probabilities_and_rounds_has_and_the_seal_covers_them(xgboost_run):
    from coupler.finished_run import FinishedRun

    assert drawn(xgboost_run) == {"confusion_matrix", "roc", "precision_recall", "calibration", "learning_curves",
                                  "feature_importance"}
    files = json.loads((xgboost_run / "manifest.json").read_text())["files"]
    for name in drawn(xgboost_run):
        data = (xgboost_run / "plots" / f"{name}.png").read_bytes()
        assert data.startswith(PNG) and len(data) > 5000, name
        assert f"plots/{name}.png" in files, "written before the seal, so its checksum is in the manifest"
    assert FinishedRun(xgboost_run).evaluate()["test"], "the sealed run, plots included, still loads"


def test_the_default_draws_the_cheap_plots_that_apply(iris_run):
    assert drawn(iris_run) == {"confusion_matrix"}, "logistic regression on iris: no epochs, not a regression"
    assert set(DEFAULT) <= set(PLOTS)


def test_regression_draws_residuals_and_predicted_vs_actual_and_says_which_named_plots_do_not_apply(tmp_path, caplog):
    _, run = train_run(tmp_path, "data=diabetes", "model=ridge", "plots=[residuals,predicted_vs_actual,roc]",
                       "split.val=0.1")
    assert drawn(run) == {"residuals", "predicted_vs_actual"}
    assert any("roc" in r.getMessage() and "not drawn" in r.getMessage() for r in caplog.records)


def test_plots_none_draws_nothing(tmp_path):
    _, run = train_run(tmp_path, "plots=none", "split.val=0.2")
    assert not (run / "plots").exists()


def test_a_plot_name_that_does_not_exist_is_refused_in_one_line_before_training(coupler_cli):
    result = coupler_cli("train", "plots=[confusion_matrx]")
    assert result.rc == 2
    assert len(result.error_lines) == 1 and "plots=" in result.error_lines[0]
    assert "confusion_matrix" in result.error_lines[0], "the line lists the names allowed"
    assert "run directory:" not in result.out + result.err


def test_a_model_without_probabilities_gets_no_roc_precision_recall_or_calibration_and_no_error(tmp_path):
    y = np.array([0, 1, 2, 1, 0, 2])
    evidence = Evidence(task="multiclass", classes=["a", "b", "c"], y=y, prediction=np.array([0, 1, 1, 1, 0, 2]),
                        proba=None)
    assert [name for name in PLOTS if applies(name, evidence)] == ["confusion_matrix"]
    written = write_plots(tmp_path, ["confusion_matrix", "roc", "precision_recall", "calibration"], evidence)
    assert [p.name for p in written] == ["confusion_matrix.png"]
    with_proba = Evidence(task="multiclass", classes=["a", "b", "c"], y=y, prediction=y, proba=np.eye(3)[y])
    assert [p.name for p in write_plots(tmp_path, ["roc"], with_proba)] == ["roc.png"], "one vs rest, per class"
