"""The ``mlflow`` plugin: registers the tracker ``tracking=mlflow``. Imports no mlflow until a run selects it."""

from __future__ import annotations

from dataclasses import dataclass

from coupler import hookimpl
from coupler.schema import param

COUPLER_API = ">=1.3,<2"  # register_trackers came with API 1.3 (coupler.hookspecs.API_VERSION)

#: the store when ``tracking.mlflow.uri`` is null: a SQLite file in the directory the command started in
DEFAULT_STORE = "mlflow.db"


@dataclass
class MlflowSchema:
    """``tracking=mlflow``: ``tracking.mlflow.*``."""

    uri: str | None = param(None, help="the tracking server (http://HOST:PORT) or store URI; null: "
                                       "sqlite:///mlflow.db in the directory the command started in")
    experiment: str = param("coupler", help="the MLflow experiment the runs go into (created when missing)")
    artifacts: bool = param(True, help="log the sealed run directory as the run's artifacts (under run/)")
    model: bool = param(True, help="log the model as an MLflow pyfunc (under model/) that loads the run directory")


def build_tracker(uri: str | None, experiment: str, artifacts: bool, model: bool):
    from coupler_mlflow.tracker import MlflowTracker

    return MlflowTracker(uri=uri, experiment=experiment, artifacts=artifacts, model=model)


@hookimpl
def register_trackers(register):
    register("mlflow", build_tracker, schema=MlflowSchema,
             description="MLflow: config, per-epoch and final metrics, tags, the run directory, a pyfunc model")
