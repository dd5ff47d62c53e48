"""``coupler predict`` in batches (``coupler.batch_predict``): the same output whether the input is read in one batch
or many, for each engine (scikit-learn, XGBoost, a torch MLP); a directory of Parquet files in, Parquet out; the
run's checks on every batch, naming the file's row; the model never given more rows than a batch; a column whose
values change kind after pyarrow's first block. One small penguins-like table (a categorical ``island``, two numbers)
trains each run."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from coupler.finished_run import FinishedRun
from coupler.plugin_manager import get_plugin_manager
from coupler.testing import train_run
from tests.corpus import refused

ENGINES = {
    "sklearn": ["model=logistic_regression"],
    "xgboost": ["model=xgboost", "model.num_boost_round=5"],
    "torch": ["model=mlp", "model.hidden=[4]", "trainer.max_epochs=1"],
}


def penguins(rows: int, seed: int = 0, target: bool = True) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    species = rng.choice(["Adelie", "Gentoo", "Chinstrap"], rows)
    frame = pd.DataFrame({
        "island": np.where(species == "Gentoo", "Biscoe", rng.choice(["Dream", "Torgersen"], rows)),
        "bill_length_mm": (np.where(species == "Adelie", 38, 48) + rng.normal(0, 2, rows)).round(1),
        "body_mass_g": (np.where(species == "Gentoo", 5000, 3700) + rng.normal(0, 300, rows)).round(0),
    })
    return frame.assign(species=species) if target else frame


@pytest.fixture(scope="module", params=list(ENGINES))
def engine_run(request, tmp_path_factory):
    directory = tmp_path_factory.mktemp(request.param)
    penguins(120).to_csv(directory / "penguins.csv", index=False)
    _, run_dir = train_run(directory, "data=csv", f"data.path={directory / 'penguins.csv'}", "data.target=species",
                           *ENGINES[request.param])
    return request.param, run_dir


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    directory = tmp_path_factory.mktemp("penguins")
    penguins(120).to_csv(directory / "penguins.csv", index=False)
    return train_run(directory, "data=csv", f"data.path={directory / 'penguins.csv'}", "data.target=species")[1]


def new_rows(rows: int, seed: int) -> pd.DataFrame:
    """Rows to predict: the training columns, a missing number, and an identifier column the run does not read."""
    frame = penguins(rows, seed, target=False)
    frame.loc[7, "body_mass_g"] = None
    frame.insert(0, "id", [f"bird-{i}" for i in range(rows)])
    return frame


def test_the_same_file_whether_read_in_one_batch_or_many(engine_run, coupler_cli, tmp_path):
    engine, run_dir = engine_run
    new_rows(50, seed=1).to_csv(tmp_path / "in.csv", index=False)
    assert coupler_cli("predict", str(run_dir), "in.csv", "one.csv").rc == 0
    result = coupler_cli("predict", "--batch-rows", "7", str(run_dir), "in.csv", "many.csv")
    assert result.rc == 0, result.err
    assert "wrote 50 predictions to many.csv" in result.out
    if engine != "torch":  # a torch matrix product may round differently for 7 rows and for 50
        assert (tmp_path / "one.csv").read_bytes() == (tmp_path / "many.csv").read_bytes()
    # what predict wrote before it read in batches: the input's columns, then the whole file's predictions
    finished = FinishedRun(run_dir, get_plugin_manager())
    frame = pd.read_csv(tmp_path / "in.csv")
    written = pd.read_csv(tmp_path / "many.csv")
    proba = [f"proba_{label}" for label in finished.classes]
    assert list(written.columns) == [*frame.columns, "prediction", *proba]
    pd.testing.assert_frame_equal(written[frame.columns], frame)
    assert written["prediction"].tolist() == list(finished.predict(frame))
    np.testing.assert_allclose(written[proba].to_numpy(), finished.predict_proba(frame).to_numpy(), rtol=1e-6)


def test_a_directory_of_parquet_files_is_predicted_into_parquet(run, coupler_cli, tmp_path):
    rows = new_rows(60, seed=2)
    (tmp_path / "parts").mkdir()
    for part in range(3):
        rows.iloc[part * 20:(part + 1) * 20].to_parquet(tmp_path / "parts" / f"part-{part}.parquet", index=False)
    rows.to_csv(tmp_path / "in.csv", index=False)
    assert coupler_cli("predict", str(run), "parts", "one.parquet").rc == 0
    assert coupler_cli("predict", "--batch-rows", "9", str(run), "parts", "many.parquet").rc == 0
    assert coupler_cli("predict", str(run), "in.csv", "from_csv.csv").rc == 0
    assert (tmp_path / "one.parquet").read_bytes() == (tmp_path / "many.parquet").read_bytes()
    written = pd.read_parquet(tmp_path / "many.parquet")
    pd.testing.assert_frame_equal(written, pd.read_csv(tmp_path / "from_csv.csv"))
    inside = coupler_cli("predict", str(run), "parts", "parts/out.parquet")
    refused(inside, "inside the input directory", "outside it")


def test_every_batch_is_checked_and_a_bad_value_is_named_by_its_row_in_the_file(run, coupler_cli, tmp_path):
    rows = new_rows(40, seed=3).astype({"body_mass_g": object})
    rows.loc[33, "body_mass_g"] = "heavy"
    rows.to_csv(tmp_path / "in.csv", index=False)
    refused(coupler_cli("predict", "--batch-rows", "16", str(run), "in.csv", "out.csv"),
            "column 'body_mass_g'", "'heavy' (data row 34)", "--impute")
    assert list(tmp_path.glob("*out.csv*")) == [], "no output and no temporary file"
    imputed = coupler_cli("predict", "--impute", "--batch-rows", "16", str(run), "in.csv", "out.csv")
    assert imputed.rc == 0 and "1 value(s) are not numbers (e.g. 'heavy')" in imputed.err
    assert pd.read_csv(tmp_path / "out.csv")["body_mass_g"].tolist()[33] == "heavy"  # the input, as it was
    rows.iloc[:0].to_csv(tmp_path / "header.csv", index=False)
    refused(coupler_cli("predict", str(run), "header.csv", "none.csv"), "has no rows")
    zero = coupler_cli("predict", "--batch-rows", "0", str(run), "in.csv", "none.csv")
    assert zero.rc == 2 and "argument --batch-rows: '0' is not a whole number of at least 1" in zero.err
    assert not (tmp_path / "none.csv").exists()


def test_the_model_is_given_no_more_rows_at_a_time_than_a_batch(run, tmp_path, monkeypatch):
    new_rows(40, seed=4).to_csv(tmp_path / "in.csv", index=False)
    finished = FinishedRun(run, get_plugin_manager())
    sizes, predict = [], finished.model.predict
    monkeypatch.setattr(finished.model, "predict", lambda X: sizes.append(len(X)) or predict(X))
    assert finished.predict_file(tmp_path / "in.csv", tmp_path / "out.csv", batch_rows=16) == 40
    assert sizes == [16, 16, 8]


def test_a_column_whose_values_change_kind_after_the_first_block_is_kept_as_text(run, tmp_path, monkeypatch):
    from coupler import batch_predict

    monkeypatch.setattr(batch_predict, "CSV_BLOCK_BYTES", 256)  # pyarrow infers a column's type from a few rows
    rows = new_rows(60, seed=5)
    rows["id"] = [str(i) for i in range(50)] + [f"x{i}" for i in range(50, 60)]  # numbers, then text
    rows.to_csv(tmp_path / "in.csv", index=False)
    finished = FinishedRun(run, get_plugin_manager())
    assert finished.predict_file(tmp_path / "in.csv", tmp_path / "out.csv", batch_rows=16) == 60
    written = pd.read_csv(tmp_path / "out.csv", dtype={"id": str})
    assert written["id"].tolist() == rows["id"].tolist()
    last = (tmp_path / "out.csv").read_text().splitlines()[-1].split(",")
    assert last[0] == '"x59"' and not last[2].startswith('"'), "that column alone is read as text"
    assert written["prediction"].tolist() == list(finished.predict(rows))


@pytest.mark.filterwarnings("ignore:Falling back to the 'python' engine")  # pandas' own, training's and predict's
def test_a_run_whose_separator_pyarrow_cannot_take_predicts_as_before(coupler_cli, tmp_path):
    """A separator of two characters (pandas reads it, pyarrow does not): the file is read whole, with pandas."""
    penguins(60).to_csv(tmp_path / "penguins.csv", index=False, sep="|")
    (tmp_path / "penguins.csv").write_text((tmp_path / "penguins.csv").read_text().replace("|", "::"))
    _, run_dir = train_run(tmp_path, "data=csv", f"data.path={tmp_path / 'penguins.csv'}", "data.target=species",
                           "data.sep=::")
    rows = new_rows(20, seed=6)
    (tmp_path / "in.csv").write_text(rows.to_csv(index=False, sep="|").replace("|", "::"))
    result = coupler_cli("predict", "--batch-rows", "8", str(run_dir), "in.csv", "out.parquet")
    assert result.rc == 0, result.err
    written = pd.read_parquet(tmp_path / "out.parquet")
    assert list(written.columns[:4]) == list(rows.columns)
    assert written["prediction"].tolist() == list(FinishedRun(run_dir, get_plugin_manager()).predict(rows))
