"""``coupler explain RUN``: permutation importance for every model, SHAP values where the model allows (tree SHAP for
XGBoost, the model-agnostic explainer otherwise), written outside the run, on a table where one column decides the
label and the others are noise."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from coupler.errors import CouplerError
from coupler.explain import explain
from coupler.testing import train_run


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    """300 rows: ``signal`` decides the label; ``noise`` (a number) and ``colour`` (a category) do not."""
    rng = np.random.default_rng(0)
    signal = rng.normal(size=300)
    frame = pd.DataFrame({"signal": signal, "noise": rng.normal(size=300),
                          "colour": rng.choice(["red", "green", "blue"], size=300),
                          "label": np.where(signal > 0, "yes", "no")})
    path = tmp_path_factory.mktemp("table") / "table.csv"
    frame.to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def runs(table, tmp_path_factory):
    directory = tmp_path_factory.mktemp("explain")
    data = ("data=csv", f"data.path={table}", "data.target=label")
    return {"xgboost": train_run(directory, *data, "model=xgboost", "model.num_boost_round=10", name="xgboost")[1],
            "logistic_regression": train_run(directory, *data, "model=logistic_regression", name="lr")[1]}


@pytest.mark.parametrize("model, method", [("xgboost", "XGBoost's own tree SHAP (Booster.predict, pred_contribs=True)"),
                                           ("logistic_regression", "model-agnostic Kernel SHAP (shap.KernelExplainer)")])
def test_the_deciding_column_comes_first_by_both_methods(runs, tmp_path, model, method):
    explained = explain(runs[model], output=tmp_path / "out", repeats=3)
    assert explained.shap_method == method
    permutation = explained.permutation.set_index("feature")["importance_mean"]
    assert permutation.index[0] == "signal" and permutation["signal"] > 0.3, permutation
    assert abs(permutation["noise"]) < 0.05 and abs(permutation["colour"]) < 0.05, permutation
    shap = explained.shap_importance.set_index("feature")["mean_abs_shap"]
    # a model input per column the model reads: colour one-hot encoded for a matrix model, one column for a frame one
    assert shap.index[0] == "signal" and any(name.startswith("colour") for name in shap.index), shap
    assert shap["signal"] > 5 * shap.drop("signal").max(), shap
    written = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert written == ["permutation_importance.csv", "shap_importance.csv", "shap_values.csv", "summary.png"]
    values = pd.read_csv(tmp_path / "out" / "shap_values.csv")
    assert len(values) >= explained.rows and "signal" in values.columns
    assert (tmp_path / "out" / "summary.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_command_explains_a_files_rows_and_says_which_methods_it_used(runs, table, coupler_cli, tmp_path):
    result = coupler_cli("explain", str(runs["xgboost"]), "--data", str(table), "--rows", "100", "--repeats", "2")
    assert result.rc == 0, result.err
    assert "explained 100 rows" in result.out
    assert "permutation importance (sklearn.inspection.permutation_importance, accuracy drop):\n  signal:" in result.out
    assert "SHAP: XGBoost's own tree SHAP" in result.out
    [written] = tmp_path.glob("*xgboost-explain")  # the run's last two path parts, as coupler report names its page
    assert (written / "summary.png").is_file()


def test_nothing_is_overwritten_or_written_into_the_run_and_a_file_without_the_target_is_named(runs, table, tmp_path):
    run = runs["logistic_regression"]
    (tmp_path / "taken").mkdir()
    with pytest.raises(CouplerError, match="exists; give another .* or replace it"):
        explain(run, output=tmp_path / "taken")
    with pytest.raises(CouplerError, match="inside the run .* which is sealed"):
        explain(run, output=run / "explained")
    (tmp_path / "taken" / "notes.txt").write_text("mine")
    with pytest.raises(CouplerError, match=r"holds \['notes.txt'\], which coupler explain did not write"):
        explain(run, output=tmp_path / "taken", overwrite=True)
    with pytest.raises(CouplerError, match="holds the run"):
        explain(run, output=run.parent, overwrite=True)
    assert (tmp_path / "taken" / "notes.txt").read_text() == "mine" and (run / "manifest.json").is_file()
    unlabelled = tmp_path / "unlabelled.csv"
    pd.read_csv(table).drop(columns=["label"]).to_csv(unlabelled, index=False)
    with pytest.raises(CouplerError, match="has no column 'label', the run's target"):
        explain(run, data=unlabelled, output=tmp_path / "out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken", "unlabelled.csv"], "no half-written output"
