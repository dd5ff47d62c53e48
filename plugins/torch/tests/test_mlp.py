"""``model=mlp``: it learns a real table, and a bad parameter is named with what is allowed. (Each task's
round trip through a run directory is the conformance kit's, in test_conformance.py; the comparison with logistic
regression over five seeds is benchmarks/mlp_vs_logistic.py.)"""

from __future__ import annotations

import json

import pytest
from coupler.errors import ConfigError
from coupler.testing import train_run
from coupler_torch.plugin import build_mlp


def test_the_mlp_learns_breast_cancer(tmp_path):
    results, run_dir = train_run(tmp_path, "model=mlp", "data=breast_cancer", "trainer.max_epochs=20")
    # always answering the majority class scores 0.63; logistic regression about 0.97
    assert results["val"]["accuracy"] > 0.93 and results["test"]["accuracy"] > 0.9, results
    network = json.loads((run_dir / "model" / "network.json").read_text())
    assert network["architecture"] == {"hidden": [64], "dropout": 0.0}
    assert (network["n_inputs"], network["n_outputs"]) == (30, 2)


@pytest.mark.parametrize("key, value, allowed", [
    ("hidden", 64, "a list of layer widths"),
    ("hidden", [64, 0], "each a whole number of at least 1"),
    ("dropout", 1.0, "from 0 up to \\(not including\\) 1"),
    ("threads", 0, "at least 1, or null"),
    ("batch_size", 0, "at least 1"),
])
def test_a_bad_parameter_names_the_key_and_what_is_allowed(key, value, allowed):
    with pytest.raises(ConfigError, match=f"^model.{key}=.* is not allowed: .*{allowed}"):
        build_mlp("binary", 0, **{key: value})
