"""Optuna search for Coupler. ``coupler_optuna.plugin`` is the entry point (imports no Optuna); the sweeper
(``hydra_plugins.coupler_optuna_sweeper``) runs the study through ``coupler_optuna.search``; the space syntax is
``coupler_optuna.space``; the study's record (``trials.csv``, ``best.yaml``) ``coupler_optuna.record``."""
