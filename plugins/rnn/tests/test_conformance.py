"""The rnn plugin passes Coupler's conformance kit: lstm and gru round-trip each task on the kit's table (read
as one feature per step), and both data loaders load, the same twice."""

from coupler.testing import check_plugin


def test_the_rnn_plugin_conforms():
    small = ["model.hidden_size=8"]
    check_plugin("rnn", overrides={"lstm": small, "gru": small, "sequences": ["data.rows=60", "data.steps=8"],
                                   "timeseries": ["data.length=300"]})
