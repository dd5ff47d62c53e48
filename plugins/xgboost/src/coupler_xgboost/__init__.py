"""XGBoost for Coupler. ``coupler_xgboost.plugin`` is the entry point (imports no xgboost);
``coupler_xgboost.model`` holds the engine, imported when a run builds the model."""
