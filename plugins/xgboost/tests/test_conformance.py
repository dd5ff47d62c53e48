"""The xgboost plugin passes Coupler's conformance kit (binary, multiclass and regression round trips)."""

from coupler.testing import check_plugin


def test_the_xgboost_plugin_conforms():
    check_plugin("xgboost")
