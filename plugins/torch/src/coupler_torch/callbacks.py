"""Callbacks the torch engine acts on: ``checkpoint`` and ``lr_monitor``.

They are selected like every callback (``callbacks=[checkpoint,lr_monitor]``) and built by the core; the
engine finds them among the run's callbacks (``run.callbacks``) and does the work inside Lightning's loop. They
implement no hook, so they declare ``engines = ("torch",)``: a run whose model trains with another engine
(``model=xgboost callbacks=[checkpoint]``) is refused before it reads data, instead of silently doing nothing.
"""

from __future__ import annotations

from coupler.callback import Callback
from coupler.errors import ConfigError


class Checkpoint(Callback):
    """Keep ``checkpoints/best.ckpt`` (the best epoch by ``monitor``) and ``checkpoints/last.ckpt``.

    Every checkpoint is written to a temporary file and renamed into place: a crash never leaves one half
    written. ``last.ckpt`` is what ``coupler train resume=RUN_DIR`` continues from.
    """

    engines = ("torch",)

    def __init__(self, monitor: str = "val_loss", mode: str = "min", save_best: bool = True, save_last: bool = True):
        if mode not in ("min", "max"):
            raise ConfigError("callbacks.checkpoint.mode", mode, "min or max")
        for key, value in (("save_best", save_best), ("save_last", save_last)):
            if not isinstance(value, bool):
                raise ConfigError(f"callbacks.checkpoint.{key}", value, "true or false")
        if not isinstance(monitor, str) or not monitor:
            raise ConfigError("callbacks.checkpoint.monitor", monitor, "the name of an epoch metric, e.g. val_loss")
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


CALLBACKS = {
    "checkpoint": (Checkpoint, "torch engine: keep the best and the last checkpoint (atomic writes)"),
    "lr_monitor": (LearningRateMonitor, "torch engine: record the learning rate each epoch"),
}
