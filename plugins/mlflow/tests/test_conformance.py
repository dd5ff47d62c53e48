"""The mlflow plugin passes Coupler's conformance kit: it loads, declares its API range, and its tracker's schema,
config and factory agree (the kit runs no training for a tracker; this plugin's own tests do)."""

from coupler.testing import check_plugin


def test_the_mlflow_plugin_conforms():
    check_plugin("mlflow")
