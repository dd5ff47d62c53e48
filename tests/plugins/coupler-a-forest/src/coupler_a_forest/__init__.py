"""Registers ``random_forest`` (coupler-sklearn's) and ``a_forest_only``: the clash must fail this plugin,
whatever the load order, and roll back ``a_forest_only`` with it."""

from coupler import hookimpl

COUPLER_API = ">=1.0,<2"


def _not_a_model(task, seed):
    raise AssertionError("coupler-a-forest's models must never be built: the clash fails the plugin")


@hookimpl
def register_models(register):
    register("a_forest_only", _not_a_model)
    register("random_forest", _not_a_model)
