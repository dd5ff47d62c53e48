"""The torch plugin passes Coupler's conformance kit: its optimizers step, its schedulers schedule, its
callbacks build and their hooks are lifecycle hooks."""

from coupler.testing import check_plugin


def test_the_torch_plugin_conforms():
    check_plugin("torch")
