"""The CNN through real runs: digits accuracy, reload, resume after a SIGKILL, augmentation, bad settings."""

from __future__ import annotations

import io
import json
import sys
import time
from pathlib import Path

import pytest
import torch

from coupler.errors import ConfigError, CouplerError
from coupler.finished_run import FinishedRun
from coupler.plugin_manager import get_plugin_manager
from coupler.testing import read_metrics, train_run
from coupler_cnn.model import CNN
from coupler_torch.testing import kill_and_resume

#: a narrower network and 10 epochs instead of the defaults' 100 (README's 0.989): test accuracy 0.92 (seed 0),
#: against 0.10 for the majority class. The defaults' figure is checked by benchmarks/cnn_digits_accuracy.py.
DIGITS = ("data=digits", "model=cnn", "model.width=16", "trainer.max_epochs=10")


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    """``coupler train data=digits model=cnn``, small, in this process (as ``coupler_cli`` runs it, for the whole
    module) with stderr a file, not a terminal: what the run writes there, and whether a progress bar is drawn."""
    from coupler import train_app

    directory = tmp_path_factory.mktemp("digits")
    stderr = io.StringIO()
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(directory)
        patch.setattr(sys, "argv", ["coupler-train", *DIGITS, f"hydra.run.dir={directory / 'run'}"])
        patch.setattr(sys, "stderr", stderr)
        rc = train_app.run()
    assert rc == 0, stderr.getvalue()
    return directory / "run", stderr.getvalue()


def test_digits_are_learned_and_no_progress_bar_is_drawn_on_a_pipe(digits_run):
    run_dir, stderr = digits_run
    assert read_metrics(run_dir)["test"]["accuracy"] >= 0.85
    assert "Epoch" not in stderr, "no progress bar when stderr is not a terminal"
    assert "data digits" in stderr, "the run's log reaches stderr"


def test_digits_run_saves_safetensors_and_reproduces_on_reload(digits_run, tmp_path):
    run_dir, _ = digits_run
    assert sorted(p.name for p in (run_dir / "model").iterdir()) == ["network.json", "weights.safetensors"]
    assert FinishedRun(run_dir, get_plugin_manager()).evaluate() == read_metrics(run_dir)
    from sklearn.datasets import load_digits

    frame = load_digits(as_frame=True).frame.drop(columns="target").head(20)
    frame.to_csv(tmp_path / "rows.csv", index=False)
    written = FinishedRun(run_dir, get_plugin_manager()).predict(tmp_path / "rows.csv", tmp_path / "out.csv")
    assert written == 20


@pytest.mark.slow
def test_a_run_resumed_from_a_checkpoint_older_than_its_last_epoch_replays_to_the_same_metrics(tmp_path):
    # resume_interval=3600: last.ckpt holds epoch 0 only; the run is killed epochs later, and the resume replays them.
    # (A checkpoint after every epoch, resume_interval=0, is killed and resumed in plugins/rnn's and
    # plugins/transformer's tests, through the same engine.)
    settings = ["data=digits", "model=cnn", "model.width=8", "trainer.max_epochs=12", "trainer.resume_interval=3600"]
    first_seen = []

    def a_few_epochs_after_the_checkpoint(last) -> bool:
        if last.exists() and not first_seen:
            first_seen.append(time.monotonic())
        return bool(first_seen) and time.monotonic() - first_seen[0] > 0.5

    assert kill_and_resume(tmp_path, settings, a_few_epochs_after_the_checkpoint)["epoch"] == 0


def test_resume_refuses_a_finished_run_and_a_directory_without_checkpoints(coupler_cli, tmp_path):
    (tmp_path / "empty").mkdir()
    result = coupler_cli("train", f"resume={tmp_path / 'empty'}")
    assert result.rc == 2 and "no checkpoints/last.ckpt" in result.err
    (tmp_path / "done").mkdir()
    (tmp_path / "done" / "manifest.json").write_text("{}")
    result = coupler_cli("train", f"resume={tmp_path / 'done'}")
    assert result.rc == 2 and "this run finished" in result.err
    result = coupler_cli("train", f"resume={tmp_path / 'empty'}", "model=cnn")
    assert result.rc == 2 and "drop the other arguments" in result.err


# --- augmentation ---------------------------------------------------------------------------------------------


def _model(**augment) -> CNN:
    model = CNN("multiclass", 0, augment={"flip": False, "crop": 0, "rotation": 0, "noise": 0.0, **augment})
    model.build_network(64, 10)
    return model


def test_augmentation_keeps_the_shape_and_changes_the_batch():
    x = torch.randn(32, 64)
    for options in ({"crop": 1}, {"rotation": 15}, {"noise": 0.1}, {"flip": True}):
        out = _model(**options).augment(x)
        assert out.shape == x.shape and not torch.equal(out, x), options


def test_a_flip_mirrors_some_images_and_leaves_the_others():
    x = torch.randn(64, 64)
    out = _model(flip=True).augment(x)
    images, flipped = x.reshape(64, 8, 8), out.reshape(64, 8, 8)
    same = [torch.equal(a, b) for a, b in zip(images, flipped)]
    mirrored = [torch.equal(a.flip(-1), b) for a, b in zip(images, flipped)]
    assert all(s or m for s, m in zip(same, mirrored)) and any(same) and any(mirrored)


def test_with_augmentation_off_the_batch_is_untouched():
    x = torch.randn(8, 64)
    assert torch.equal(_model().augment(x), x)


# --- bad settings ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("overrides, message", [
    (["data=digits", "model.kernel_size=4"], "model.kernel_size=4"),
    (["data=digits", "model.input_shape=[1,4,4]"], "a shape of 64 values"),
    (["data=wine"], "13 features are not a square image"),
    (["data=digits", "+model.augment.blur=1"], "model.augment.blur"),
    (["data=digits", "model.dropout=2"], "model.dropout=2"),
])
def test_a_bad_setting_names_the_key(tmp_path, overrides, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[")):
        train_run(tmp_path, "model=cnn", "trainer.max_epochs=1", *overrides)


def test_an_explicit_input_shape_is_used(tmp_path):
    results, run_dir = train_run(tmp_path, "data=digits", "model=cnn", "model.input_shape=[1,8,8]", "model.width=4",
                                 "trainer.max_epochs=1")
    assert json.loads((Path(run_dir) / "model" / "network.json").read_text())["architecture"]["input_shape"] == [1, 8, 8]


# --- image folders --------------------------------------------------------------------------------------------


def _stripes(directory: Path, per_class: int = 40) -> Path:
    """Two classes a CNN must look at pixels to tell apart: horizontal and vertical stripes, in colour."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for label, axis in (("horizontal", 0), ("vertical", 1)):
        (directory / label).mkdir(parents=True)
        for i in range(per_class):
            period = int(rng.integers(2, 5))
            wave = (np.arange(20) // period) % 2
            pattern = np.repeat(wave[:, None], 20, axis=1) if axis == 0 else np.repeat(wave[None, :], 20, axis=0)
            colour = rng.integers(60, 255, size=3)
            pixels = (pattern[:, :, None] * colour + rng.integers(0, 40, size=(20, 20, 3))).clip(0, 255)
            Image.fromarray(pixels.astype(np.uint8)).save(directory / label / f"{i}.png")
    return directory


def test_an_image_folder_trains_through_a_dataloader_with_workers_and_predicts_paths(tmp_path, monkeypatch, caplog):
    from torch.utils.data import DataLoader

    workers = []
    original = DataLoader.__init__

    def spy(self, *args, **kwargs):
        workers.append(kwargs.get("num_workers"))
        original(self, *args, **kwargs)

    monkeypatch.setattr(DataLoader, "__init__", spy)
    folder = _stripes(tmp_path / "images")
    results, run_dir = train_run(tmp_path, "data=image_folder", f"data.path={folder}", "model=cnn", "model.width=8",
                                 "model.batch_size=8", "model.input_shape=[3,16,16]", "trainer.max_epochs=15",
                                 "split.val=0.25", "split.test=0.25")
    assert workers and set(workers) == {2}, "image files are read by a DataLoader with the configured workers"
    assert results["test"]["accuracy"] >= 0.9
    assert json.loads((Path(run_dir) / "manifest.json").read_text())["features"]["input_format"] == "files"
    import pandas as pd

    paths = sorted(str(p) for p in folder.rglob("*.png"))[:6]
    pd.DataFrame({"path": paths}).to_csv(tmp_path / "paths.csv", index=False)
    manager = get_plugin_manager()
    assert FinishedRun(run_dir, manager).predict(tmp_path / "paths.csv", tmp_path / "out.csv") == 6
    assert FinishedRun(run_dir, manager).evaluate() == results
    assert "the data differ" not in caplog.text
    from PIL import Image

    Image.open(paths[0]).transpose(Image.Transpose.ROTATE_90).save(paths[0])  # rewritten in place, same path
    FinishedRun(run_dir, manager).evaluate()
    assert "the data differ from those the run was trained on" in caplog.text


def test_an_image_folder_without_class_folders_is_a_clear_error(tmp_path):
    (tmp_path / "flat").mkdir()
    with pytest.raises(CouplerError, match="one subfolder per class"):
        train_run(tmp_path, "data=image_folder", f"data.path={tmp_path / 'flat'}", "model=cnn")


def test_a_model_that_cannot_read_files_is_refused_on_an_image_folder(tmp_path):
    folder = _stripes(tmp_path / "images", per_class=3)
    with pytest.raises(ConfigError, match="a model that reads paths of files"):
        train_run(tmp_path, "data=image_folder", f"data.path={folder}", "model=logistic_regression")


@pytest.mark.parametrize("overrides, message", [
    (["model.augment.rotation=200"], "model.augment.rotation=200 is not allowed: a number >= 0 and <= 180 "
                                     "(random rotation by up to this many degrees)"),
    (["model.input_shape=[1,8.5,8]"], "model.input_shape=[1, 8.5, 8] is not allowed: a list of a whole number "
                                      "values or null ([channels, height, width] each row is reshaped to; null: "
                                      "one square channel (3x32x32 for an image folder))"),
])
def test_the_schema_refuses_a_bad_value_in_one_line_before_any_image_is_read(coupler_cli, tmp_path, overrides,
                                                                            message):
    """data.path names no folder: had the loader run first, the error would be 'no such folder'."""
    result = coupler_cli("train", "data=image_folder", f"data.path={tmp_path / 'absent'}", "model=cnn", *overrides,
                         "hydra.run.dir=run")
    assert (result.rc, result.err.strip().splitlines()) == (2, [f"coupler: error: {message}"])
    assert not (tmp_path / "run").exists()


def test_image_folder_needs_a_path_before_anything_is_read(coupler_cli):
    result = coupler_cli("train", "data=image_folder", "model=cnn", "hydra.run.dir=run")
    assert result.rc == 2 and result.err.startswith("coupler: error: data.path='???' is not allowed: a value is "
                                                    "required"), result.err
