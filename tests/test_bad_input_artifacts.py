"""The bad-input corpus, point 1 of issue #13: no code from a run directory, and no traceback from a damaged one.

Each case tampers with one artifact of a finished run (or of an interrupted one, or of a pretrained model
directory) the way someone handing over a run directory could, recomputes the run's checksums as they would
(``reseal``), and drives the real CLI: ``coupler evaluate`` / ``predict`` / ``train resume=``. Every case asserts
one ``coupler: error:`` line naming the file and the problem, exit 2, no traceback, the files that were there
unchanged, and, for a planted gadget, that its code did not run (it would have written a marker file).

Formats that can carry code get a planted gadget: skops (a type node naming ``builtins.eval``; and a tree of a
trusted type whose indices point outside it, which crashed the process), Lightning
checkpoints (a pickled object whose ``__reduce__`` calls ``exec``), Hugging Face directories (an ``auto_map`` to a
Python file beside ``config.json``, and pickled ``pytorch_model.bin`` weights). Formats that cannot (XGBoost's UBJSON,
safetensors, ``network.json``) get damaged files and absurd sizes, and XGBoost trees whose node indices point
outside them (its parser and predictor follow them unchecked). The runs are the smallest: iris with logistic
regression, XGBoost with 5 rounds, an LSTM for one epoch, a one-layer BERT of width 8 for one epoch.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
import zipfile
from pathlib import Path

import pytest

from coupler.testing import train_run
from tests import corpus
from tests.conftest import coupler_process
from tests.corpus import untouched

UNSEALED = ("manifest.json", "train.log")


def refused(result, *fragments: str, rc: int = 2) -> str:
    """``corpus.refused``, and the error is one line indeed: no continuation lines of a library's own text (torch's
    and transformers' reasons span several) after it."""
    line = corpus.refused(result, *fragments, rc=rc)
    after = result.err.splitlines()[result.err.splitlines().index(line) + 1:]
    assert all(text.startswith("coupler:") for text in after), f"the error goes on after its line:\n{result.err}"
    return line


# --- tampering helpers ----------------------------------------------------------------------------------------


def reseal(run_dir: Path) -> None:
    """Recompute every checksum of the run's manifest, new files included, and its seal: what someone who tampered
    with a run on purpose would do, so that the loaders themselves are what is tested."""
    manifest_path = run_dir / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    for path in sorted(run_dir.rglob("*")):
        relative = path.relative_to(run_dir).as_posix()
        if path.is_file() and relative not in UNSEALED:
            manifest["files"][relative] = hashlib.sha256(path.read_bytes()).hexdigest()
    if "seal" in manifest:  # the manifest's own checksum, recomputed too
        from coupler.run_directory import seal

        manifest["seal"] = seal(manifest)
    manifest_path.write_text(json.dumps(manifest, indent=2))


def copy_run(source: Path, tmp_path: Path, name: str = "run") -> Path:
    """A copy of a shared (read-only) run to tamper with."""
    return Path(shutil.copytree(source, tmp_path / name))


def marker_code(marker: Path) -> str:
    """Python that leaves ``marker`` behind if it ever runs."""
    return f"open({str(marker)!r}, 'w').write('the planted code ran')"


class PickleGadget:
    """An object whose unpickling calls ``exec``: what a malicious checkpoint or ``pytorch_model.bin`` holds."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return exec, (marker_code(self.marker),)


def plant_skops_eval(path: Path, code: str) -> None:
    """The issue's reproduction: an attribute node of the estimator that skops rebuilds as
    ``builtins.eval(code)`` (a ``LossNode`` whose constructor is ``eval`` and whose args are one string)."""
    with zipfile.ZipFile(path) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    schema = json.loads(members["schema.json"])
    ids = iter(range(10**6, 10**7))

    def json_node(value):
        return {"__class__": "str", "__module__": "builtins", "__loader__": "JsonNode", "content": json.dumps(value),
                "is_json": True, "__id__": next(ids)}

    attributes = schema["content"]  # the estimator's __dict__, a DictNode
    attributes["content"]["gadget"] = {
        "__class__": "eval", "__module__": "builtins", "__loader__": "LossNode",
        "__reduce__": {"args": {"__class__": "tuple", "__module__": "builtins", "__loader__": "TupleNode",
                                "content": [json_node(code)]}},
        "content": json_node(None), "__id__": next(ids),
    }
    attributes["key_types"]["content"].append({"__class__": "str", "__module__": "builtins", "__loader__": "TypeNode",
                                               "__id__": next(ids)})
    members["schema.json"] = json.dumps(schema).encode()
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)


def iris_rows(tmp_path: Path) -> Path:
    """Three rows of iris features: the input of ``coupler predict``."""
    path = tmp_path / "rows.csv"
    path.write_text("sepal length (cm),sepal width (cm),petal length (cm),petal width (cm)\n"
                    "5.1,3.5,1.4,0.2\n6.2,2.9,4.3,1.3\n7.7,3.0,6.1,2.3\n")
    return path


def reload(coupler_cli, command: str, run_dir: Path, tmp_path: Path):
    """``coupler evaluate RUN`` or ``coupler predict RUN rows.csv out.csv``."""
    if command == "evaluate":
        return coupler_cli("evaluate", str(run_dir))
    return coupler_cli("predict", str(run_dir), str(iris_rows(tmp_path)), str(tmp_path / "out.csv"))


# --- one small run per engine (module scope; the tests tamper with copies) -------------------------------------


@pytest.fixture(scope="module")
def xgboost_run(tmp_path_factory) -> Path:
    return train_run(tmp_path_factory.mktemp("xgboost"), "model=xgboost", "model.num_boost_round=5")[1]


@pytest.fixture(scope="module")
def lstm_run(tmp_path_factory) -> Path:
    return train_run(tmp_path_factory.mktemp("lstm"), "model=lstm", "trainer.max_epochs=1")[1]


def write_tiny_bert(directory: Path) -> Path:
    """A pretrained-model directory as ``save_pretrained`` writes it: a BERT of width 8, one layer, a word vocabulary."""
    from transformers import BertConfig, BertModel, BertTokenizerFast

    from coupler_transformer.sample import NEGATIVE, POSITIVE, SUBJECTS

    directory.mkdir(parents=True)
    words = sorted({w for phrase in SUBJECTS for w in phrase.split()} | set(POSITIVE) | set(NEGATIVE)
                   | {"was", "not", ",", ".", "!"})
    (directory / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words]) + "\n")
    BertTokenizerFast(vocab_file=str(directory / "vocab.txt")).save_pretrained(str(directory))
    config = BertConfig(vocab_size=len(words) + 5, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=16, max_position_embeddings=64)
    BertModel(config).save_pretrained(str(directory))
    return directory


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory) -> Path:
    return write_tiny_bert(tmp_path_factory.mktemp("bert") / "tiny-bert")


@pytest.fixture(scope="module")
def reviews(tmp_path_factory) -> Path:
    from coupler_transformer.sample import write_sentiment_csv

    return write_sentiment_csv(tmp_path_factory.mktemp("reviews") / "reviews.csv", rows=40)


@pytest.fixture(scope="module")
def hf_run(tmp_path_factory, tiny_bert, reviews) -> Path:
    return train_run(tmp_path_factory.mktemp("hf"), "data=text_csv", f"data.path={reviews}", "model=hf_transformer",
                     f"model.path={tiny_bert}", "model.max_length=32", "trainer.max_epochs=1")[1]


# --- scikit-learn: skops ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["evaluate", "predict"])
def test_skops_builtins_eval_gadget_is_refused_by_its_type_name(coupler_cli, iris_run, tmp_path, command):
    run_dir, marker = copy_run(iris_run, tmp_path), tmp_path / "marker"
    plant_skops_eval(run_dir / "model" / "model.skops", marker_code(marker))
    reseal(run_dir)
    with untouched(run_dir):
        result = reload(coupler_cli, command, run_dir, tmp_path)
    refused(result, "model.skops", "builtins.eval", "does not trust", "retrain")
    assert not marker.exists(), "the code planted in model.skops ran"


@pytest.fixture(scope="module")
def forest_run(tmp_path_factory) -> Path:
    return train_run(tmp_path_factory.mktemp("forest"), "model=random_forest", "model.params.n_estimators=3")[1]


def craft_tree_child(path: Path, child: int) -> None:
    """Rewrite a forest's first split to point at node ``child``: skops trusts ``sklearn.tree._tree.Tree`` (the
    forest needs it), and scikit-learn follows the index unchecked."""
    import skops.io

    forest = skops.io.load(path, trusted=skops.io.get_untrusted_types(file=path))
    tree = forest.estimators_[0].tree_
    state = tree.__getstate__()
    nodes = state["nodes"].copy()
    nodes["left_child"][0] = child
    tree.__setstate__({**state, "nodes": nodes})
    skops.io.dump(forest, path)


def test_skops_tree_with_an_index_outside_it_is_refused_not_a_crash(forest_run, tmp_path):
    # a fresh interpreter: before the check, this case killed the process with a segfault
    run_dir = copy_run(forest_run, tmp_path)
    craft_tree_child(run_dir / "model" / "model.skops", 10**8)
    reseal(run_dir)
    with untouched(run_dir):
        result = coupler_process("evaluate", str(run_dir), cwd=tmp_path)
    refused(result, "model.skops", "decision tree whose node 0 points outside", "retrain")


def test_skops_arrays_of_another_shape_are_one_clear_line(coupler_cli, iris_run, tmp_path):
    import numpy as np
    import skops.io

    run_dir = copy_run(iris_run, tmp_path)
    path = run_dir / "model" / "model.skops"
    estimator = skops.io.load(path, trusted=skops.io.get_untrusted_types(file=path))
    estimator.coef_ = np.zeros((3, 7))  # 7 weights a class for the run's 4 inputs
    skops.io.dump(estimator, path)
    reseal(run_dir)
    with untouched(run_dir):
        result = coupler_cli("evaluate", str(run_dir))
    refused(result, "LogisticRegression cannot predict", "model.skops was changed", "retrain")


@pytest.mark.parametrize("content, problem", [
    (b"not a zip archive", "not a skops file"),
    (None, "not a skops file"),  # a zip whose schema skops cannot read (a node without its keys)
], ids=["skops_not_a_zip", "skops_schema_unreadable"])
def test_a_damaged_skops_file_is_one_clear_line(coupler_cli, iris_run, tmp_path, content, problem):
    run_dir = copy_run(iris_run, tmp_path)
    path = run_dir / "model" / "model.skops"
    if content is None:
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("schema.json", json.dumps({"__class__": "dict", "__module__": "builtins",
                                                        "__loader__": "DictNode", "content": {}, "__id__": 1}))
    else:
        path.write_bytes(content)
    reseal(run_dir)
    with untouched(run_dir):
        result = coupler_cli("evaluate", str(run_dir))
    refused(result, "model.skops", problem, "retrain")


# --- XGBoost: UBJSON (data only: no code can ride in it) -----------------------------------------------------------


@pytest.mark.parametrize("damage", ["garbage", "truncated"], ids=["ubj_garbage", "ubj_truncated"])
def test_a_damaged_xgboost_model_is_one_clear_line(coupler_cli, xgboost_run, tmp_path, damage):
    run_dir = copy_run(xgboost_run, tmp_path)
    path = run_dir / "model" / "model.ubj"
    path.write_bytes(b"\x00\xffnot ubjson" * 8 if damage == "garbage" else path.read_bytes()[: path.stat().st_size // 2])
    reseal(run_dir)
    with untouched(run_dir):
        result = coupler_cli("evaluate", str(run_dir))
    refused(result, "model.ubj", "XGBoost cannot read it safely", "not UBJSON", "retrain")


def patch_ubjson_array(path: Path, key: str, index: int, value: int) -> None:
    """Set element ``index`` of the first typed int32 array named ``key`` in a UBJSON file (XGBoost writes a
    tree's node arrays as ``[$l#`` + count + big-endian int32 values)."""
    import struct

    data = bytearray(path.read_bytes())
    at = data.index(key.encode() + b"[$l#") + len(key) + 4
    count_size = {b"i": 1, b"U": 1, b"I": 2, b"l": 4, b"L": 8}[bytes(data[at:at + 1])]
    at += 1 + count_size + 4 * index
    data[at:at + 4] = struct.pack(">i", value)
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("key, value, problem", [
    ("left_children", 10**8, "children lie outside it"),
    ("split_indices", 10**6, "splits on a feature outside"),
], ids=["ubj_tree_child_outside", "ubj_tree_feature_outside"])
def test_a_crafted_xgboost_tree_is_refused_not_a_crash(xgboost_run, tmp_path, key, value, problem):
    # a fresh interpreter: XGBoost follows these indices unchecked
    run_dir = copy_run(xgboost_run, tmp_path)
    patch_ubjson_array(run_dir / "model" / "model.ubj", key, 0, value)
    reseal(run_dir)
    with untouched(run_dir):
        result = coupler_process("evaluate", str(run_dir), cwd=tmp_path)
    refused(result, "model.ubj", "tree 0", problem, "retrain")


@pytest.mark.parametrize("overrides, fragments", [
    (("model=xgboost", "model.num_boost_round=5", "model.params.max_depth={a:1}"),
     ("model.params.max_depth", "{'a': 1}", "a whole number (deepest level of a tree")),
    (("model=lstm", "trainer.max_epochs=1", "model.hidden_size={a:1}"),
     ("model.hidden_size", "{'a': 1}", "a whole number")),
], ids=["xgboost_max_depth_mapping", "lstm_hidden_size_mapping"])
def test_a_nested_value_for_a_scalar_parameter_names_the_key(coupler_cli, tmp_path, overrides, fragments):
    result = coupler_cli("train", *overrides, "hydra.run.dir=run")
    refused(result, *fragments)
    assert not (tmp_path / "run").exists()


# --- the torch engine: network.json, safetensors, last.ckpt ----------------------------------------------------


def tamper_network(run_dir: Path, **changes) -> None:
    path = run_dir / "model" / "network.json"
    network = json.loads(path.read_text())
    network.update(changes)
    path.write_text(json.dumps(network))


@pytest.mark.parametrize("damage, fragments", [
    (lambda run: tamper_network(run, n_outputs=2**40), ("network.json", "head.bias", "weights.safetensors", "retrain")),
    (lambda run: tamper_network(run, architecture={"cell": "lstm", "layers": 1, "hidden_size": 32,
                                                   "bidirectional": False, "dropout": 0.0, "skip": True,
                                                   "sequence_shape": [2**20, 2**20]}),
     ("network.json", "weights.safetensors", "do not belong together")),
    (lambda run: tamper_network(run, n_inputs="4; __import__('os')"), ("network.json", "n_inputs=", "retrain")),
    (lambda run: (run / "model" / "network.json").write_text("{not json"), ("network.json", "is not JSON")),
    (lambda run: (run / "model" / "weights.safetensors").write_bytes(b"\x00garbage" * 16),
     ("weights.safetensors", "not a safetensors file")),
], ids=["network_json_absurd_output_size", "network_json_absurd_sequence_shape", "network_json_field_not_a_number",
        "network_json_not_json", "safetensors_garbage"])
def test_a_tampered_torch_artifact_is_refused_before_anything_is_allocated(coupler_cli, lstm_run, tmp_path, damage,
                                                                            fragments):
    run_dir = copy_run(lstm_run, tmp_path)
    damage(run_dir)
    reseal(run_dir)
    with untouched(run_dir):
        result = coupler_cli("evaluate", str(run_dir))
    refused(result, *fragments)


def interrupted_run(tmp_path: Path, checkpoint) -> Path:
    """The directory of an interrupted LSTM run: its overrides and a ``checkpoints/last.ckpt`` (written by
    ``checkpoint(path)``), which ``coupler train resume=DIR`` continues from."""
    run_dir = tmp_path / "interrupted"
    (run_dir / "checkpoints").mkdir(parents=True)
    (run_dir / "overrides.yaml").write_text("- model=lstm\n- trainer.max_epochs=2\n")
    checkpoint(run_dir / "checkpoints" / "last.ckpt")
    return run_dir


def save_gadget_checkpoint(marker: Path):
    def write(path: Path) -> None:
        import torch

        torch.save({"epoch": 0, "global_step": 0, "state_dict": {}, "loops": {}, "gadget": PickleGadget(marker)}, path)

    return write


@pytest.mark.parametrize("force_unsafe_load", [False, True],
                         ids=["checkpoint_pickle_gadget", "checkpoint_pickle_gadget_TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"])
def test_resume_refuses_a_checkpoint_holding_a_pickle_gadget(coupler_cli, tmp_path, monkeypatch, force_unsafe_load):
    marker = tmp_path / "marker"
    run_dir = interrupted_run(tmp_path, save_gadget_checkpoint(marker))
    if force_unsafe_load:  # torch reads it at each load: weights_only=None then means False
        monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    with untouched(run_dir / "checkpoints", run_dir / "overrides.yaml"):
        result = coupler_cli("train", f"resume={run_dir}")
    refused(result, "last.ckpt", "not plain data", "exec")
    assert not marker.exists(), "the code pickled in last.ckpt ran"


def test_resume_from_a_damaged_checkpoint_is_one_clear_line(coupler_cli, tmp_path):
    run_dir = interrupted_run(tmp_path, lambda path: path.write_bytes(b"PK\x03\x04 a broken zip"))
    with untouched(run_dir / "checkpoints", run_dir / "overrides.yaml"):
        result = coupler_cli("train", f"resume={run_dir}")
    refused(result, "last.ckpt", "not a checkpoint torch can read")
    assert "continue it with" not in result.err, "no advice to resume from the checkpoint just refused"


# --- Hugging Face directories: a run's model/pretrained/, and model.path ----------------------------------------


def plant_auto_map(directory: Path, marker: Path) -> None:
    """An ``auto_map`` in ``config.json`` to a Python file in the directory, for a model_type transformers does not
    ship: transformers would import that file if trust_remote_code allowed it (or if a user said yes at its
    prompt)."""
    config = json.loads((directory / "config.json").read_text())
    config.update(model_type="coupler_gadget", auto_map={"AutoConfig": "gadget.GadgetConfig",
                                                         "AutoModel": "gadget.GadgetModel"})
    (directory / "config.json").write_text(json.dumps(config))
    (directory / "gadget.py").write_text(
        f"{marker_code(marker)}\nfrom transformers import BertConfig, BertModel\n\n\n"
        f"class GadgetConfig(BertConfig):\n    model_type = 'coupler_gadget'\n\n\n"
        f"class GadgetModel(BertModel):\n    config_class = GadgetConfig\n")


def test_a_runs_pretrained_config_with_auto_map_is_refused(coupler_cli, hf_run, tmp_path):
    run_dir, marker = copy_run(hf_run, tmp_path), tmp_path / "marker"
    plant_auto_map(run_dir / "model" / "pretrained", marker)
    reseal(run_dir)
    with untouched(run_dir):
        result = coupler_cli("evaluate", str(run_dir))
    refused(result, "pretrained", "maps AutoConfig to gadget.GadgetConfig", "never runs (trust_remote_code=False)")
    assert not marker.exists()


def test_auto_map_code_does_not_run_even_when_a_user_answers_yes(hf_run, coupler_cli, monkeypatch, tmp_path):
    """transformers asks on the terminal whether to run a directory's custom code unless told
    ``trust_remote_code=False``; a user who types y must not run the run's code (stdin answers "y")."""
    import io

    run_dir, marker = copy_run(hf_run, tmp_path), tmp_path / "marker"
    plant_auto_map(run_dir / "model" / "pretrained", marker)
    reseal(run_dir)
    monkeypatch.setattr(sys, "stdin", io.StringIO("y\ny\ny\n"))
    with untouched(run_dir):
        result = coupler_cli("evaluate", str(run_dir))
    refused(result, "maps AutoConfig to gadget.GadgetConfig")
    assert "[y/N]" not in result.out + result.err, "transformers asked whether to run the directory's code"
    assert sys.stdin.read() == "y\ny\ny\n", "nothing read the answers"
    assert not marker.exists(), "the run directory's gadget.py ran"


def test_model_path_with_pickled_weights_is_refused_by_name(coupler_cli, tiny_bert, reviews, tmp_path):
    import torch

    directory, marker = tmp_path / "pickled-bert", tmp_path / "marker"
    shutil.copytree(tiny_bert, directory)
    (directory / "model.safetensors").unlink()
    torch.save({"gadget": PickleGadget(marker)}, directory / "pytorch_model.bin")
    with untouched(directory):
        result = coupler_cli("train", "data=text_csv", f"data.path={reviews}", "model=hf_transformer",
                             f"model.path={directory}", "model.max_length=32", "trainer.max_epochs=1",
                             "hydra.run.dir=run")
    refused(result, "model.path=", "pytorch_model.bin", "pickle", "model.safetensors")
    assert not marker.exists(), "the code pickled in pytorch_model.bin ran"
    assert not (tmp_path / "run").exists()


def test_model_path_with_auto_map_is_refused(coupler_cli, tiny_bert, reviews, tmp_path):
    directory, marker = tmp_path / "custom-bert", tmp_path / "marker"
    shutil.copytree(tiny_bert, directory)
    plant_auto_map(directory, marker)
    with untouched(directory):
        result = coupler_cli("train", "data=text_csv", f"data.path={reviews}", "model=hf_transformer",
                             f"model.path={directory}", "model.max_length=32", "trainer.max_epochs=1",
                             "hydra.run.dir=run")
    refused(result, "model.path=", "maps AutoConfig to gadget.GadgetConfig", "never runs")
    assert not marker.exists()
    assert not (tmp_path / "run").exists()
