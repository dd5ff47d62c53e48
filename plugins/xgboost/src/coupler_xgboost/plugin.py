"""The ``xgboost`` plugin: registers ``model=xgboost``. Imports no xgboost until a run builds the model."""

from __future__ import annotations

import importlib.util
import re
from dataclasses import dataclass
from pathlib import Path

from coupler import hookimpl
from coupler.components import CLASSIFICATION, Model
from coupler.errors import ConfigError, CouplerError
from coupler.schema import param

COUPLER_API = ">=1.2,<2"  # the plugin API versions this plugin supports (coupler.hookspecs.API_VERSION)
#: model.cluster as the address of a running Dask scheduler
ADDRESS = re.compile(r"tcp://(?P<host>\[[0-9a-fA-F:.]+\]|[A-Za-z0-9._-]+):(?P<port>\d{1,5})")


class XGBoostContract(Model):
    """What ``model=xgboost`` declares (``coupler.components``), readable without importing XGBoost:
    ``coupler_xgboost.model.XGBoostModel`` extends it."""

    input_format = "frame"
    # alone, a frame; beside matrix models (model=ensemble), a float matrix; a stream (data=parquet) only with
    # model.cluster or model.external_memory (a built model drops it otherwise, and prefers it then)
    input_formats = ("frame", "matrix", "stream")
    tasks = ("binary", "multiclass", "regression")
    proba_tasks = CLASSIFICATION
    reports_epochs = True  # every boosting round, when the validation split has rows
    sample_weights = True  # DMatrix(weight=)
    engine = "xgboost"
    export_formats = ("onnx",)  # onnxmltools (coupler_xgboost.onnx); not with categorical columns (refused before fit)


@dataclass
class XGBoostParams:
    """``model.params``: the parameters users tune most, at XGBoost's defaults but ``max_depth`` and ``eta``."""

    extra_keys = "xgboost.train (any parameter XGBoost documents; a one-round fit checks it)"

    max_depth: int = param(6, help="deepest level of a tree (0: no limit)", ge=0)
    eta: float = param(0.1, help="learning rate: how much each round adds", gt=0, le=1)
    tree_method: str = param("hist", help="how trees are grown", choices=("hist", "approx", "exact", "auto"))
    subsample: float = param(1.0, help="fraction of the rows each tree sees", gt=0, le=1)
    colsample_bytree: float = param(1.0, help="fraction of the columns each tree sees", gt=0, le=1)
    min_child_weight: float = param(1.0, help="least weight (hessian) a leaf holds", ge=0)
    reg_lambda: float = param(1.0, help="L2 penalty on leaf weights (XGBoost's lambda)", ge=0)
    reg_alpha: float = param(0.0, help="L1 penalty on leaf weights (XGBoost's alpha)", ge=0)


@dataclass
class XGBoostSchema:
    """``model=xgboost``. The objective and ``num_class`` follow the task; early stopping: callbacks=[early_stopping]
    (monitor val_loss, or val_EVAL_METRIC)."""

    num_boost_round: int = param(500, help="boosting rounds (early stopping may stop sooner)", ge=1)
    params: XGBoostParams = param(default_factory=XGBoostParams, help="passed to xgboost.train")
    cluster: str | None = param(None, help="train with xgboost.dask: local (a Dask LocalCluster Coupler starts) or "
                                "tcp://HOST:PORT (a running scheduler); null: in this process")
    workers: int = param(2, help="cluster=local: its worker processes", ge=1)
    threads_per_worker: int = param(1, help="cluster=local: threads of each worker", ge=1)
    external_memory: bool = param(False, help="train a streamed data set (data=parquet) through XGBoost's "
                                  "external-memory iterator, pages cached on disk, instead of loading it")

    @staticmethod
    def check_parts(node: dict, key: str, registry) -> None:
        """The cluster's address and the settings that cannot go together: before any data (``Component.check``)."""
        check_scale_settings(node.get("cluster"), node.get("workers", 2), node.get("threads_per_worker", 1),
                             node.get("external_memory", False), dict(node.get("params") or {}), key)


def check_scale_settings(cluster, workers, threads_per_worker, external_memory, params: dict,
                         key: str = "model") -> None:
    """Refuse what cannot work together, naming the key, before any data. Imports nothing heavy."""
    if cluster is not None:
        if not isinstance(cluster, str) or not (cluster == "local" or _address_ok(cluster)):
            raise ConfigError(f"{key}.cluster", cluster, "null (one process), local (a Dask LocalCluster Coupler "
                              "starts) or the address of a running Dask scheduler, tcp://HOST:PORT")
        missing = [name for name in ("dask", "distributed") if importlib.util.find_spec(name) is None]
        if missing:
            raise CouplerError(f"{key}.cluster={cluster} needs {' and '.join(missing)}, which are not installed: "
                               "pip install 'coupler-xgboost[dask]'")
        if external_memory:
            raise ConfigError(f"{key}.external_memory", external_memory, "false with model.cluster: on a cluster the "
                              "rows are spread over the workers' memory; external memory is for one process "
                              "(remove model.cluster, or set model.external_memory=false)")
        booster = params.get("booster")
        if booster == "gblinear":
            raise ConfigError(f"{key}.params.booster", booster, "gbtree or dart with model.cluster: xgboost.dask "
                              "does not train gblinear")
        device = params.get("device")
        if isinstance(device, str) and ":" in device and device != "sycl:gpu":
            raise ConfigError(f"{key}.params.device", device, "cuda or cpu with model.cluster (no device ordinal: "
                              "each Dask worker uses the device it was given)")
    if params.get("tree_method") == "exact" and (cluster is not None or external_memory):
        what = "model.cluster" if cluster is not None else "model.external_memory=true"
        allowed = "hist or approx" if cluster is not None else "hist"
        raise ConfigError(f"{key}.params.tree_method", "exact", f"{allowed} with {what}: exact needs all the rows in "
                          "one process's memory")
    if external_memory and params.get("tree_method") not in (None, "hist", "auto"):
        raise ConfigError(f"{key}.params.tree_method", params.get("tree_method"), "hist with "
                          "model.external_memory=true (XGBoost's external memory builds histograms)")
    if external_memory and params.get("booster") == "gblinear":
        raise ConfigError(f"{key}.params.booster", "gblinear", "gbtree or dart with model.external_memory=true")
    if cluster != "local":
        for name, value, default in (("workers", workers, 2), ("threads_per_worker", threads_per_worker, 1)):
            if value != default:
                raise ConfigError(f"{key}.{name}", value, f"{default} (the default) unless model.cluster=local: it "
                                  f"sizes the local cluster Coupler starts"
                                  + (", not a running scheduler's workers" if cluster else ""))


def _address_ok(address: str) -> bool:
    match = ADDRESS.fullmatch(address)
    return bool(match) and 1 <= int(match["port"]) <= 65535


def build_xgboost(task: str, seed: int, params: dict, num_boost_round: int, cluster: str | None = None,
                  workers: int = 2, threads_per_worker: int = 1, external_memory: bool = False):
    from coupler_xgboost.model import XGBoostModel

    # XGBoost's own names of two schema fields (+model.params.lambda=50, an older run's config): the value given wins
    params = {f"reg_{k}" if k in ("lambda", "alpha") else k: v for k, v in params.items()
              if not (k in ("reg_lambda", "reg_alpha") and k.removeprefix("reg_") in params)}
    return XGBoostModel(task=task, seed=seed, params=params, num_boost_round=num_boost_round, cluster=cluster,
                        workers=workers, threads_per_worker=threads_per_worker, external_memory=external_memory)


build_xgboost.returns = XGBoostContract


@hookimpl
def register_models(register):
    register("xgboost", build_xgboost, schema=XGBoostSchema,
             description="XGBoost gradient boosting (native API; early stopping, native categoricals)")


@hookimpl
def register_config_dirs(register):
    """``conf/search/MODEL.yaml``: the search space of each model of this plugin (``coupler train -m search=MODEL``,
    with coupler-optuna installed). The plugin that knows a model's parameters ships its space, listed with it as
    the provider (``coupler train --help``, ``coupler plugins``)."""
    register(Path(__file__).parent / "conf")
