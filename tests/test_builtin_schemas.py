"""The built-in components declare their parameters as schemas (``coupler.schema``): a bad value is one line naming
the key, the value and what is allowed, before any data is read; a key a component does not take is refused."""

from __future__ import annotations

import pytest

from coupler.config import compose
from coupler.errors import ConfigError
from coupler.plugin_manager import PluginManager


@pytest.fixture(scope="module")
def manager() -> PluginManager:
    pm = PluginManager()
    pm.load_builtins()
    pm.load_entry_points()
    return pm


@pytest.mark.parametrize("overrides, message", [
    (["callbacks.early_stopping.patience=0"],
     "callbacks.early_stopping.patience=0 is not allowed: a whole number >= 1 (epochs without improvement before "
     "stopping)"),
    (["callbacks.early_stopping.mode=up"],
     "callbacks.early_stopping.mode='up' is not allowed: one of min, max (whether a lower or a higher value is "
     "better)"),
    (["callbacks.early_stopping.min_delta=-0.1"],
     "callbacks.early_stopping.min_delta=-0.1 is not allowed: a number >= 0 (the least change that counts as an "
     "improvement)"),
], ids=["patience", "mode", "min_delta"])
def test_a_bad_early_stopping_value_is_refused_before_hydra_composes(manager, overrides, message):
    with pytest.raises(ConfigError) as error:
        compose(["model=xgboost", "callbacks=[early_stopping]", *overrides], manager)
    assert str(error.value) == message


def test_early_stopping_defaults_come_from_its_schema(manager):
    config = compose(["callbacks=[early_stopping]", "callbacks.early_stopping.patience=3"], manager)
    assert config["callbacks"]["early_stopping"] == {"name": "early_stopping", "monitor": "val_loss", "patience": 3,
                                                     "mode": "min", "min_delta": 0.0}


def test_a_loader_value_its_schema_refuses_is_named_before_the_file_is_looked_at(manager, tmp_path):
    csv = manager.registry.get("data", "csv")
    absent = str(tmp_path / "absent.csv")  # no file: a refusal naming it would mean the loader ran first
    with pytest.raises(ConfigError) as error:
        csv.build("data", {"name": "csv", "path": absent, "target": ["a", "b"]})
    assert str(error.value) == "data.target=['a', 'b'] is not allowed: one column name (data.target=COLUMN)"
    with pytest.raises(ConfigError) as error:
        csv.build("data", {"name": "csv", "path": absent, "target": "y", "sep": 1})
    assert str(error.value) == "data.sep=1 is not allowed: one value, as text"
    with pytest.raises(ConfigError) as error:
        manager.registry.get("data", "parquet").build("data", {"name": "parquet", "path": absent, "target": "y",
                                                               "sep": ";"})
    assert str(error.value) == ("data.sep=';' is not allowed: data 'parquet' has no parameter 'sep'. Its parameters "
                                "are: path, target, features, categorical, key")


def test_the_csv_node_lists_its_keys_with_todays_defaults_and_requires_path_and_target(manager):
    with pytest.raises(ConfigError, match=r"^data.path='\?\?\?' is not allowed: a value is required"):
        compose(["data=csv"], manager)
    config = compose(["data=csv", "data.path=d.csv", "data.target=y"], manager)
    assert config["data"] == {"name": "csv", "path": "d.csv", "target": "y", "features": None, "categorical": None,
                              "na_values": ["?"], "sep": ",", "encoding": "utf-8"}
