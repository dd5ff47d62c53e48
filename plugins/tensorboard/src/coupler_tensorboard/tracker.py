"""``tracking=tensorboard``: one TensorBoard event file under ``RUN/tensorboard/``, written through the
``tensorboard`` package's protocol buffers and record writer (no torch, no TensorFlow).

What it holds, by tag:

- each epoch or boosting round an engine reports (``on_epoch_end``), every metric under its own name
  (``val_loss``, ``train_loss``, ``val_accuracy``...) at step = the epoch;
- the final metrics of each measured split (``on_evaluate_end``) as ``val/NAME`` and ``test/NAME``, at the step
  after the last epoch (0 for a model that trains in one step, such as scikit-learn's);
- the run's flattened config as hyper-parameters (TensorBoard's HParams dashboard: a session start when the run
  starts, a session end when the fit ends), where ``hparams`` is on.

The run directory is sealed with the sha256 of every file (``coupler.run_directory``): each record is appended
and the file closed at once, so the file is complete at every hook and the manifest's checksum, taken after the
last measured split, is the file's. Nothing is written in ``on_run_end``. Epochs of cross-validation folds
(``run.fold``) are left out: their steps restart at 0 for each fold; the run's own fit is the one recorded.
"""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

from coupler.callback import Callback
from coupler.config import flat_settings
from coupler.distributed import secondary_process


class TensorBoardTracker(Callback):
    """Appends the run's events to ``RUN/DIRECTORY/events.out.tfevents.*``. Its state is plain (the file's path
    and the last step), so that cross-validation can copy and reset it between folds."""

    def __init__(self, directory: str = "tensorboard", hparams: bool = True):
        self.directory, self.hparams = directory, hparams
        #: the run directory's entry this tracker writes (``coupler.hookspecs.register_trackers``): a resume keeps it
        self.entries = (Path(directory).parts[0],)
        self.path: str | None = None
        self.last_step = -1

    def on_run_start(self, run) -> None:
        if secondary_process():  # a rank other than 0 of a distributed fit writes nothing
            return
        folder = Path(run.directory) / self.directory
        folder.mkdir(parents=True, exist_ok=True)
        self.path = str(folder / f"events.out.tfevents.{int(time.time())}.{socket.gethostname()}.{os.getpid()}")
        from tensorboard.compat.proto import event_pb2

        self._append(event_pb2.Event(wall_time=time.time(), step=0, file_version="brain.Event:2"))
        if self.hparams:
            self._append(self._event(0, _hparams_summary(flat_settings(run.config))))

    def on_epoch_end(self, run, epoch, metrics) -> None:
        if self.path is None or run.fold is not None:
            return
        self.last_step = max(self.last_step, int(epoch))
        self._append(self._event(int(epoch), _scalars(metrics)))

    def on_fit_end(self, run, model) -> None:
        if self.path is not None and self.hparams:
            self._append(self._event(self.last_step + 1, _session_end_summary()))

    def on_evaluate_end(self, run, split, metrics) -> None:
        if self.path is None or not metrics:
            return
        self._append(self._event(self.last_step + 1, _scalars({f"{split}/{k}": v for k, v in metrics.items()})))

    def _event(self, step: int, summary):
        from tensorboard.compat.proto import event_pb2

        return event_pb2.Event(wall_time=time.time(), step=step, summary=summary)

    def _append(self, event) -> None:
        """One record appended and the file closed: complete on disk after every hook."""
        from tensorboard.summary.writer.record_writer import RecordWriter

        with open(self.path, "ab") as handle:
            RecordWriter(handle).write(event.SerializeToString())


def _scalars(metrics: dict):
    """A summary of the numbers among ``metrics`` (array metrics, a confusion matrix, are not scalars)."""
    from tensorboard.compat.proto import summary_pb2

    values = [summary_pb2.Summary.Value(tag=name, simple_value=float(value)) for name, value in metrics.items()
              if isinstance(value, (int, float)) and not isinstance(value, bool)]
    return summary_pb2.Summary(value=values)


def _hparams_summary(hparams: dict):
    """The HParams plugin's session start: each hyper-parameter as a bool, a number or a string (None as "null")."""
    from tensorboard.plugins.hparams import metadata, plugin_data_pb2

    info = plugin_data_pb2.SessionStartInfo(start_time_secs=time.time())
    for name, value in hparams.items():
        if isinstance(value, bool):
            info.hparams[name].bool_value = value
        elif isinstance(value, (int, float)):
            info.hparams[name].number_value = value
        else:
            info.hparams[name].string_value = "null" if value is None else str(value)
    return _plugin_summary(metadata.SESSION_START_INFO_TAG, plugin_data_pb2.HParamsPluginData(session_start_info=info))


def _session_end_summary():
    from tensorboard.plugins.hparams import api_pb2, metadata, plugin_data_pb2

    info = plugin_data_pb2.SessionEndInfo(status=api_pb2.STATUS_SUCCESS, end_time_secs=time.time())
    return _plugin_summary(metadata.SESSION_END_INFO_TAG, plugin_data_pb2.HParamsPluginData(session_end_info=info))


def _plugin_summary(tag: str, data):
    from tensorboard.compat.proto import summary_pb2
    from tensorboard.plugins.hparams import metadata

    return summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag=tag, metadata=metadata.create_summary_metadata(data))])
