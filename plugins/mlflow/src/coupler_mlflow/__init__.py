"""MLflow tracking for Coupler. ``coupler_mlflow.plugin`` is the entry point (imports no mlflow);
``coupler_mlflow.tracker`` is the tracker a run gets, imported when a run starts; ``coupler_mlflow.recorder`` writes
its events into MLflow, in the background process ``coupler_mlflow.logger`` (or in the run's own);
``coupler_mlflow.pyfunc.CouplerRunModel`` is the pyfunc model class that loads a logged run directory."""
