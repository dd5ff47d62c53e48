"""``tracking=tensorboard``, read back with TensorBoard's own ``EventAccumulator``; and how ``tracking=`` is chosen
(an unknown tracker, a tracker whose plugin is missing). One XGBoost run (3 rounds) and one scikit-learn run, each
trained once in this process."""

from __future__ import annotations

import json

import pytest

from coupler.config import check_overrides
from coupler.errors import ConfigError, CouplerError
from coupler.plugin_manager import PluginManager, get_plugin_manager
from coupler.registry import UnknownComponentError
from coupler.testing import train_run
from coupler_tensorboard.plugin import build_tracker


def _events(run_dir):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(str(run_dir / "tensorboard"))
    accumulator.Reload()
    return accumulator


@pytest.fixture(scope="module")
def xgboost_run(tmp_path_factory):
    return train_run(tmp_path_factory.mktemp("tb"), "model=xgboost", "model.num_boost_round=3",
                     "tracking=[tensorboard]")[1]


def test_each_round_is_a_scalar_and_each_split_its_final_metrics(xgboost_run):
    events = _events(xgboost_run)
    assert [e.step for e in events.Scalars("val_loss")] == [0, 1, 2]
    history = (xgboost_run / "history.csv").read_text().splitlines()
    assert len(history) == 4  # the three rounds the event file holds
    metrics = json.loads((xgboost_run / "metrics.json").read_text())
    (final,) = events.Scalars("test/accuracy")
    assert final.step == 3 and final.value == pytest.approx(metrics["test"]["accuracy"])
    assert events.Scalars("val/log_loss")[0].value == pytest.approx(metrics["val"]["log_loss"])


def test_the_flattened_config_is_recorded_as_hyper_parameters(xgboost_run):
    from tensorboard.plugins.hparams import metadata

    content = _events(xgboost_run).PluginTagToContent(metadata.PLUGIN_NAME)
    start = metadata.parse_session_start_info_plugin_data(content[metadata.SESSION_START_INFO_TAG])
    assert start.hparams["model.name"].string_value == "xgboost"
    assert start.hparams["model.num_boost_round"].number_value == 3
    assert start.hparams["split.measure_test"].bool_value is True
    assert metadata.SESSION_END_INFO_TAG in content


def test_the_event_file_is_sealed_with_the_run(xgboost_run):
    from coupler import FinishedRun

    manifest = json.loads((xgboost_run / "manifest.json").read_text())
    assert [f for f in manifest["files"] if f.startswith("tensorboard/events.out.tfevents.")]
    FinishedRun(xgboost_run)  # checksums hold: nothing was written after the seal


def test_a_model_without_epochs_records_its_hyper_parameters_and_final_metrics(tmp_path):
    _, run_dir = train_run(tmp_path, "tracking=[tensorboard]", "tracking.tensorboard.directory=tb/events")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run_dir / "tb" / "events"))
    events.Reload()
    assert "val_loss" not in events.Tags()["scalars"] and events.Scalars("val/accuracy")[0].step == 0


def test_the_directory_must_stay_inside_the_run():
    for bad in ("../elsewhere", "/tmp/tb", ""):
        with pytest.raises(ConfigError, match="tracking.tensorboard.directory"):
            build_tracker(bad, True)


@pytest.mark.parametrize("directory", ["model", "checkpoints", "plots/tb", "exports", "metrics.json", ".model-x"])
def test_the_directory_must_not_be_one_the_run_writes(directory):
    with pytest.raises(ConfigError, match="is one the run itself writes"):
        build_tracker(directory, True)


@pytest.mark.parametrize("directory", ["tensorboard", "logs/tb"])
def test_an_interrupted_run_holding_its_event_files_can_be_resumed(tmp_path, directory):
    """As an interrupted torch run leaves its directory: the checkpoint, the overrides, the tracker's folder."""
    pytest.importorskip("coupler_torch")
    from coupler.train_app import _check_resumable

    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "last.ckpt").write_bytes(b"checkpoint")
    (run / directory).mkdir(parents=True)
    (run / directory / "events.out.tfevents.1.host.1").write_bytes(b"events")
    overrides = ["model=cnn", "tracking=[tensorboard]", f"tracking.tensorboard.directory={directory}"]
    (run / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
    _check_resumable(run, str(run))  # accepted: no error
    (run / "overrides.yaml").write_text("- model=cnn\n")  # a run without the tracker: the folder is not its own
    with pytest.raises(CouplerError, match=f"holds {directory.split('/')[0]}, which a Coupler run does not write"):
        _check_resumable(run, str(run))


def test_an_unknown_tracker_lists_the_trackers_with_their_plugins():
    with pytest.raises(UnknownComponentError) as info:
        check_overrides(["tracking=[tensorbord]"], get_plugin_manager())
    message = str(info.value)
    assert message.startswith("tracking=tensorbord: unknown tracker 'tensorbord'. Did you mean 'tensorboard'?")
    assert "tensorboard                  (plugin: tensorboard)" in message


def test_a_tracker_whose_plugin_is_missing_names_the_distribution_to_install():
    manager = PluginManager(disabled={"tensorboard"})  # as COUPLER_DISABLE_PLUGINS=tensorboard
    manager.load_builtins()
    manager.load_entry_points()
    with pytest.raises(CouplerError, match=r"^tracking=tensorboard: the tensorboard tracker comes with the plugin "
                                           r"coupler-tensorboard, which is disabled \(COUPLER_DISABLE_PLUGINS names "
                                           r"tensorboard\); enable it\.$"):
        check_overrides(["tracking=[tensorboard]"], manager)
    del manager.plugins["tensorboard"]  # as if it were not installed at all
    with pytest.raises(CouplerError, match=r"which is not installed: pip install coupler-tensorboard\.$"):
        check_overrides(["tracking=tensorboard"], manager)
