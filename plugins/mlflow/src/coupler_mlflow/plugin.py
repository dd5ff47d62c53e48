"""The ``mlflow`` plugin: registers the tracker ``tracking=mlflow``. Imports no mlflow until a run selects it."""

from __future__ import annotations

from dataclasses import dataclass

from coupler import hookimpl
from coupler.errors import CouplerError
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
    synchronous: bool = param(False, help="log from the training process: the MLflow run is complete when the run "
                                          "returns, which takes seconds longer (MLflow's import and store); false: "
                                          "a background process logs, and the run does not wait for it")


def redact(uri: str) -> str:
    """``uri`` as it may be shown: a user or password in it (``http://user:secret@host``) becomes ``***``."""
    from urllib.parse import urlsplit, urlunsplit

    try:
        parts = urlsplit(uri)
    except ValueError:  # an unparsable URI (a bad IPv6 host) may still hold a secret: show none of its network part
        return "***"
    if "@" not in parts.netloc:
        return uri
    return urlunsplit(parts._replace(netloc="***@" + parts.netloc.rsplit("@", 1)[1]))


def check_uri(uri: str | None) -> None:
    """Credentials never go in a server's ``tracking.mlflow.uri``: the URI is shown in messages, logs and process
    lists; MLflow reads a server's login from its own environment variables instead. (A database store's URI,
    ``postgresql://user:pw@host/db``, has no other place for them: it is only redacted wherever it is shown.)"""
    if uri and uri.lower().startswith(("http://", "https://")) and redact(uri) != uri:
        raise CouplerError(f"tracking.mlflow.uri={redact(uri)}: the URI holds a user or password; remove them from "
                           f"it and set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD (or "
                           f"MLFLOW_TRACKING_TOKEN) in the environment instead.")


def build_tracker(uri: str | None, experiment: str, artifacts: bool, model: bool, synchronous: bool = False):
    """The tracker, built before the run starts: a URI holding credentials is refused here (``check_uri``)."""
    check_uri(uri)
    from coupler_mlflow.tracker import MlflowTracker

    return MlflowTracker(uri=uri, experiment=experiment, artifacts=artifacts, model=model, synchronous=synchronous)


@hookimpl
def register_trackers(register):
    register("mlflow", build_tracker, schema=MlflowSchema,
             description="MLflow: config, per-epoch and final metrics, tags, the run directory, a pyfunc model")
