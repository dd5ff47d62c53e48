"""``train.class_weight``: one setting, per-row weights computed by the core (``Split.weight``), honoured by every
engine through the fit contract. On an imbalanced set (5% minority), each engine finds more of the minority class
with ``balanced`` than without."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from coupler.class_weight import row_weights
from coupler.errors import ConfigError
from coupler.testing import train_run


@pytest.fixture(scope="module")
def imbalanced(tmp_path_factory) -> Path:
    """600 rows, 30 of the minority class, written to a CSV."""
    from sklearn.datasets import make_classification

    X, y = make_classification(n_samples=600, n_features=6, n_informative=3, n_redundant=0, weights=[0.95, 0.05],
                               flip_y=0, class_sep=1.5, random_state=0)
    frame = pd.DataFrame(X, columns=[f"x{i}" for i in range(6)]).assign(label=y)
    path = tmp_path_factory.mktemp("imbalanced") / "imbalanced.csv"
    frame.to_csv(path, index=False)
    return path


def minority_recall(directory: Path, data: Path, *overrides: str, manager=None) -> float:
    """The share of the test split's minority rows (label 1) that the run predicts as such."""
    _, run = train_run(directory, "data=csv", f"data.path={data}", "data.target=label", "split.val=0",
                       "split.test=0.5", *overrides, name=str(len(list(directory.iterdir()))), manager=manager)
    predictions = pd.read_csv(run / "predictions_test.csv")
    minority = predictions[predictions.target == 1]
    assert len(minority) == 15
    return float((minority.prediction == 1).mean())


@pytest.mark.parametrize("model", [
    ["model=logistic_regression"],
    ["model=xgboost", "model.num_boost_round=20", "model.params.max_depth=3"],
], ids=["sklearn", "xgboost"])
def test_balanced_class_weight_finds_more_of_the_minority_class(tmp_path, imbalanced, model):
    unweighted = minority_recall(tmp_path, imbalanced, *model)
    balanced = minority_recall(tmp_path, imbalanced, *model, "train.class_weight=balanced")
    print(f"{model[0]}: minority recall {unweighted:.2f} -> {balanced:.2f}")
    assert balanced > unweighted + 0.2


def test_balanced_class_weight_reaches_the_torch_engine(tmp_path, imbalanced):
    torch = pytest.importorskip("torch")
    from coupler import hookimpl
    from coupler.plugin_manager import PluginManager
    from coupler_torch.engine import TorchModel

    class Linear(TorchModel):
        def build_network(self, n_inputs, n_outputs):
            return torch.nn.Linear(n_inputs, n_outputs)

    class Plugin:
        @hookimpl
        def register_models(self, register):
            register("linear", Linear)

    manager = PluginManager()
    manager.load_builtins()
    manager.load_entry_points()
    manager.load_object("linear", Plugin())
    settings = ("model=linear", "model.batch_size=16", "trainer.max_epochs=10", "trainer.resumable=false")
    unweighted = minority_recall(tmp_path, imbalanced, *settings, manager=manager)
    balanced = minority_recall(tmp_path, imbalanced, *settings, "train.class_weight=balanced", manager=manager)
    print(f"torch: minority recall {unweighted:.2f} -> {balanced:.2f}")
    assert balanced > unweighted + 0.2


def test_balanced_weights_follow_scikit_learns_compute_sample_weight():
    from sklearn.utils.class_weight import compute_sample_weight

    y = np.array([0, 0, 0, 1, 2, 2])
    assert np.allclose(row_weights("balanced", y, ["a", "b", "c"]), compute_sample_weight("balanced", y))
    # a mapping is in the data's labels; an unnamed class weighs 1
    assert row_weights({"c": 4, "a": 0.5}, y, ["a", "b", "c"]).tolist() == [0.5, 0.5, 0.5, 1, 4, 4]


def test_a_mapping_naming_no_class_of_the_data_is_refused_naming_them():
    with pytest.raises(ConfigError, match=r"train.class_weight.d=2 is not allowed: weights for the data's classes: a, b"):
        row_weights({"d": 2}, np.array([0, 1]), ["a", "b"])


def test_a_torch_model_whose_batches_carry_no_weights_is_refused_at_its_first_step(tmp_path):
    torch = pytest.importorskip("torch")
    from coupler import hookimpl
    from coupler.plugin_manager import PluginManager
    from coupler_torch.engine import TorchModel

    class OwnBatches(TorchModel):
        def build_network(self, n_inputs, n_outputs):
            return torch.nn.Linear(n_inputs, n_outputs)

        def training_batches(self, split, epoch):  # a plugin's own batches: (x, y), no weights
            return OneBatch(torch.as_tensor(split.X, dtype=torch.float32), torch.as_tensor(split.y))

    class OneBatch:
        def __init__(self, x, y):
            self.x, self.y = x, y

        def __len__(self):
            return 1

        def __iter__(self):
            yield self.x, self.y

    class Plugin:
        @hookimpl
        def register_models(self, register):
            register("own_batches", OwnBatches)

    manager = PluginManager()
    manager.load_builtins()
    manager.load_entry_points()
    manager.load_object("own_batches", Plugin())
    with pytest.raises(ConfigError, match="train.class_weight='balanced' is not allowed: null for model OwnBatches: "
                                          "its training batches carry no row weights"):
        train_run(tmp_path, "data=iris", "model=own_batches", "trainer.max_epochs=1", "trainer.resumable=false",
                  "train.class_weight=balanced", manager=manager)
