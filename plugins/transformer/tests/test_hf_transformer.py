"""model=hf_transformer: fine-tuning the packaged all-MiniLM-L6-v2 from its local directory (offline), the loss
falls, the run reloads to the same numbers, and model.path errors say what a valid directory holds."""

from __future__ import annotations

import csv
import json
import os
import time

import pandas as pd
import pytest

from coupler.config import compose
from coupler.errors import ConfigError
from coupler.finished_run import FinishedRun
from coupler.plugin_manager import get_plugin_manager
from coupler.testing import read_metrics, train_run
from coupler_transformer.hf import HFTransformer, check_model_directory
from coupler_transformer.sample import write_sentiment_csv


def test_fine_tuning_minilm_lowers_the_training_loss_and_reloads(minilm, tmp_path, monkeypatch):
    data = write_sentiment_csv(tmp_path / "reviews.csv", rows=60, seed=1, noise=0.0)
    started = time.monotonic()
    (tmp_path / "pretrained").symlink_to(minilm, target_is_directory=True)
    monkeypatch.chdir(tmp_path)  # model.path relative to where the run was trained
    metrics, run_dir = train_run(tmp_path, "data=text_csv", f"data.path={data}", "model=hf_transformer",
                                 "model.path=pretrained", "model.max_length=24", "model.batch_size=8",
                                 "+optimizer.lr=0.0001", "trainer.max_epochs=3", "trainer.progress_bar=false")
    elapsed = time.monotonic() - started
    with open(run_dir / "history.csv") as file:
        losses = [float(row["train_loss"]) for row in csv.DictReader(file)]
    print(f"fine-tune: {elapsed:.1f}s, train_loss per epoch {losses}, metrics {metrics}")
    assert len(losses) == 3 and losses[-1] < losses[0]
    assert os.environ["HF_HUB_OFFLINE"] == "1" and os.environ["TRANSFORMERS_OFFLINE"] == "1"
    saved = json.loads((run_dir / "model" / "network.json").read_text())
    assert saved["pretrained"]["config"]["model_type"] == "bert"
    assert sorted(p.name for p in (run_dir / "model").iterdir()) == ["network.json", "pretrained", "weights.safetensors"]
    assert (run_dir / "model" / "pretrained" / "config.json").is_file()
    (tmp_path / "pretrained").unlink()  # the pretrained model is gone: the run reloads from its own copy
    monkeypatch.chdir(run_dir)
    finished = FinishedRun(run_dir, get_plugin_manager())
    assert finished.evaluate() == read_metrics(run_dir)
    pd.DataFrame({"text": ["the film was wonderful.", "the plot was not good!"]}).to_csv(tmp_path / "t.csv",
                                                                                       index=False)
    assert finished.predict(tmp_path / "t.csv", tmp_path / "out.csv") == 2


@pytest.mark.parametrize("make, fragment", [
    (lambda tmp: None, "a directory holding a pretrained"),
    (lambda tmp: (tmp / "file.txt").write_text("x") and tmp / "file.txt", "not a directory"),
    (lambda tmp: tmp, "no config.json"),
])
def test_a_missing_or_wrong_model_path_is_a_config_error(tmp_path, make, fragment):
    with pytest.raises(ConfigError, match=fragment) as caught:
        HFTransformer(task="binary", seed=0, path=make(tmp_path))
    assert "model.path" in str(caught.value) and "config.json" in str(caught.value)


def test_a_missing_model_path_is_a_config_error_when_training_needs_it(tmp_path):
    # built without it (a finished run reloads from its own copy), refused by name as soon as fit needs it
    data = write_sentiment_csv(tmp_path / "reviews.csv", rows=20)
    with pytest.raises(ConfigError, match="model.path.*does not exist") as caught:
        train_run(tmp_path, "data=text_csv", f"data.path={data}", "model=hf_transformer",
                  f"model.path={tmp_path / 'absent'}")
    assert "config.json" in str(caught.value)


def test_a_directory_without_weights_or_tokenizer_is_refused(tmp_path, minilm):
    (tmp_path / "config.json").write_text((minilm / "config.json").read_text())
    with pytest.raises(ConfigError, match="no weights"):
        check_model_directory(tmp_path)
    (tmp_path / "model.safetensors").write_bytes(b"")
    with pytest.raises(ConfigError, match="no tokenizer"):
        check_model_directory(tmp_path)


def test_the_cli_names_model_path(coupler_cli, tmp_path):
    data = write_sentiment_csv(tmp_path / "reviews.csv", rows=20)
    result = coupler_cli("train", "data=text_csv", f"data.path={data}", "model=hf_transformer",
                         f"model.path={tmp_path}", "hydra.run.dir=run")
    assert result.rc != 0
    assert "model.path" in result.err and "config.json" in result.err


@pytest.mark.parametrize("override, allowed", [("model.max_length=1", "a whole number >= 2"),
                                                ("model.dropout=-0.1", "a number >= 0 and < 1"),
                                                ("model.freeze=yes", "true or false"),
                                                ("model.batch_size=0", "a whole number >= 1")])
def test_the_schema_refuses_a_bad_setting_naming_the_key(override, allowed):
    with pytest.raises(ConfigError, match=f"^{override.split('=')[0]}=.* is not allowed: {allowed}"):
        compose(["data=iris", "model=hf_transformer", "model.path=anywhere", override], get_plugin_manager())


def test_max_length_beyond_the_pretrained_models_positions_is_refused_before_any_text_is_read(minilm):
    with pytest.raises(ConfigError, match="model.max_length=1000 .*at most 512"):
        HFTransformer(task="binary", seed=0, path=minilm, max_length=1000, batch_size=16, dropout=0.1, freeze=False)


def test_a_frozen_encoder_stays_in_eval_mode_while_the_head_trains(minilm):
    network = HFTransformer(task="binary", seed=0, path=minilm, freeze=True).build_network(24, 2)
    assert not network.encoder.training, "frozen from the first batch on, before anything calls train()"
    network.train()
    assert network.training and network.head.training and network.dropout.training
    assert not network.encoder.training, "a frozen encoder's dropout would add noise to fixed features"
    assert not any(p.requires_grad for p in network.encoder.parameters())
