"""``XGBoostModel``: XGBoost's native training behind Coupler's ``Model`` contract.

- The objective follows the task (``binary:logistic``, ``multi:softprob``, ``reg:squarederror``); every other
  key of ``params`` goes to ``xgboost.train`` untouched, checked first by a tiny fit: an unknown key is an
  error naming it, an ill-typed one an error with XGBoost's reason.
- Categorical columns arrive as pandas ``category`` columns and use XGBoost's native categorical support;
  missing values stay missing.
- After every boosting round the run's ``on_epoch_end`` fires with the validation metrics: ``val_loss`` (the
  task's loss: logloss, mlogloss or rmse, always evaluated) and ``val_NAME`` for each eval metric; an
  early-stopping callback stops the training, and the best round is the one kept.
- ``cluster`` (``xgboost.dask`` on a Dask cluster) and ``external_memory`` (``ExtMemQuantileDMatrix`` over a
  stream's partitions) train in ``coupler_xgboost.scale``; the Booster they return is kept as this one's. With
  either, the model takes the ``stream`` input format (a data set larger than memory), and prefers it.
- Saved in XGBoost's own UBJSON format, never pickle. UBJSON is data: XGBoost parses it into trees and a config
  that names built-in objectives only, so a model file cannot carry code. But XGBoost's parser trusts the lengths
  and node indices a file declares (a truncated ``model.ubj`` crashed the process), so ``load`` first reads the file
  with a bounded UBJSON reader (``coupler_xgboost.ubjson``) and checks every tree (``check_booster``: children
  inside the tree, each node reached once, features and output groups inside the model) before XGBoost sees the
  bytes; a damaged or crafted file is one clear error.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import xgboost as xgb

from coupler.components import Split
from coupler.errors import ConfigError, CouplerError, did_you_mean
from coupler_xgboost.plugin import XGBoostContract

FILE = "model.ubj"
OBJECTIVES = {"binary": "binary:logistic", "multiclass": "multi:softprob", "regression": "reg:squarederror"}
#: the task's loss: always evaluated, and reported each round as ``val_loss``
LOSSES = {"binary": "logloss", "multiclass": "mlogloss", "regression": "rmse"}
#: names XGBoost accepts that its saved config spells differently
ALIASES = {"learning_rate": "eta", "min_split_loss": "gamma", "reg_lambda": "lambda", "reg_alpha": "alpha",
           "random_state": "seed", "n_jobs": "nthread"}
#: keys that belong to the harness, not to params
RESERVED = {"objective": "the task sets it (task=...)", "num_class": "the data set it",
            "num_boost_round": "set model.num_boost_round", "n_estimators": "set model.num_boost_round"}
#: the parameters XGBoost takes as a mapping (feature name -> constraint); every other one is a scalar or a list
MAPPING_PARAMS = {"monotone_constraints"}
SCALARS = (bool, int, float, str)


def _check_value(key: str, value) -> None:
    """A parameter's value is what XGBoost reads: a scalar, a list of them (or of lists: interaction_constraints),
    or a mapping for ``monotone_constraints``. XGBoost would turn anything else into its Python text silently."""
    def plain(item, depth=0) -> bool:
        if isinstance(item, SCALARS):
            return True
        return isinstance(item, (list, tuple)) and depth < 2 and all(plain(v, depth + 1) for v in item)

    if isinstance(value, dict) and key in MAPPING_PARAMS:
        ok = all(isinstance(k, str) and isinstance(v, int) and not isinstance(v, bool) for k, v in value.items())
    else:
        ok = plain(value)
    if not ok:
        allowed = ("a mapping of feature names to -1, 0 or 1" if key in MAPPING_PARAMS else
                   "a number, a string or a list of them, as XGBoost documents the parameter")
        raise ConfigError(f"model.params.{key}", value, allowed)


class XGBoostModel(XGBoostContract):
    def __init__(self, task: str, seed: int, params: dict, num_boost_round: int = 500, cluster: str | None = None,
                 workers: int = 2, threads_per_worker: int = 1, external_memory: bool = False):
        from coupler_xgboost.plugin import check_scale_settings

        for key, why in RESERVED.items():
            if key in params:
                raise CouplerError(f"model.params.{key} cannot be set: {why}.")
        for key, value in params.items():
            if value is not None:
                _check_value(key, value)
        check_scale_settings(cluster, workers, threads_per_worker, external_memory, params)
        self.task, self.num_boost_round = task, num_boost_round
        self.cluster, self.workers, self.threads_per_worker = cluster, workers, threads_per_worker
        self.external_memory = external_memory
        # a stream (data larger than memory) only where it is trained from: on a cluster or from external memory;
        # rows in memory still come as a frame or a matrix (the core offers those alone for them)
        self.input_formats = (("stream", "frame", "matrix") if cluster is not None or external_memory
                              else tuple(f for f in self.input_formats if f != "stream"))
        self.params = {"seed": seed, **params, "objective": OBJECTIVES[task]}
        asked = params.get("eval_metric") or []
        asked = [asked] if isinstance(asked, str) else list(asked)
        self.params["eval_metric"] = [*asked, *([LOSSES[task]] if LOSSES[task] not in asked else [])]
        self.booster: xgb.Booster | None = None
        self._matrices: dict[int, tuple[object, xgb.DMatrix]] = {}
        self._predictions: dict[int, tuple[object, np.ndarray]] = {}
        self._check_params(params)

    # --- parameters -----------------------------------------------------------------------------------

    def _check_params(self, params: dict) -> None:
        """Fit one round on four rows, so that a bad parameter fails now, clearly, and not after the data."""
        X = np.array([[0.0], [1.0], [0.0], [1.0]])
        y = np.array([0, 1, 2, 1] if self.task == "multiclass" else [0, 1, 0, 1], dtype=float)
        probe = {**self.params, **self._task_params(3 if self.task == "multiclass" else 2), "device": "cpu"}
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                booster = xgb.train(probe, xgb.DMatrix(X, label=y), num_boost_round=1)
            except xgb.core.XGBoostError as exc:
                reason = str(exc).splitlines()[0].split(": ", 1)[-1]
                raise CouplerError(f"model.params: {reason}") from None
        unused = [w for w in caught if "are not used" in str(w.message)]
        if unused:
            text = str(unused[0].message)
            names = text[text.index("{") + 1:text.index("}")].replace('"', "").split(",")
            internal = {"name", "num_feature", "num_target", "boost_from_average", *RESERVED}
            valid = sorted((set(_leaf_keys(json.loads(booster.save_config()))) | set(ALIASES)) - internal)
            name = names[0].strip()
            raise CouplerError(
                f"model.params.{name}: XGBoost has no parameter {name!r}.{did_you_mean(name, valid)} "
                f"Valid parameters: {', '.join(valid)}."
            )

    def _task_params(self, n_classes: int) -> dict:
        return {"num_class": n_classes} if self.task == "multiclass" else {}

    # --- training -------------------------------------------------------------------------------------

    def fit(self, train: Split, val: Split | None, run) -> None:
        from coupler.streaming import RowStream

        streamed = isinstance(train.X, RowStream)
        if run.classes:
            n_classes = len(run.classes)
        else:  # a stream's labels are read in batches only; a stream's task always names its classes
            n_classes = 0 if streamed else int(train.y.max()) + 1
        params = {**self.params, **self._task_params(n_classes)}
        progress = getattr(run, "progress", None)
        if progress is not None:  # the bar's length and the log lines' "round/of"
            progress.total = self.num_boost_round
        if self.cluster is not None:
            from coupler_xgboost.scale import dask_client, train_on_dask

            with dask_client(self.cluster, self.workers, self.threads_per_worker) as client:
                self.booster = train_on_dask(client, params, train, val, self.num_boost_round, run, LOSSES[self.task])
        elif streamed:
            from coupler_xgboost.scale import train_from_external_memory

            callbacks = [_RoundEvents(run, LOSSES[self.task])] if val is not None else []
            self.booster = train_from_external_memory(params, train, val, self.num_boost_round, callbacks)
        else:  # in memory (with external_memory=true too: rows already in memory are trained from there)
            dtrain = self._dmatrix(train.X, train.y, train.weight)
            evals = [(self._dmatrix(val.X, val.y), "val")] if val is not None else []
            callbacks = [_RoundEvents(run, LOSSES[self.task])] if evals else []
            self.booster = xgb.train(params, dtrain, num_boost_round=self.num_boost_round, evals=evals,
                                     callbacks=callbacks, verbose_eval=False)
        if run.best_epoch is not None:  # an early-stopping callback chose a round: keep the model up to it
            self.booster = self.booster[: run.best_epoch + 1]

    def _dmatrix(self, X, y=None, weight=None) -> xgb.DMatrix:
        """One DMatrix per input: the validation matrix built for training serves its predictions too. ``weight``:
        the training rows' weights (``Split.weight``)."""
        hit = self._matrices.get(id(X))
        if hit is None or hit[0] is not X:
            hit = (X, xgb.DMatrix(X, label=y, weight=weight, enable_categorical=True))
            self._matrices[id(X)] = hit  # holding X keeps its id from being reused
        return hit[1]

    # --- prediction -----------------------------------------------------------------------------------

    def _raw(self, X) -> np.ndarray:
        """Predictions for ``X``, computed once however often ``predict`` and ``predict_proba`` ask: from the
        DMatrix built for ``X`` already (the validation split's, in training), else ``Booster.inplace_predict``,
        which builds none (XGBoost's low-latency path: a row served takes a fifth of the time), on a float32 matrix
        (``_plain_matrix``)."""
        hit = self._predictions.get(id(X))
        if hit is None or hit[0] is not X:
            built = self._matrices.get(id(X))
            if built is not None and built[0] is X:
                raw = self.booster.predict(built[1])
            else:
                raw = self.booster.inplace_predict(_plain_matrix(X, self.booster, self._booster_categories()))
            hit = (X, raw)
            self._predictions = {id(X): hit}
            self._matrices = {k: v for k, v in self._matrices.items() if v[0] is X}  # free the others
        return hit[1]

    def _booster_categories(self) -> dict:
        """The categories the booster recorded for each categorical feature (XGBoost 3.1+), read once per booster;
        empty for a booster that recorded none."""
        cached = getattr(self, "_categories", None)
        if cached is None or cached[0] is not self.booster:
            try:
                pairs = self.booster.get_categories(export_to_arrow=True).to_arrow() or []
                found = {name: values.to_pylist() for name, values in pairs if values is not None}
            except Exception:  # a booster of an XGBoost that records none
                found = {}
            cached = self._categories = (self.booster, found)
        return cached[1]

    def predict(self, X) -> np.ndarray:
        raw = self._raw(X)
        if self.task == "regression":
            return raw
        if self.task == "binary":
            return (raw > 0.5).astype(np.int64)
        return raw.argmax(axis=1)

    def predict_proba(self, X):
        raw = self._raw(X)
        if self.task == "binary":
            return np.column_stack([1 - raw, raw])
        return raw if self.task == "multiclass" else None

    def to_onnx(self, n_features: int):
        """The booster's ONNX graph (``coupler_xgboost.onnx``; what it takes and gives: ``coupler.onnx_export``)."""
        from coupler_xgboost.onnx import model_graph

        n_classes = {"binary": 2, "regression": 0}.get(self.task) or int(json.loads(self.booster.save_config())
                                                                       ["learner"]["learner_model_param"]["num_class"])
        return model_graph(self.booster, self.task, n_features, n_classes)

    def feature_importances(self) -> dict[str, float]:
        """Total gain of each feature over the kept rounds."""
        return self.booster.get_score(importance_type="total_gain")

    def tree_shap(self, X):
        """Exact SHAP values from XGBoost's own tree SHAP (``pred_contribs``), categorical columns included, in
        margin (log-odds) units; without the bias column, classes last."""
        import numpy as np
        import xgboost as xgb

        contributions = self.booster.predict(xgb.DMatrix(X, enable_categorical=True), pred_contribs=True)
        values = np.moveaxis(contributions, 1, -1) if contributions.ndim == 3 else contributions
        return values[:, :-1], "XGBoost's own tree SHAP (Booster.predict, pred_contribs=True)"

    # --- artifacts ------------------------------------------------------------------------------------

    def save(self, directory: Path) -> None:
        self.booster.save_model(Path(directory) / FILE)

    def load(self, directory: Path) -> None:
        from coupler_xgboost.ubjson import UBJSONError, read

        path = Path(directory) / FILE
        fix = "the file was changed or damaged: retrain the run (coupler train)"
        data = path.read_bytes()
        try:
            problem = check_booster(read(data))
        except UBJSONError as exc:
            problem = f"it is not UBJSON ({exc})"
        if problem:
            raise CouplerError(f"{path}: XGBoost cannot read it safely: {problem}; {fix}.")
        booster = xgb.Booster()
        try:
            booster.load_model(bytearray(data))  # the bytes just checked, not the file again
        except xgb.core.XGBoostError as exc:
            reason = (str(exc).strip().splitlines() or [""])[0].split(": ", 1)[-1]
            raise CouplerError(f"{path}: XGBoost cannot read it ({reason}); {fix}.") from None
        self.booster = booster
        self._matrices, self._predictions = {}, {}


class _RoundEvents(xgb.callback.TrainingCallback):
    """Fires the run's ``on_epoch_end`` after each round and stops when an observer asks."""

    def __init__(self, run, loss: str):
        super().__init__()
        self.run, self.loss = run, loss

    def after_iteration(self, model, epoch: int, evals_log) -> bool:
        scores = {f"val_{name}": values[-1] for name, values in evals_log.get("val", {}).items()}
        return self.run.epoch_end(epoch, {"val_loss": scores[f"val_{self.loss}"], **scores})


# --- a model file's structure, checked before XGBoost follows its indices --------------------------------------

#: the per-node arrays of a tree, each one value per node
NODE_ARRAYS = ("left_children", "right_children", "parents", "split_indices", "split_conditions", "default_left",
               "split_type", "loss_changes", "sum_hessian")


def check_booster(document) -> str | None:
    """What is wrong with a model document (``ubjson.read`` of ``model.ubj``) that XGBoost would follow out of
    bounds, or None."""
    try:
        learner = document["learner"]
        params = learner["learner_model_param"]
        n_features = int(params["num_feature"])
        groups = max(int(params["num_class"]), int(params.get("num_target", 1)), 1)
        booster = learner["gradient_booster"]
        if booster["name"] == "gblinear":
            weights = booster["model"]["weights"]
            expected = (n_features + 1) * groups
            return None if len(weights) == expected else f"{len(weights)} linear weights for {expected}"
        model = booster["model"] if booster["name"] == "gbtree" else booster["gbtree"]["model"]
        trees, info = model["trees"], list(model["tree_info"])
        count = int(model["gbtree_model_param"]["num_trees"])
        if not len(trees) == len(info) == count:
            return f"{len(trees)} trees and {len(info)} tree groups for num_trees={count}"
        if any(not isinstance(g, int) or not 0 <= g < groups for g in info):
            return f"a tree group outside the model's {groups} outputs"
        for index, tree in enumerate(trees):
            problem = _check_tree(tree, n_features)
            if problem:
                return f"tree {index} {problem}"
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        return f"it is not an XGBoost model ({type(exc).__name__}: {exc})"
    return None


def _check_tree(tree: dict, n_features: int) -> str | None:
    nodes = int(tree["tree_param"]["num_nodes"])
    if nodes < 1 or any(len(tree[name]) != nodes for name in NODE_ARRAYS if name in tree):
        return f"has node arrays that disagree with its {nodes} nodes"
    left, right = (np.asarray(tree[name], dtype=np.int64) for name in ("left_children", "right_children"))
    feature = np.asarray(tree["split_indices"], dtype=np.int64)
    inner = left != -1
    if ((left[inner] < 1) | (left[inner] >= nodes) | (right[inner] < 1) | (right[inner] >= nodes)).any() \
            or (right[~inner] != -1).any():
        return "has a node whose children lie outside it"
    if (np.bincount(np.concatenate([left[inner], right[inner]]), minlength=nodes) > 1).any():
        return "has a node reached from two places (a cycle)"
    if ((feature[inner] < 0) | (feature[inner] >= n_features)).any():
        return f"splits on a feature outside the model's {n_features}"
    split_nodes = np.asarray(tree.get("categories_nodes", []), dtype=np.int64)
    starts = np.asarray(tree.get("categories_segments", []), dtype=np.int64)
    sizes = np.asarray(tree.get("categories_sizes", []), dtype=np.int64)
    if not len(split_nodes) == len(starts) == len(sizes) or ((split_nodes < 0) | (split_nodes >= nodes)).any() \
            or ((starts < 0) | (sizes < 0) | (starts + sizes > len(tree.get("categories", [])))).any():
        return "has categorical splits outside its category list"
    return None


def _leaf_keys(node) -> list[str]:
    if isinstance(node, dict):
        keys = []
        for key, value in node.items():
            keys += _leaf_keys(value) if isinstance(value, (dict, list)) else [key]
        return keys
    if isinstance(node, list):
        return [k for item in node for k in _leaf_keys(item)]
    return []


def _plain_matrix(X, booster, categories: dict):
    """``X`` as a float32 matrix for ``Booster.inplace_predict`` when that is exactly what the booster learned from:
    a DataFrame whose columns are the booster's features in order, its numbers as they are, a categorical column as
    its category codes where the booster marks the feature categorical and recorded the same categories in the same
    order (``categories``: the run's preprocessing gives every frame the training categories). Anything else goes
    as it is, and XGBoost checks the names and codes the categories by their values."""
    if not hasattr(X, "dtypes"):
        return X
    names, kinds = list(booster.feature_names or ()), list(booster.feature_types or ())
    if names and list(X.columns) != names:
        return X
    columns = []
    for position, (column, dtype) in enumerate(zip(X.columns, X.dtypes)):
        if str(dtype) != "category":
            columns.append(X[column].to_numpy(dtype=np.float32))
        elif position < len(kinds) and kinds[position] == "c" and categories.get(column) == list(dtype.categories):
            codes = X[column].cat.codes.to_numpy()
            columns.append(np.where(codes >= 0, codes, np.nan).astype(np.float32))
        else:
            return X
    return np.column_stack(columns) if columns else X.to_numpy(dtype=np.float32)
