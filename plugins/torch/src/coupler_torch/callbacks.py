"""Callbacks the torch engine acts on: ``checkpoint`` and ``lr_monitor``.

They are selected like every callback (``callbacks=[checkpoint,lr_monitor]``) and built by the core; the
engine finds them among the run's callbacks (``run.callbacks``) and does the work inside Lightning's loop. They
implement no hook, so they declare ``engines = ("torch",)``: a run whose model trains with another engine
(``model=xgboost callbacks=[checkpoint]``) is refused before it reads data, instead of silently doing nothing.

Their parameters are declared once, in their schemas (``coupler.schema``), checked before any data is read. Whether
``monitor`` is a metric the run reports is known only when the first epoch ends: the engine checks it then.
"""

from __future__ import annotations

from dataclasses import dataclass

from coupler.callback import Callback
from coupler.schema import param


@dataclass
class CheckpointSchema:
    """``callbacks=[checkpoint]``: keep checkpoints/best.ckpt (the best epoch by ``monitor``) and
    checkpoints/last.ckpt."""

    monitor: str = param("val_loss", help="the epoch metric that picks the best epoch: val_loss, train_loss, "
                                          "val_accuracy (classification), val_rmse (regression), or one the model "
                                          "reports")
    mode: str = param("min", help="whether the metric improves as it falls (min) or rises (max)",
                      choices=("min", "max"))
    save_best: bool = param(True, help="keep checkpoints/best.ckpt, the best epoch by monitor")
    save_last: bool = param(True, help="keep checkpoints/last.ckpt, written every epoch (resume=RUN_DIR continues "
                                       "from it)")


@dataclass
class LearningRateMonitorSchema:
    """``callbacks=[lr_monitor]``: record each epoch's learning rate (the lr column of history.csv); no
    parameters."""


class Checkpoint(Callback):
    """Keep ``checkpoints/best.ckpt`` (the best epoch by ``monitor``) and ``checkpoints/last.ckpt``.

    Every checkpoint is written to a temporary file and renamed into place: a crash never leaves one half
    written. ``last.ckpt`` is what ``coupler train resume=RUN_DIR`` continues from.
    """

    engines = ("torch",)

    def __init__(self, monitor: str, mode: str, save_best: bool, save_last: bool):
        self.monitor, self.mode, self.save_best, self.save_last = monitor, mode, save_best, save_last
        self.best: float | None = None

    def improved(self, value: float) -> bool:
        if self.best is None:
            return value == value  # not NaN
        return value < self.best if self.mode == "min" else value > self.best

    def state_dict(self) -> dict:
        return {"best": self.best}

    def load_state_dict(self, state: dict) -> None:
        self.best = state.get("best")


class LearningRateMonitor(Callback):
    """Add the learning rate each epoch starts with (``lr``; ``lr_N`` for parameter group N > 0) to the
    epoch metrics."""

    engines = ("torch",)


#: name: (factory, schema, description)
CALLBACKS = {
    "checkpoint": (Checkpoint, CheckpointSchema, "torch engine: keep the best and the last checkpoint (atomic writes)"),
    "lr_monitor": (LearningRateMonitor, LearningRateMonitorSchema, "torch engine: record the learning rate each epoch"),
}
