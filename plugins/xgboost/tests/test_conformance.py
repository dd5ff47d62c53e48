"""The xgboost plugin passes Coupler's conformance kit (binary, multiclass and regression round trips)."""

from coupler.testing import check_plugin


def test_the_xgboost_plugin_conforms():
    # 20 rounds instead of the default 500: the kit checks the contract (fit, save, reload, predict), not accuracy
    check_plugin("xgboost", overrides={"xgboost": ["model.num_boost_round=20"]})
