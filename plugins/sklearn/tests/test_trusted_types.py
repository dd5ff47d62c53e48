"""``TRUSTED_TYPES`` is exactly what the shipped estimators need: recomputed here from every named model at its
schema's defaults, on every task each supports, so that the list can neither miss a type (a shipped model whose runs
would not reload) nor keep one no estimator needs (a type trusted for nothing)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import skops.io

from coupler.errors import CouplerError
from coupler.schema import defaults
from coupler.testing import train_run
from coupler_sklearn.model import TRUSTED_TYPES, SklearnModel
from coupler_sklearn.plugin import ESTIMATORS, SCHEMAS, named_factory


def shipped_models() -> list[tuple[str, dict]]:
    """(name, params) of every named model the plugin registers, at its schema's defaults (``model=sklearn`` names
    no estimator)."""
    return [(name, defaults(SCHEMAS[name])["params"]) for name in ESTIMATORS]


def small_data(task: str):
    """A few rows of at most 15 features: nearest neighbours then take a k-d tree, as on iris or wine."""
    from sklearn.datasets import make_classification, make_regression

    if task == "regression":
        return make_regression(80, 6, random_state=0)
    return make_classification(80, 6, n_informative=4, n_redundant=0, n_classes=2 if task == "binary" else 3,
                               random_state=0)


def needed_types() -> dict[str, list[str]]:
    """Each type ``get_untrusted_types`` reports for a fitted shipped estimator (its own class aside, which a model
    trusts by itself), with the models and tasks that need it."""
    needed: dict[str, list[str]] = {}
    for name, params in shipped_models():
        classifier, regressor, _ = ESTIMATORS[name]
        for task in ("binary", "multiclass", "regression"):
            if (regressor if task == "regression" else classifier) is None:
                continue
            model = named_factory(name, classifier, regressor)(task=task, seed=0, params=params)
            model.estimator.fit(*small_data(task))
            own = model.trusted_types()[-1]
            for type_name in skops.io.get_untrusted_types(data=skops.io.dumps(model.estimator)):
                if type_name != own:
                    needed.setdefault(type_name, []).append(f"{name} ({task})")
    return needed


def test_trusted_types_are_exactly_what_the_shipped_estimators_need():
    needed = needed_types()
    missing = {t: needed[t] for t in sorted(set(needed) - set(TRUSTED_TYPES))}
    assert not missing, f"add these exact names to TRUSTED_TYPES (needed by): {missing}"
    unneeded = sorted(set(TRUSTED_TYPES) - set(needed))
    assert not unneeded, f"no shipped estimator needs {unneeded}: remove them from TRUSTED_TYPES"


def test_trusted_types_are_exact_names_never_a_package():
    assert all(name.count(".") >= 2 and not name.endswith(".") for name in TRUSTED_TYPES)
    assert not any(name.startswith(("builtins.", "numpy.", "scipy.", "collections.")) for name in TRUSTED_TYPES)


def test_a_fitted_state_that_would_not_reload_is_refused_when_the_run_saves_it(tmp_path):
    # MLPClassifier's adam solver keeps an AdamOptimizer object, a type no shipped model needs
    with pytest.raises(CouplerError, match=r"model.estimator=sklearn.neural_network.MLPClassifier: .*"
                                           r"_stochastic_optimizers.AdamOptimizer, which Coupler does not trust"):
        train_run(tmp_path, "data=iris", "model=sklearn", "model.estimator=sklearn.neural_network.MLPClassifier",
                  "+model.params.max_iter=5")
    assert not (tmp_path / "run" / "manifest.json").exists()


def test_the_same_estimator_without_that_type_trains_and_reloads(tmp_path):
    from coupler.finished_run import FinishedRun
    from coupler.plugin_manager import get_plugin_manager

    results, run_dir = train_run(tmp_path, "data=iris", "model=sklearn",
                                 "model.estimator=sklearn.neural_network.MLPClassifier", "+model.params.solver=lbfgs",
                                 "+model.params.max_iter=50")
    assert FinishedRun(run_dir, get_plugin_manager()).evaluate() == results


def test_a_model_trusts_its_own_estimator_class_and_the_fixed_list_only():
    model = SklearnModel("sklearn.ensemble.ExtraTreesClassifier", {}, task="binary", seed=0)
    assert model.trusted_types() == (*TRUSTED_TYPES, "sklearn.ensemble._forest.ExtraTreesClassifier")


# --- trusted types, untrusted content: indices scikit-learn follows without bounds checks --------------------------


def fitted(estimator):
    from sklearn.datasets import make_classification

    return estimator.fit(*make_classification(80, 6, n_informative=4, n_redundant=0, random_state=0))


def first_split(left) -> int:
    return next(i for i, child in enumerate(left) if child != -1)


def crafted_forest(field: str, value: int):
    from sklearn.ensemble import RandomForestClassifier

    forest = fitted(RandomForestClassifier(n_estimators=2, max_depth=3, random_state=0))
    tree = forest.estimators_[1].tree_
    state = tree.__getstate__()
    nodes = state["nodes"].copy()
    nodes[field][first_split(nodes["left_child"])] = value
    tree.__setstate__({**state, "nodes": nodes})
    return forest


def crafted_boosting(field: str, value: int):
    from sklearn.ensemble import HistGradientBoostingClassifier

    boosting = fitted(HistGradientBoostingClassifier(max_iter=3, random_state=0))
    nodes = boosting._predictors[2][0].nodes
    nodes[field][first_split([-1 if leaf else 0 for leaf in nodes["is_leaf"]])] = value
    return boosting


def crafted_neighbours(position: int, change):
    from sklearn.neighbors import KNeighborsClassifier

    neighbours = fitted(KNeighborsClassifier(algorithm="kd_tree", leaf_size=5))
    state = list(neighbours._tree.__getstate__())
    state[position] = change(state[position])
    neighbours._tree.__setstate__(tuple(state))
    return neighbours


@pytest.mark.parametrize("make, problem", [
    (lambda: crafted_forest("left_child", 10**8), "decision tree whose node"),
    (lambda: crafted_forest("right_child", 0), "decision tree whose node"),  # a cycle back to the root
    (lambda: crafted_forest("feature", 6), "decision tree whose node"),  # the 7th of 6 features
    (lambda: crafted_boosting("left", 10**8), "gradient boosting tree whose node"),
    (lambda: crafted_boosting("feature_idx", -1), "gradient boosting tree whose node"),
    (lambda: crafted_neighbours(1, lambda order: np.where(order == 0, 10**8, order)), "not a permutation"),
    (lambda: crafted_neighbours(6, lambda n_nodes: n_nodes + 2), "nodes on"),
], ids=["tree_child_outside", "tree_child_cycle", "tree_feature_outside", "boosting_child_outside",
        "boosting_feature_negative", "kd_tree_sample_index_outside", "kd_tree_node_count"])
def test_a_crafted_index_in_a_trusted_type_is_found_before_prediction(make, problem):
    from coupler_sklearn.model import check_fitted_indices

    found = check_fitted_indices(make())
    assert found is not None and problem in found, found


@pytest.mark.parametrize("name", [name for name, _ in shipped_models()])
def test_every_shipped_estimator_fitted_passes_the_index_checks(name):
    from coupler_sklearn.model import check_fitted_indices

    classifier, regressor, _ = ESTIMATORS[name]
    task = "multiclass" if classifier else "regression"
    model = named_factory(name, classifier, regressor)(task=task, seed=0, params=dict(shipped_models())[name])
    assert check_fitted_indices(model.estimator.fit(*small_data(task))) is None


def test_skops_imported_without_torch_trusts_the_same_estimators_and_a_run_saves_without_torch():
    """``skops_io`` keeps torch out of a scikit-learn run (2.9 s of its start): in a fresh process, a whole run (train,
    save, reload) never loads torch, and the estimator names skops trusts there are the ones it trusts here, where it
    was imported plainly."""
    import subprocess
    import sys

    from skops.io import _trusted_types

    script = """
import json, sys, tempfile
from coupler.testing import train_run
train_run(tempfile.mkdtemp(), "data=iris", "model=logistic_regression")
from skops.io import _trusted_types
print(json.dumps({"names": sorted(_trusted_types.SKLEARN_ESTIMATOR_TYPE_NAMES), "torch": "torch" in sys.modules,
                  "compat": "sklearn.externals.array_api_compat.torch" in sys.modules}))
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    run = json.loads(out.stdout.strip().splitlines()[-1])
    assert run["names"] == sorted(_trusted_types.SKLEARN_ESTIMATOR_TYPE_NAMES) and len(run["names"]) > 100
    assert not run["torch"] and not run["compat"], "the mark is removed after the import"
