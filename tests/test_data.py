"""Loading, task inference, splitting and preprocessing: seeded, stratified, and fitted on train only."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from coupler.builtin.datasets import BUNDLED, load_csv, load_parquet
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
