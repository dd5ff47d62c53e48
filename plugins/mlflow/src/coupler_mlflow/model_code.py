"""The pyfunc's model code (MLflow's "models from code"): MLflow copies this file beside the model and runs it on
load, so the model is the importable ``CouplerRunModel`` and nothing is pickled."""

import mlflow.models

from coupler_mlflow.pyfunc import CouplerRunModel

mlflow.models.set_model(CouplerRunModel())
