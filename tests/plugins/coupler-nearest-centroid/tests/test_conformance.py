"""The plugin's own test: Coupler's conformance kit checks every component it registers."""

from coupler.testing import check_plugin


def test_the_plugin_conforms():
    passed = check_plugin("nearest_centroid")
    assert "model:nearest_centroid:round_trip_binary" in passed
