"""The MLflow pyfunc of a Coupler run: ``CouplerRunModel`` loads the run directory logged with it through
``coupler.FinishedRun`` and predicts with it, so ``mlflow.pyfunc.load_model("runs:/ID/model")`` predicts as
``coupler predict`` does (the run's own preprocessing and checks, its manifest verified on load).

Nothing is pickled: the model is logged as code (MLflow's "models from code", ``model_code.py``, which imports
this class and hands MLflow an instance); the model itself is the run directory (an artifact, ``artifacts/run``), read by the
engine's own loader. Loading needs Coupler, this plugin and the run's model plugin installed (the logged
``requirements.txt`` names them with the versions the run recorded)."""

from __future__ import annotations

import contextlib
import os
import warnings
from pathlib import Path
from typing import Any

import mlflow.pyfunc
import pandas as pd


class CouplerRunModel(mlflow.pyfunc.PythonModel):
    """``predict(rows)``: ``FinishedRun(run directory).predict(rows)``; rows is a DataFrame with the training columns.
    ``params={"proba": True}``: the class probabilities (``FinishedRun.predict_proba``) instead of the labels."""

    def load_context(self, context) -> None:
        from coupler.finished_run import FinishedRun

        self.run = FinishedRun(context.artifacts["run"])

    # a DataFrame with the training columns: the run checks them itself (FinishedRun.transform)
    def predict(self, context, model_input: pd.DataFrame, params: dict[str, Any] | None = None):
        if (params or {}).get("proba"):
            return self.run.predict_proba(model_input)
        return self.run.predict(model_input)


def save_pyfunc(sealed_run: Path, manifest: dict, target: Path) -> Path:
    """Write the pyfunc model of ``sealed_run`` into ``target``: the class, the run directory as its artifact
    ``run``, and the requirements the run recorded (given, so that MLflow does not start a process to infer them)."""
    from importlib import metadata

    libraries = manifest.get("libraries") or {}
    model = (manifest.get("components") or {}).get("model") or {}
    requirements = {"coupler": libraries.get("coupler") or manifest.get("coupler_version"),
                    "coupler-mlflow": metadata.version("coupler-mlflow"),
                    model.get("distribution"): model.get("version")}
    pinned = sorted(f"{name}=={version}" if version else name for name, version in requirements.items() if name)
    from mlflow.models import ModelSignature
    from mlflow.types import ParamSchema, ParamSpec

    # no input schema: the run itself checks its columns (FinishedRun.transform); the one param it takes
    signature = ModelSignature(params=ParamSchema([ParamSpec("proba", "boolean", False)]))
    with _quiet():
        mlflow.pyfunc.save_model(path=str(target), python_model=str(Path(__file__).with_name("model_code.py")),
                                 artifacts={"run": str(sealed_run)}, pip_requirements=pinned, signature=signature)
    return target


@contextlib.contextmanager
def _quiet():
    """No progress bar while MLflow copies the run into the model, and none of its advice on type hints and input
    examples (the run checks its own input)."""
    previous = os.environ.get("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR")
    os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "false"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            yield
    finally:
        if previous is None:
            os.environ.pop("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", None)
        else:
            os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = previous
