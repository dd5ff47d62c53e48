"""The torch plugin passes Coupler's conformance kit: its optimizers step, its schedulers schedule, its
callbacks build and their hooks are lifecycle hooks (in a run of its smallest model, since they act only inside
the torch engine), and model=mlp round-trips each task."""

from coupler.testing import check_plugin

SMALL_MLP = ["model=mlp", "model.hidden=[8]"]


def test_the_torch_plugin_conforms():
    check_plugin("torch", overrides={"checkpoint": SMALL_MLP, "lr_monitor": SMALL_MLP, "torchscript": SMALL_MLP})
