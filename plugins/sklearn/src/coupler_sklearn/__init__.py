"""scikit-learn models for Coupler. ``coupler_sklearn.plugin`` is the entry point (imports no sklearn);
``coupler_sklearn.model`` holds the estimator wrapper, imported when a model is built."""
