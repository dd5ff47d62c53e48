"""The bad-input corpus, issue #13 point 5: bad data is named, not crashed on.

Each case drives the real CLI with one bad file (or one ill-shaped data setting) and asserts one
``coupler: error:`` line naming the problem and the fix, exit status 2, no traceback, the input files
unchanged, and no run directory or prediction file left behind.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tests.corpus import refused, untouched

ROWS = 40
IRIS = ["sepal length (cm)", "sepal width (cm)", "petal length (cm)", "petal width (cm)"]


def table(rows: int = ROWS, **columns) -> pd.DataFrame:
    """A small seeded table: two numeric features and a binary label, plus the given columns."""
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"x1": rng.normal(size=rows).round(3), "x2": rng.normal(size=rows).round(3),
                          "label": [i % 2 for i in range(rows)]})
    for name, values in columns.items():
        frame[name] = values
    return frame


def csv_with(tmp_path, frame: pd.DataFrame, cells: dict | None = None, name: str = "data.csv"):
    """Write ``frame`` as CSV with ``cells`` ({(row, column): text}) written as they are."""
    frame = frame.astype(object)
    for (row, column), text in (cells or {}).items():
        frame.loc[row, column] = text
    path = tmp_path / name
    frame.to_csv(path, index=False)
    return path


def train_refused(coupler_cli, tmp_path, path, *overrides, fragments, target="label"):
    """``coupler train data=csv data.path=PATH`` is refused with ``fragments``; nothing is changed or left."""
    with untouched(path):
        result = coupler_cli("train", "data=csv", f"data.path={path.name}", f"data.target={target}", *overrides,
                             "hydra.run.dir=run")
    line = refused(result, *fragments)
    assert not (tmp_path / "run").exists(), "a refused run left its directory behind"
    return line


# --- training data -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("model", ["logistic_regression", "xgboost", "lstm"])
def test_infinity_in_a_feature_is_named_for_every_engine(coupler_cli, tmp_path, model):
    path = csv_with(tmp_path, table(), {(4, "x1"): "inf"})
    shorter = ["trainer.max_epochs=1"] if model == "lstm" else []  # trainer.* is the torch engine's
    train_refused(coupler_cli, tmp_path, path, f"model={model}", *shorter,
                  fragments=["column 'x1'", "infinity", "data row 5", "not a missing value", "replace"])


def test_negative_infinity_in_a_feature(coupler_cli, tmp_path):
    path = csv_with(tmp_path, table(), {(7, "x2"): "-inf", (9, "x2"): "-inf"})
    train_refused(coupler_cli, tmp_path, path,
                  fragments=["column 'x2'", "infinity", "2 rows", "data rows 8, 10", "replace"])


def test_infinity_in_the_target(coupler_cli, tmp_path):
    frame = table()
    frame["label"] = np.linspace(0, 1, ROWS).round(3)
    path = csv_with(tmp_path, frame, {(2, "label"): "inf"})
    train_refused(coupler_cli, tmp_path, path, "model=ridge",
                  fragments=["target 'label'", "infinity", "data row 3", "replace"])


def test_stray_text_in_a_numeric_column_names_the_column_the_values_and_their_rows(coupler_cli, tmp_path):
    path = csv_with(tmp_path, table(), {(3, "x1"): "#REF!", (11, "x1"): "n/a?", (12, "x1"): "#REF!"})
    train_refused(coupler_cli, tmp_path, path,
                  fragments=["column 'x1'", "'#REF!' (data row 4)", "'n/a?' (data row 12)", "data.na_values=",
                             "data.categorical"])


def test_a_categorical_column_with_a_value_per_row_is_not_one_hot_encoded(coupler_cli, tmp_path):
    path = csv_with(tmp_path, table(120, customer=[f"c{i:04d}" for i in range(120)]))
    train_refused(coupler_cli, tmp_path, path,
                  fragments=["column 'customer'", "distinct values", "one-hot", "data.features=",
                             "preprocess.encode=ordinal"])


def test_duplicate_column_names_are_refused_from_the_header(coupler_cli, tmp_path):
    path = tmp_path / "data.csv"
    csv_with(tmp_path, table(x3=0.5))
    path.write_text(path.read_text().replace("x3", "x1", 1))  # header: x1,x2,label,x1
    train_refused(coupler_cli, tmp_path, path, fragments=["'x1' twice (columns 1 and 4)", "own name"])


def test_duplicate_column_names_in_a_parquet_file(coupler_cli, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    frame = table()
    path = tmp_path / "data.parquet"
    pq.write_table(pa.Table.from_arrays([pa.array(frame[c]) for c in ("x1", "x2", "label")], names=["x1", "x1", "label"]),
                   path)
    with untouched(path):
        result = coupler_cli("train", "data=parquet", f"data.path={path.name}", "data.target=label", "hydra.run.dir=run")
    refused(result, "'x1' twice (columns 1 and 2)", "own name")
    assert not (tmp_path / "run").exists()


def test_a_target_mixing_numbers_and_text_names_the_values(coupler_cli, tmp_path):
    path = csv_with(tmp_path, table(), {(5, "label"): "yes"})
    train_refused(coupler_cli, tmp_path, path,
                  fragments=["target 'label'", "numbers (0, 1)", "text ('yes')", "data.na_values="])


def test_a_single_valued_target_shows_the_value_as_written(coupler_cli, tmp_path):
    path = csv_with(tmp_path, table(label=1))
    line = train_refused(coupler_cli, tmp_path, path, fragments=["single value (1)", "nothing to learn"])
    assert "np." not in line


def test_a_parquet_file_named_csv(coupler_cli, tmp_path):
    path = tmp_path / "data.csv"
    table().to_parquet(path)
    train_refused(coupler_cli, tmp_path, path, fragments=["Parquet file", "PAR1", "data=parquet"])


def test_a_csv_file_given_to_the_parquet_loader(coupler_cli, tmp_path):
    path = csv_with(tmp_path, table(), name="data.parquet")
    with untouched(path):
        result = coupler_cli("train", "data=parquet", f"data.path={path.name}", "data.target=label",
                             "hydra.run.dir=run")
    refused(result, "not a Parquet file", "PAR1", "data=csv")
    assert not (tmp_path / "run").exists()


def test_a_non_utf8_byte_is_reported_at_its_offset_in_the_file(coupler_cli, tmp_path):
    path = tmp_path / "data.csv"
    text = "x1,x2,label\n" + "".join(f"{i}.5,{i % 7},{'ab'[i % 2]}\n" for i in range(40000))
    offset = len(text.encode()) - 6  # well past the first chunk a CSV parser decodes at once
    data = bytearray(text.encode())
    data[offset] = 0xE9  # latin-1 'é'
    path.write_bytes(bytes(data))
    line_number = text.encode()[:offset].count(b"\n") + 1
    train_refused(coupler_cli, tmp_path, path,
                  fragments=["not utf-8 text", f"at byte offset {offset}", f"line {line_number}", "data.encoding=latin-1"])


@pytest.mark.parametrize("override, fragment", [
    ("data.path={a:1}", "data.path={'a': 1} is not allowed"),
    ("data.path=[a,b]", "data.path=['a', 'b'] is not allowed"),
    ("data.target=[x1,x2]", "data.target=['x1', 'x2'] is not allowed"),
    ("data.target={a:1}", "data.target={'a': 1} is not allowed"),
    ("data.sep={a:1}", "data.sep={'a': 1} is not allowed"),
    ("data.encoding=[utf-8]", "data.encoding=['utf-8'] is not allowed"),
    ("data.na_values=[{a:1}]", "data.na_values=[{'a': 1}] is not allowed"),
    ("data.na_values={a:1}", "data.na_values={'a': 1} is not allowed"),
    ("data.features=[x1,{a:1}]", "data.features=['x1', {'a': 1}] is not allowed"),
], ids=["path_mapping", "path_list", "target_list", "target_mapping", "sep_mapping", "encoding_list",
        "na_values_nested", "na_values_mapping", "features_nested"])
def test_nested_values_where_a_data_setting_takes_one_value(coupler_cli, tmp_path, override, fragment):
    path = csv_with(tmp_path, table())
    key = override.split("=", 1)[0]
    overrides = [o for o in (f"data.path={path.name}", "data.target=label") if not o.startswith(key + "=")]
    with untouched(path):
        result = coupler_cli("train", "data=csv", *overrides, override, "hydra.run.dir=run")
    refused(result, fragment)
    assert not (tmp_path / "run").exists()


# --- predict input -----------------------------------------------------------------------------------------

def iris_input(tmp_path, cells: dict | None = None, name: str = "input.csv"):
    frame = pd.DataFrame([[5.1, 3.5, 1.4, 0.2], [6.2, 2.9, 4.3, 1.3], [7.7, 3.0, 6.1, 2.3]], columns=IRIS)
    return csv_with(tmp_path, frame, cells, name)


def predict_refused(coupler_cli, tmp_path, iris_run, path, *fragments, flags=()):
    output = tmp_path / "out.csv"
    with untouched(path, iris_run):
        result = coupler_cli("predict", *flags, str(iris_run), str(path), str(output))
    line = refused(result, *fragments)
    assert not output.exists(), "a refused prediction wrote its output"
    return line


def test_predict_input_with_text_in_a_numeric_column_is_an_error_by_default(iris_run, coupler_cli, tmp_path):
    path = iris_input(tmp_path, {(1, IRIS[2]): "abc"})
    predict_refused(coupler_cli, tmp_path, iris_run, path,
                    f"column {IRIS[2]!r}", "'abc' (data row 2)", "not a number", "--impute")


def test_predict_impute_fills_text_in_a_numeric_column_as_training_did(iris_run, coupler_cli, tmp_path):
    path = iris_input(tmp_path, {(1, IRIS[2]): "abc"})
    result = coupler_cli("predict", "--impute", str(iris_run), str(path), str(tmp_path / "out.csv"))
    assert result.rc == 0, result.err
    assert "treated as missing" in result.err
    assert len(pd.read_csv(tmp_path / "out.csv")) == 3


def test_predict_input_with_infinity(iris_run, coupler_cli, tmp_path):
    path = iris_input(tmp_path, {(2, IRIS[0]): "inf"})
    predict_refused(coupler_cli, tmp_path, iris_run, path, f"column {IRIS[0]!r}", "infinity", "data row 3",
                    "replace")


def test_predict_input_with_infinity_is_refused_even_with_impute(iris_run, coupler_cli, tmp_path):
    path = iris_input(tmp_path, {(0, IRIS[1]): "-inf"})
    predict_refused(coupler_cli, tmp_path, iris_run, path, f"column {IRIS[1]!r}", "infinity",
                    flags=("--impute",))


def test_predict_input_parquet_named_csv(iris_run, coupler_cli, tmp_path):
    path = tmp_path / "input.csv"
    pd.read_csv(iris_input(tmp_path, name="plain.csv")).to_parquet(path)
    predict_refused(coupler_cli, tmp_path, iris_run, path, "Parquet file", "PAR1", "input.parquet")


def test_predict_input_csv_named_parquet(iris_run, coupler_cli, tmp_path):
    path = iris_input(tmp_path, name="input.parquet")
    predict_refused(coupler_cli, tmp_path, iris_run, path, "not a Parquet file", "PAR1", ".csv")


def test_predict_input_not_utf8(iris_run, coupler_cli, tmp_path):
    path = iris_input(tmp_path)
    data = path.read_bytes()
    offset = len(data) - 3
    path.write_bytes(data[:offset] + b"\xe9" + data[offset + 1:])
    predict_refused(coupler_cli, tmp_path, iris_run, path, "not utf-8 text", f"at byte offset {offset}", "line 4")


def test_predict_input_with_duplicate_column_names(iris_run, coupler_cli, tmp_path):
    path = iris_input(tmp_path)
    text = path.read_text().splitlines()
    path.write_text("\n".join([text[0] + f",{IRIS[0]}"] + [row + ",9.9" for row in text[1:]]) + "\n")
    predict_refused(coupler_cli, tmp_path, iris_run, path, f"{IRIS[0]!r}", "twice")


def test_predict_help_documents_impute(coupler_cli):
    result = coupler_cli("predict", "--help")
    assert result.rc == 0 and "--impute" in result.out and "as training imputed missing values" in " ".join(result.out.split())
