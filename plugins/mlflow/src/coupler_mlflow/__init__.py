"""MLflow tracking for Coupler. ``coupler_mlflow.plugin`` is the entry point (imports no mlflow);
``coupler_mlflow.tracker`` logs a run, imported when a run starts; ``coupler_mlflow.pyfunc.CouplerRunModel`` is the
pyfunc model class that loads a logged run directory."""
