"""Loading, task inference, splitting and preprocessing: seeded, stratified, and fitted on train only."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from coupler.builtin.datasets import BUNDLED
from coupler.dataset import infer_task
from coupler.errors import ConfigError, DataError
from coupler.plugin_manager import get_plugin_manager
from coupler.preprocessing import Preprocessor
from coupler.splitting import split_indices


@pytest.mark.parametrize("name, task", [("iris", "multiclass"), ("wine", "multiclass"), ("breast_cancer", "binary"),
                                        ("digits", "multiclass"), ("diabetes", "regression")])
def test_bundled_sets_load_with_their_task(name, task):
    dataset = get_plugin_manager().get("data", name).build("data", {"name": name})
    assert len(dataset.X) > 100 and infer_task(dataset.y) == task
    assert name in BUNDLED


def load(loader: str, path, **parameters):
    """``data=LOADER`` built as a run builds it: the parameters checked against its schema, completed with its
    defaults."""
    return get_plugin_manager().get("data", loader).build("data", {"path": str(path), **parameters})


def load_csv(path, **parameters):
    return load("csv", path, **parameters)


def load_parquet(path, **parameters):
    return load("parquet", path, **parameters)


def test_task_inference_and_override():
    assert infer_task(pd.Series([0.5, 1.2, 3.3])) == "regression"
    assert infer_task(pd.Series([1, 2, 3, 1])) == "multiclass"
    assert infer_task(pd.Series(["yes", "no"])) == "binary"
    assert infer_task(pd.Series(range(100))) == "regression"
    assert infer_task(pd.Series([1, 2, 3, 1]), "regression") == "regression"
    with pytest.raises(ConfigError, match="task='classification'"):
        infer_task(pd.Series([1, 2]), "classification")
    with pytest.raises(DataError, match="task=binary needs two classes"):
        infer_task(pd.Series([1, 2, 3]), "binary")


CSV = """age,city,income,smoker,label
34,paris,NA,yes,a
,lyon,52000,no,b
45,,61000,?,a
29,paris,48000,no,b
"""


def test_csv_reads_missing_markers_and_infers_categorical_columns(tmp_path):
    (tmp_path / "d.csv").write_text(CSV)
    dataset = load_csv(tmp_path / "d.csv", target="label", na_values=["?"])
    assert dataset.categorical == ["city", "smoker"]
    assert int(dataset.X.isna().sum().sum()) == 4  # NA, empty age, empty city, ?
    named = load_csv(tmp_path / "d.csv", target="label", features=["age", "city"], categorical=["age"])
    assert list(named.X.columns) == ["age", "city"] and named.categorical == ["age", "city"]


def test_parquet_loads_the_same_table(tmp_path):
    frame = pd.read_csv(pd.io.common.StringIO(CSV))
    frame.to_parquet(tmp_path / "d.parquet")
    dataset = load_parquet(tmp_path / "d.parquet", target="label")
    assert dataset.categorical == ["city", "smoker"] and len(dataset.X) == 4


def test_rows_with_a_missing_target_are_dropped(tmp_path):
    (tmp_path / "d.csv").write_text("x,y\n1,a\n2,\n3,b\n")
    assert len(load_csv(tmp_path / "d.csv", target="y").X) == 2


def test_split_is_seeded_70_20_10_and_stratified():
    y = np.array([0] * 80 + [1] * 20)
    first = split_indices(y, classification=True, val=0.2, test=0.1, stratify="auto", seed=3)
    again = split_indices(y, classification=True, val=0.2, test=0.1, stratify="auto", seed=3)
    other = split_indices(y, classification=True, val=0.2, test=0.1, stratify="auto", seed=4)
    assert (len(first.train), len(first.val), len(first.test)) == (70, 20, 10)
    assert all((a == b).all() for a, b in zip(vars(first).values(), vars(again).values()))
    assert not (first.test == other.test).all()
    assert y[first.val].mean() == pytest.approx(0.2) and y[first.test].mean() == pytest.approx(0.2)
    assert not set(first.train) & set(first.val) | set(first.train) & set(first.test) | set(first.val) & set(first.test)


def test_split_fractions_are_checked():
    with pytest.raises(ConfigError, match="split.val \\+ split.test"):
        split_indices(np.zeros(10), classification=False, val=0.6, test=0.5, stratify="auto", seed=0)
    with pytest.raises(ConfigError, match="split.stratify"):
        split_indices(np.zeros(10), classification=False, val=0.2, test=0.1, stratify=True, seed=0)


def test_preprocessing_is_fitted_on_the_training_rows_only():
    train = pd.DataFrame({"x": [1.0, 2.0, 3.0, np.nan], "c": ["a", "b", "a", None]})
    test = pd.DataFrame({"x": [100.0, np.nan], "c": ["z", None]})
    prep = Preprocessor().fit(train, ["c"])
    assert prep.numeric["x"]["fill"] == 2.0  # the training median, whatever the test rows hold
    out = prep.transform(test)
    mean, std = np.mean([1, 2, 3, 2]), np.std([1, 2, 3, 2])
    assert out[0, 0] == pytest.approx((100 - mean) / std)
    assert out[1, 0] == pytest.approx((2 - mean) / std)
    assert out[0, 1:].tolist() == [0, 0], "an unseen category encodes as all zeros"
    assert out[1, 1:].tolist() == [1, 0], "a missing category takes the training mode"
    assert prep.feature_names() == ["x", "c=a", "c=b"]


def test_preprocessing_matches_scikit_learn_and_survives_its_json_state():
    from sklearn.preprocessing import MinMaxScaler, StandardScaler

    X = pd.DataFrame(np.random.default_rng(0).normal(size=(50, 3)), columns=list("abc"))
    for scale, reference in (("standard", StandardScaler()), ("minmax", MinMaxScaler())):
        prep = Preprocessor(scale=scale).fit(X, [])
        restored = Preprocessor.from_state(prep.state())
        assert np.allclose(restored.transform(X), reference.fit_transform(X))


def test_frame_format_keeps_categories_and_missing_values_for_native_models():
    train = pd.DataFrame({"x": [1.0, np.nan], "c": ["a", "b"]})
    frame = Preprocessor().fit(train, ["c"]).transform(pd.DataFrame({"x": [np.nan], "c": ["z"]}), "frame")
    assert frame["c"].dtype == "category" and list(frame["c"].cat.categories) == ["a", "b"]
    assert frame.isna().all().all()


def test_the_fingerprint_of_a_files_data_set_follows_the_files_not_only_their_paths(tmp_path):
    from coupler.dataset import Dataset

    files = [tmp_path / f"{i}.png" for i in range(3)]
    for file in files:
        file.write_bytes(b"pixels")
    dataset = Dataset(pd.DataFrame({"path": [str(f) for f in files]}), pd.Series([0, 1, 0]), name="images", files=True)
    original = dataset.fingerprint()
    assert dataset.fingerprint() == original
    files[1].write_bytes(b"other pixels")  # an image rewritten in place, under the same path
    rewritten = dataset.fingerprint()
    assert rewritten != original
    stat = files[2].stat()
    import os

    os.utime(files[2], ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))  # same size, touched later
    assert dataset.fingerprint() != rewritten
    files[0].unlink()
    assert dataset.fingerprint() not in (original, rewritten)  # a missing file is a change, not a crash


# --- bad data, named (issue #13 point 5; the CLI cases are in test_bad_input_data.py) ------------------------

def test_values_are_shown_as_the_user_wrote_them():
    from coupler.errors import plain, shown

    assert [shown(v) for v in (np.int64(0), np.float64(2.5), np.float64(np.inf), "yes", None, np.bool_(True))] == \
        ["0", "2.5", "inf", "'yes'", "null", "true"]
    assert shown([np.int64(1), {"a": np.int32(2)}]) == "[1, {'a': 2}]"
    assert type(plain(np.int64(3))) is int and plain("text") == "text"


def test_rows_are_counted_from_one_below_the_header_and_keep_the_files_numbers():
    from coupler.dataset import data_rows

    assert data_rows([4]) == "data row 5"
    assert data_rows(pd.Index([2, 9])) == "data rows 3, 10"  # a row dropped before them keeps its number
    assert data_rows(["a", "b"], [0, 1]) == "data rows 1, 2"  # an index of labels: counted by position
    assert data_rows(range(7)) == "data rows 1, 2, 3, 4, 5, ..."


@pytest.mark.parametrize("chunk", [1, 2, 3, 7, 1 << 20])
def test_an_undecodable_byte_is_found_at_its_offset_in_the_file_whatever_the_chunks(tmp_path, chunk):
    from coupler.builtin.datasets import undecodable

    good = "é,ü\n" * 5 + "x,€\n"  # characters of two and three bytes, across any chunk boundary
    for bad, reason in ((b"\xff", "invalid start byte"), (b"\xe2\x82", "unexpected end of data")):
        data = good.encode() + bad
        (tmp_path / "f.csv").write_bytes(data)
        with pytest.raises(UnicodeDecodeError) as truth:
            data.decode("utf-8")
        found = undecodable(tmp_path / "f.csv", "utf-8", chunk=chunk)
        assert found[0] == truth.value.start == len(good.encode()) and found[1] == 7 and found[3] == reason
    (tmp_path / "ok.csv").write_bytes(good.encode())
    assert undecodable(tmp_path / "ok.csv", "utf-8", chunk=chunk) is None


def test_the_suggested_na_values_fix_trains(coupler_cli, tmp_path):
    import re

    rows = [f"{i / 10},{i % 3},{'ab'[i % 2]}" for i in range(60)]
    rows[7], rows[20] = "#REF!,1,a", "n/a?,2,b"
    (tmp_path / "d.csv").write_text("x1,x2,label\n" + "\n".join(rows) + "\n")
    result = coupler_cli("train", "data=csv", "data.path=d.csv", "data.target=label", "hydra.run.dir=run")
    assert result.rc == 2
    fix = re.search(r'"(data\.na_values=[^"]+)"', result.err).group(1)
    assert fix == "data.na_values=['?','#REF!','n/a?']"
    result = coupler_cli("train", "data=csv", "data.path=d.csv", "data.target=label", fix, "hydra.run.dir=run")
    assert result.rc == 0, result.err
    assert json.loads((tmp_path / "run" / "preprocessor.json").read_text())["numeric"]["x1"]


def test_text_columns_with_a_few_numbers_and_named_categories_stay_categories(tmp_path):
    sizes = ["S", "M", "L", "XL", "42"] * 8  # mostly text: categories, a number among them
    codes = [str(i % 4) for i in range(39)] + ["unknown"]  # numbers and text, named categorical by the user
    pd.DataFrame({"size": sizes, "code": codes, "label": ["a", "b"] * 20}).to_csv(tmp_path / "d.csv", index=False)
    dataset = load_csv(tmp_path / "d.csv", target="label", categorical=["code"])
    assert dataset.categorical == ["code", "size"]
    with pytest.raises(DataError, match="column 'code' holds numbers and 1 value that is not: 'unknown'"):
        load_csv(tmp_path / "d.csv", target="label")


def test_one_hot_encoding_is_capped_and_ordinal_or_frame_encodings_are_not():
    many = pd.DataFrame({"c": [f"v{i % 1001}" for i in range(5000)]})
    with pytest.raises(DataError, match="'c' has 1001 distinct values in 5000 training rows.*preprocess.encode=ordinal"):
        Preprocessor().fit(many, ["c"])
    few = pd.DataFrame({"c": [f"v{i % 60}" for i in range(200)]})  # 60 categories in 200 rows: fine
    assert len(Preprocessor().fit(few, ["c"]).feature_names()) == 60
    assert Preprocessor(encode="ordinal").fit(many, ["c"]).feature_names() == ["c"]
    assert Preprocessor().fit(many, ["c"], "frame").categorical["c"]["categories"][:2] == ["v0", "v1"]


def test_predict_input_checks_numeric_columns_only_and_impute_lets_text_through():
    prep = Preprocessor().fit(pd.DataFrame({"x": [1.0, 2.0, 3.0], "c": ["a", "b", "a"]}), ["c"])
    fine = pd.DataFrame({"x": [1.0, np.nan], "c": ["zzz", np.inf]})  # anything goes in a category column
    prep.check_input(fine)
    texty = pd.DataFrame({"x": ["1", "oops", "oops", "2"], "c": ["a"] * 4})
    with pytest.raises(DataError, match=r"'x' holds 2 values that are not a number: 'oops' \(data row 2\)"):
        prep.check_input(texty)
    prep.check_input(texty, impute=True)
    with pytest.raises(DataError, match=r"'x' holds infinity \(-inf\) in 1 row \(data row 2\)"):
        prep.check_input(pd.DataFrame({"x": ["1", "-inf"], "c": ["a", "a"]}), impute=True)


def test_every_data_set_refuses_infinity_and_duplicate_columns_whatever_loaded_it():
    from coupler.dataset import Dataset

    X = pd.DataFrame({"a": [1.0, np.inf, 3.0], "b": [1, 2, 3]})
    with pytest.raises(DataError, match=r"column 'a' holds infinity \(inf\) in 1 row \(data row 2\)"):
        Dataset(X, pd.Series([0, 1, 0]), name="plugin")
    with pytest.raises(DataError, match=r"the target 'y' holds infinity"):
        Dataset(X[["b"]], pd.Series([0.5, -np.inf, 1.0], name="y"), name="plugin")
    with pytest.raises(DataError, match=r"'a' twice \(columns 1 and 2\)"):
        Dataset(pd.DataFrame([[1, 2]], columns=["a", "a"]), pd.Series([0]), name="plugin")


def test_a_missing_value_in_a_batch_changes_no_other_rows_category_of_whole_numbers():
    """A categorical column of integers: one missing value makes pandas read the batch as floats (1 -> 1.0); the
    other rows still encode as their training category, and drift sees the training data as the training data."""
    import numpy as np
    import pandas as pd

    from coupler import drift
    from coupler.preprocessing import Preprocessor

    X = pd.DataFrame({"pclass": [1, 2, 3] * 10, "fare": np.arange(30.0)})
    for input_format in ("matrix", "frame"):
        fitted = Preprocessor().fit(X, ["pclass"], input_format)
        alone = fitted.transform(X.iloc[:1], input_format)
        batch = fitted.transform(pd.DataFrame({"pclass": [1, None], "fare": [0.0, 1.0]}), input_format)
        first = (lambda t: t.iloc[0].tolist()) if input_format == "frame" else (lambda t: list(t[0]))
        assert first(batch) == first(alone), input_format
    with_gap = X.astype({"pclass": float})
    with_gap.loc[0, "pclass"] = np.nan
    rows = {row["feature"]: row for row in drift.compare(with_gap, drift.profile(X, ["pclass"]))}
    assert rows["pclass"]["outside"] == 0 and rows["pclass"]["psi"] < 0.01, rows["pclass"]
