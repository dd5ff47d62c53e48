"""``SklearnModel``: a scikit-learn estimator behind Coupler's ``Model`` contract, saved with skops.

A run directory may come from someone else, so loading trusts exact type names, never a package prefix: skops
rebuilds whatever type a ``.skops`` file names (``builtins.eval`` included) once it is passed in ``trusted=``.
Beyond what skops trusts by itself (scikit-learn's estimators, NumPy arrays, plain containers), a file may hold
only the types in ``TRUSTED_TYPES``, the few that the shipped estimators need, and the run's own estimator class;
anything else is refused with the type's name, and nothing of the file is built. A fitted state that would not
load under that rule is refused when the run saves it, so a run that trains is a run that reloads.

A trusted type is not yet safe content: trees and k-d trees hold raw node and sample indices that scikit-learn's
compiled code follows without bounds checks, so a crafted file would crash the process (a segfault) at the first
prediction. After loading, every such structure is checked (``check_fitted_indices``): children after their
parent and inside the tree, features inside the input, sample indices a permutation.
"""

from __future__ import annotations

import contextlib
import importlib
import json
from pathlib import Path

import numpy as np
from sklearn.base import BaseEstimator, is_classifier, is_regressor
from sklearn.utils._param_validation import InvalidParameterError
from sklearn.utils.validation import has_fit_parameter

from coupler.components import Split
from coupler.errors import CouplerError, did_you_mean
from coupler_sklearn.plugin import SklearnContract

#: Only estimators from these packages are built from a config: a config is data, not code to run.
ALLOWED_PREFIXES = ("sklearn.",)
#: The types, by exact name, that a .skops file may hold beyond what skops trusts by itself: what the named models
#: need at their schemas' defaults (``coupler_sklearn.plugin.SCHEMAS``) on every task, as ``skops.io.get_untrusted_types``
#: reports them (``plugins/sklearn/tests/test_trusted_types.py`` recomputes it). Never a package prefix: ``builtins.``
#: would admit ``eval``.
TRUSTED_TYPES = (
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",  # hist_gradient_boosting
    "sklearn.metrics._dist_metrics.EuclideanDistance64",  # knn
    "sklearn.neighbors._kd_tree.KDTree",  # knn
    "sklearn.tree._tree.Tree",  # random_forest
)
FILE = "model.skops"
#: a module that scikit-learn's estimator listing imports on its way (it walks every package), and that imports torch
TORCH_COMPAT = "sklearn.externals.array_api_compat.torch"
#: the task's class count, which the estimator does not know when a class was absent from training
CLASSES_FILE = "classes.json"


def skops_io():
    """``skops.io``, imported without importing torch where torch is not loaded yet.

    skops lists scikit-learn's estimators when it is imported (``sklearn.utils.all_estimators``), which imports every
    package of scikit-learn on its way, ``sklearn.externals.array_api_compat.torch`` included, and so torch: 2.9 s of
    the 3 s that ``skops.io`` would add to every scikit-learn run. No estimator lives there (the listing skips
    ``externals``), so while skops imports, that one module is marked unavailable (``None`` in ``sys.modules``, which
    the package walk passes over); the mark is removed at once, and the list skops trusts is the same
    (``plugins/sklearn/tests/test_trusted_types.py``)."""
    import sys

    if "skops.io" in sys.modules or "torch" in sys.modules or TORCH_COMPAT in sys.modules:
        import skops.io

        return skops.io
    sys.modules[TORCH_COMPAT] = None
    try:
        import skops.io
    finally:
        if sys.modules.get(TORCH_COMPAT, ...) is None:
            del sys.modules[TORCH_COMPAT]
    return skops.io


def import_estimator(path: str) -> type:
    module_name, _, class_name = path.rpartition(".")
    if not module_name.startswith(ALLOWED_PREFIXES) and module_name != "sklearn":
        raise CouplerError(f"model.estimator={path}: only scikit-learn estimators (sklearn.MODULE.CLASS) can be "
                           f"built from a config. Ship other estimators as a plugin of your own.")
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError):
        raise CouplerError(f"model.estimator={path}: no such class in scikit-learn.") from None
    if not (isinstance(cls, type) and issubclass(cls, BaseEstimator) and hasattr(cls, "fit")
            and hasattr(cls, "predict")):
        raise CouplerError(f"model.estimator={path} is not a scikit-learn estimator with fit and predict.")
    return cls


@contextlib.contextmanager
def _single_thread(estimator):
    """Predict on one thread: parallel prediction sums trees in any order, so the last digits of a
    random forest's output would differ between the run and ``coupler evaluate``."""
    n_jobs = estimator.get_params(deep=False).get("n_jobs")
    if n_jobs in (None, 1):
        yield
        return
    estimator.set_params(n_jobs=1)
    try:
        yield
    finally:
        estimator.set_params(n_jobs=n_jobs)


class SklearnModel(SklearnContract):
    """A scikit-learn estimator; it narrows what ``SklearnContract`` declares to what its estimator has:
    probabilities where it has ``predict_proba``, row weights where its ``fit`` takes ``sample_weight``."""

    input_format = "matrix"

    def __init__(self, estimator: str, params: dict, task: str, seed: int):
        cls = import_estimator(estimator)
        self.task, self.path = task, estimator
        try:
            probe = cls()
        except TypeError as exc:
            raise CouplerError(f"model.estimator={estimator} cannot be built from a config: {exc}. Wrap it in a "
                               f"plugin of your own.") from None
        if task == "regression" and not is_regressor(probe):
            raise CouplerError(f"model.estimator={estimator} is not a regressor, and the task is regression.")
        if task != "regression" and not is_classifier(probe):
            raise CouplerError(f"model.estimator={estimator} is not a classifier, and the task is {task}.")
        valid = sorted(probe.get_params(deep=False))
        for key in params:
            if key not in valid:
                raise CouplerError(
                    f"model.params.{key}: {cls.__name__} has no parameter {key!r}.{did_you_mean(key, valid)} "
                    f"Valid parameters: {', '.join(valid)}."
                )
        settings = dict(params)
        if "random_state" in valid and settings.get("random_state") is None:
            settings["random_state"] = seed
        self.estimator = probe.set_params(**settings)
        try:
            self.estimator._validate_params()
        except InvalidParameterError as exc:
            raise CouplerError(f"model.params: {exc}") from None
        except AttributeError:  # an estimator without scikit-learn's parameter validation
            pass
        if task == "regression" or not hasattr(self.estimator, "predict_proba"):
            self.proba_tasks = ()
        self.sample_weights = has_fit_parameter(self.estimator, "sample_weight")

    def fit(self, train: Split, val: Split | None, run) -> None:
        self.feature_names = run.feature_names
        self.n_classes = len(run.classes)
        try:
            self.estimator.fit(train.X, train.y, **({} if train.weight is None else {"sample_weight": train.weight}))
        except ValueError as exc:  # a parameter combination the estimator rejects
            raise CouplerError(f"{type(self.estimator).__name__} could not fit with model.params "
                               f"{self.estimator.get_params(deep=False)}: {exc}") from None

    @contextlib.contextmanager
    def _predicting(self):
        """Predict on one thread, and name a fitted state that does not fit the inputs (arrays of another shape in a
        changed model.skops) instead of showing numpy's traceback."""
        with _single_thread(self.estimator):
            try:
                yield
            except (ValueError, IndexError, TypeError) as exc:
                raise CouplerError(f"{type(self.estimator).__name__} cannot predict these rows: {type(exc).__name__}: "
                                   f"{_first_line(exc)}. Its fitted state does not fit the run's inputs; if the run "
                                   f"was reloaded, its model.skops was changed: retrain it (coupler train).") from None

    def predict(self, X) -> np.ndarray:
        with self._predicting():
            return self.estimator.predict(X)

    def predict_proba(self, X):
        if self.task not in self.proba_tasks:
            return None
        with self._predicting():
            proba = self.estimator.predict_proba(X)
            if proba.shape[1] == self.n_classes:
                return proba
            # a class absent from the training rows gets no column from scikit-learn: give it probability 0
            full = np.zeros((len(proba), self.n_classes))
            full[:, self.estimator.classes_.astype(int)] = proba
            return full

    @property
    def export_formats(self) -> tuple[str, ...]:
        """``("onnx",)`` when skl2onnx converts the estimator (read only when a run asks for an export: it imports
        skl2onnx)."""
        from coupler_sklearn.onnx import convertible

        return ("onnx",) if convertible(self.estimator) else ()

    def to_onnx(self, n_features: int):
        """The estimator's ONNX graph (``coupler_sklearn.onnx``; what it takes and gives: ``coupler.onnx_export``)."""
        from coupler_sklearn.onnx import model_graph

        return model_graph(self.estimator, self.task, n_features, getattr(self, "n_classes", 0))

    def feature_importances(self) -> dict[str, float] | None:
        """Impurity importances of tree ensembles, or |coefficient| of linear models (summed over classes)."""
        names = getattr(self, "feature_names", None)
        values = getattr(self.estimator, "feature_importances_", None)
        if values is None and hasattr(self.estimator, "coef_"):
            values = np.abs(np.atleast_2d(self.estimator.coef_)).sum(axis=0)
        if values is None or names is None or len(names) != len(values):
            return None
        return dict(zip(names, map(float, values)))

    def tree_shap(self, X):
        """Exact SHAP values of a tree, forest or gradient boosting estimator (SHAP's ``TreeExplainer``); None for
        the other estimators, or where SHAP is not installed or cannot read this one."""
        fitted = self.estimator
        if not (hasattr(fitted, "tree_") or hasattr(fitted, "estimators_")):
            return None
        try:
            import shap

            return shap.TreeExplainer(fitted).shap_values(X), f"tree SHAP (shap.TreeExplainer on {type(fitted).__name__})"
        except Exception:  # noqa: BLE001 -- an estimator SHAP cannot read: the caller's model-agnostic route
            return None

    # --- artifacts: skops, trusting exact type names ----------------------------------------------------

    def trusted_types(self) -> tuple[str, ...]:
        """The types a saved file of this model may hold beyond skops' own trusted ones: ``TRUSTED_TYPES`` and the
        estimator's own class (``import_estimator`` checked it is a scikit-learn estimator). A plugin that wraps an
        estimator needing more overrides this with the exact names it has reviewed."""
        cls = type(self.estimator)
        return (*TRUSTED_TYPES, f"{cls.__module__}.{cls.__qualname__}")

    def _refused(self, untrusted: list[str]) -> list[str]:
        allowed = set(self.trusted_types())
        return [name for name in untrusted if name not in allowed]

    def save(self, directory: Path) -> None:
        path = Path(directory) / FILE
        skops_io().dump(self.estimator, path)
        refused = self._refused(skops_io().get_untrusted_types(file=path))
        if refused:  # refused now, not when someone reloads the run
            raise CouplerError(
                f"model.estimator={self.path}: with these model.params its fitted state holds "
                f"{', '.join(refused)}, which Coupler does not trust when it reloads a run (a .skops file may hold "
                f"scikit-learn estimators, arrays and {', '.join(t.rpartition('.')[2] for t in TRUSTED_TYPES)}). "
                f"Choose other parameters or another estimator, or wrap it in a plugin whose model trusts that type.")
        (Path(directory) / CLASSES_FILE).write_text(json.dumps({"n_classes": self.n_classes}))

    def load(self, directory: Path) -> None:
        path = Path(directory) / FILE
        untrusted = _untrusted_types(path)
        refused = self._refused(untrusted)
        if refused:
            raise CouplerError(
                f"{path} holds {', '.join(refused)}, which Coupler does not trust: a .skops file of a "
                f"{type(self.estimator).__name__} run holds only scikit-learn estimators, arrays and known types. "
                f"Refusing to load it; retrain the run from its config (coupler train) or load the file only if you "
                f"wrote it yourself.")
        try:
            self.estimator = skops_io().load(path, trusted=untrusted)
        except Exception as exc:  # a file whose types are trusted but whose content does not construct
            raise CouplerError(f"{path} cannot be loaded ({type(exc).__name__}: {_first_line(exc)}); the file was "
                               f"changed or damaged: retrain the run (coupler train).") from None
        problem = check_fitted_indices(self.estimator)
        if problem:
            raise CouplerError(f"{path} holds {problem}, which would make prediction read outside its arrays (or "
                               f"crash); the file was changed or damaged: retrain the run (coupler train).")
        self.n_classes = json.loads((Path(directory) / CLASSES_FILE).read_text())["n_classes"]


# --- the content of trusted types whose indices scikit-learn follows unchecked ---------------------------------


def _children_problem(left: np.ndarray, right: np.ndarray, count: int, leaf: np.ndarray) -> int | None:
    """The first internal node whose children are not after it and inside the tree (which also rules out cycles)."""
    ids = np.arange(count)
    bad = ~leaf & ((left <= ids) | (right <= ids) | (left >= count) | (right >= count))
    return int(np.flatnonzero(bad)[0]) if bad.any() else None


def _check_tree(tree, n_features: int) -> str | None:
    """``sklearn.tree._tree.Tree``: the node arrays of every decision tree (forests, gradient boosting)."""
    count = int(tree.node_count)
    left, right, feature = (np.asarray(a) for a in (tree.children_left, tree.children_right, tree.feature))
    if count < 1 or not len(left) == len(right) == len(feature) == len(tree.value) == count:
        return f"a decision tree whose node arrays disagree with its {count} nodes"
    leaf = (left == -1) & (right == -1)
    node = _children_problem(left, right, count, leaf)
    if node is None:
        outside = ~leaf & ((feature < 0) | (feature >= n_features))
        node = int(np.flatnonzero(outside)[0]) if outside.any() else None
    return None if node is None else f"a decision tree whose node {node} points outside the tree or the input"


def _check_predictor(predictor, n_features: int, categorical) -> str | None:
    """``TreePredictor``: the nodes of a histogram gradient boosting tree, and its categorical bitsets."""
    nodes = predictor.nodes
    count = len(nodes)
    leaf = nodes["is_leaf"].astype(bool)
    node = _children_problem(nodes["left"].astype(np.int64), nodes["right"].astype(np.int64), count, leaf) \
        if count else 0
    if node is None:
        feature = nodes["feature_idx"].astype(np.int64)
        split = ~leaf & ((feature < 0) | (feature >= n_features))
        flags = np.zeros(n_features, dtype=bool)
        if categorical is not None and len(categorical) == n_features:
            flags = np.asarray(categorical, dtype=bool)
        on_category = ~leaf & ~split & nodes["is_categorical"].astype(bool)
        if on_category.any():
            bitset = nodes["bitset_idx"].astype(np.int64)
            split |= on_category & ((bitset < 0) | (bitset >= len(predictor.raw_left_cat_bitsets)))
            split[on_category] |= ~flags[np.clip(feature[on_category], 0, n_features - 1)]
        node = int(np.flatnonzero(split)[0]) if split.any() else None
    return None if node is None else f"a gradient boosting tree whose node {node} points outside the tree or the input"


def _check_binary_tree(tree, n_features: int) -> str | None:
    """``KDTree`` / ``BallTree``: the sample index permutation and the implicit binary heap of nodes."""
    data, order, nodes, bounds = tree.get_arrays()
    state = tree.__getstate__()
    n_levels, n_nodes = state[5], state[6]
    rows = len(data)
    problems = []
    if np.ndim(data) != 2 or np.shape(data)[1] != n_features:
        problems.append(f"data of shape {np.shape(data)} for {n_features} features")
    if len(order) != rows or not np.array_equal(np.sort(order), np.arange(rows)):
        problems.append("sample indices that are not a permutation of its rows")
    if n_nodes != len(nodes) or n_nodes != 2 ** n_levels - 1 or len(bounds) and bounds.shape[1] != n_nodes:
        problems.append(f"{n_nodes} nodes on {n_levels} levels in arrays of {len(nodes)}")
    elif n_nodes:
        start, end = nodes["idx_start"], nodes["idx_end"]
        inner = ~nodes["is_leaf"].astype(bool)
        if ((start < 0) | (start > end) | (end > rows)).any() or (inner & (2 * np.arange(n_nodes) + 2 >= n_nodes)).any():
            problems.append("nodes whose samples or children lie outside it")
    return f"a {type(tree).__name__} with {problems[0]}" if problems else None


def _reachable(root):
    """Every object of a fitted estimator: attributes, containers and object arrays, each once."""
    seen, stack = set(), [root]
    while stack:
        item = stack.pop()
        if id(item) in seen or isinstance(item, (str, bytes, int, float, bool, type(None), type)):
            continue
        seen.add(id(item))
        yield item
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, (list, tuple, set)):
            stack.extend(item)
        elif isinstance(item, np.ndarray):
            if item.dtype == object:
                stack.extend(item.ravel())
        elif hasattr(item, "__dict__"):
            stack.extend(vars(item).values())


def check_fitted_indices(estimator) -> str | None:
    """What is wrong with the first tree-like structure of ``estimator`` whose indices scikit-learn would follow out
    of bounds, or None. The structures are found by their exact type names, as skops names them."""
    n_features = getattr(estimator, "n_features_in_", None)
    if not isinstance(n_features, int) or n_features < 1:
        return None  # nothing was fitted on features that a tree could index
    categorical = getattr(estimator, "is_categorical_", None)
    for item in _reachable(estimator):
        kind = f"{type(item).__module__}.{type(item).__qualname__}"
        if kind == "sklearn.tree._tree.Tree":
            problem = _check_tree(item, n_features)
        elif kind == "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor":
            problem = _check_predictor(item, n_features, categorical)
        elif kind in ("sklearn.neighbors._kd_tree.KDTree", "sklearn.neighbors._ball_tree.BallTree"):
            problem = _check_binary_tree(item, n_features)
        else:
            continue
        if problem:
            return problem
    return None


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [""])[0]


def _untrusted_types(path: Path) -> list[str]:
    """The types in a .skops file that skops does not trust by itself; reading a file builds nothing from it."""
    try:
        return skops_io().get_untrusted_types(file=path)
    except Exception as exc:  # not a zip, no schema, a schema skops cannot read: the file is not a model
        raise CouplerError(f"{path} is not a skops file Coupler can read ({type(exc).__name__}: "
                           f"{_first_line(exc)}); the file was changed or damaged: retrain the run "
                           f"(coupler train).") from None
