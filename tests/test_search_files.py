"""Search files (``coupler train -m search=NAME``) ship with the plugin of the model they search, as a third-party
model plugin ships its own: every first-party model has one, listed with its plugin, whose space passes the checks a
search makes before its first trial; and without coupler-optuna, ``search=NAME`` says what to install."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from coupler.config import check_overrides, compose, config_directories, group_options
from coupler.errors import CouplerError
from coupler.plugin_manager import FIRST_PARTY, PluginManager, get_plugin_manager

space = pytest.importorskip("coupler_optuna.space")

#: first-party models with no search file of their own, and why
NO_SEARCH_FILE = {"sklearn": "model.estimator names any scikit-learn estimator, whose parameters are not known ahead"}


def first_party_models(manager) -> dict[str, str]:
    """model name -> the plugin that registers it, for the models of Coupler's own plugin distributions."""
    return {c.name: c.plugin for c in manager.registry.components("model")
            if manager.plugins[c.plugin].distribution in FIRST_PARTY and c.name not in NO_SEARCH_FILE}


def search_files(manager) -> dict[str, tuple[str, Path]]:
    """search option -> (plugin, file), the first file on the search path as Hydra reads it."""
    found: dict[str, tuple[str, Path]] = {}
    for plugin, directory in config_directories(manager):
        for path in sorted((Path(directory) / "search").glob("*.yaml")):
            found.setdefault(path.stem, (plugin, path))
    return found


def test_every_first_party_model_ships_its_search_file_listed_with_its_plugin(coupler_cli):
    manager = get_plugin_manager()
    models = first_party_models(manager)
    assert {"logistic_regression", "xgboost", "mlp", "cnn", "lstm", "transformer"} <= set(models)
    options = group_options(manager, "search")  # what coupler train --help lists: option (plugin)
    assert {name: options.get(name) for name in models} == models
    listed = {p["name"]: p for p in json.loads(coupler_cli("plugins", "--json").out)}
    for name, plugin in models.items():
        assert name in listed[plugin]["configs"].get("search", []), (name, plugin, listed[plugin]["configs"])
    assert "search files: hist_gradient_boosting, knn" in coupler_cli("plugins").out
    assert options["model_choice"] == "optuna"  # it spans the sklearn and xgboost plugins: the search group's own


def test_every_search_file_holds_search_settings_and_a_space_the_search_accepts_before_any_trial():
    from coupler.schema import check_node
    from coupler_optuna.plugin import SearchSettings

    manager = get_plugin_manager()
    files = search_files(manager)
    assert len(files) >= 15
    for name, (plugin, path) in files.items():
        node = yaml.safe_load(path.read_text())
        assert node.pop("defaults")[:2] == ["schema", {"override /hydra/sweeper@_global_.hydra.sweeper":
                                                       "coupler_optuna"}], path
        check_node(node, SearchSettings, "search", what=f"{path}")
        parsed = space.parse(node["space"])
        for overrides in parsed.extremes():  # what the search checks before its first trial (search._check_space)
            check_overrides([*parsed.fixed, *overrides], manager)


def test_a_search_file_composes_the_search_settings_with_the_files_space():
    config = compose(["search=xgboost"], get_plugin_manager())
    assert config["search"]["n_trials"] == 30 and config["search"]["sampler"] == "tpe"
    assert config["search"]["space"]["model.params.eta"] == {"low": 0.01, "high": 0.3, "log": True}


def test_without_coupler_optuna_a_search_says_to_install_it_and_a_plain_config_is_unaffected():
    manager = PluginManager(disabled={"optuna"})  # as COUPLER_DISABLE_PLUGINS=optuna
    manager.load_builtins()
    manager.load_entry_points()
    assert "xgboost" in manager.plugins["xgboost"].config_files()["search"]  # its files stay on the search path
    with pytest.raises(CouplerError, match=r"^search=xgboost: the search group comes with the plugin coupler-optuna, "
                                           r"which is disabled \(COUPLER_DISABLE_PLUGINS names optuna\)"):
        check_overrides(["search=xgboost"], manager)
    with pytest.raises(CouplerError, match=r"^\+search=xgboost: the search group comes with the plugin coupler-optuna"):
        check_overrides(["+search=xgboost"], manager)  # not composed: Hydra would find the file, not the sweeper
    config = compose(["model=xgboost"], manager)
    assert "search" not in config and config["model"]["name"] == "xgboost"
    del manager.plugins["optuna"]  # as if it were not installed at all
    with pytest.raises(CouplerError, match=r"which is not installed: pip install coupler-optuna\.$"):
        check_overrides(["search=xgboost", "search.n_trials=5"], manager)
