"""``model=mlp``: it learns a real table, and a bad parameter is named with what is allowed. (Each task's
round trip through a run directory is the conformance kit's, in test_conformance.py; the comparison with logistic
regression over five seeds is benchmarks/mlp_vs_logistic.py.)"""

from __future__ import annotations

import json

import pytest

from coupler.testing import train_run


def test_the_mlp_learns_breast_cancer(tmp_path):
    results, run_dir = train_run(tmp_path, "model=mlp", "data=breast_cancer", "trainer.max_epochs=20")
    # always answering the majority class scores 0.63; logistic regression about 0.97
    assert results["val"]["accuracy"] > 0.93 and results["test"]["accuracy"] > 0.9, results
    network = json.loads((run_dir / "model" / "network.json").read_text())
    assert network["architecture"] == {"hidden": [64], "dropout": 0.0}
    assert (network["n_inputs"], network["n_outputs"]) == (30, 2)


#: a data set that cannot be read: a refusal that names the model's key came before any data was read
UNREADABLE_DATA = ("data=csv", "data.path=absent.csv", "data.target=y")


@pytest.mark.parametrize("override, allowed", [
    ("model.hidden=64", "a list of a whole number values"),
    ("model.dropout=1.0", "a number >= 0 and < 1"),
    ("model.threads=0", "null, or a whole number >= 1"),
    ("model.batch_size=0", "a whole number >= 1"),
    ("model.hiden=[8]", "Did you mean 'hidden'"),
])
def test_a_bad_parameter_is_one_line_naming_the_key_before_any_data_is_read(coupler_cli, tmp_path, override, allowed):
    result = coupler_cli("train", "model=mlp", override, *UNREADABLE_DATA, "hydra.run.dir=run")
    assert result.rc == 2 and len(result.error_lines) == 1 and "Traceback" not in result.err, result.err
    key = override.partition("=")[0]
    assert result.error_lines[0].startswith(f"coupler: error: {key}=") and " is not allowed: " in result.error_lines[0]
    assert allowed in result.error_lines[0]
    assert not (tmp_path / "run").exists()


def test_a_hidden_width_below_one_is_refused_when_the_model_is_built():
    """The one check the schema cannot express (a range for each entry of a list) stays in MLP.__init__."""
    from coupler.errors import ConfigError
    from coupler.plugin_manager import get_plugin_manager

    mlp = get_plugin_manager().registry.get("model", "mlp")
    with pytest.raises(ConfigError, match=r"^model.hidden=\[64, 0\] is not allowed: .*each a whole number of at least 1"):
        mlp.build("model", {"name": "mlp", "hidden": [64, 0]}, task="binary", seed=0)


def test_the_schema_holds_the_defaults_a_run_trains_with():
    """The keys and defaults of the deleted conf/model/mlp.yaml: a user's run did not change."""
    from coupler.schema import defaults
    from coupler_torch.plugin import MLPSchema

    assert defaults(MLPSchema) == {"hidden": [64], "dropout": 0.0, "batch_size": 64, "threads": 1}
