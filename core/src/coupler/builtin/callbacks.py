"""Built-in callbacks. ``early_stopping`` is engine-neutral: it watches ``on_epoch_end`` and sets
``run.should_stop``; every iterative engine honours that flag and keeps the best epoch's model. It requires a
model that reports epochs (``Model.reports_epochs``): with one that declares it trains in one step, the run is
refused before it reads data."""

from __future__ import annotations

import math

from coupler.callback import Callback
from coupler.errors import ConfigError
from coupler.hookspecs import hookimpl

COUPLER_API = ">=1.0,<2"  # the plugin API versions this plugin supports (coupler.hookspecs.API_VERSION)


class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved by more than ``min_delta`` for ``patience`` epochs.

    ``monitor`` names a key of the epoch's metrics (``val_loss``, ``val_accuracy``, ...); ``mode`` is ``min``
    or ``max``. ``run.best_epoch`` and ``run.best_score`` tell the engine which epoch to keep.
    """

    requires = ("reports_epochs",)

    def __init__(self, monitor: str = "val_loss", patience: int = 10, mode: str = "min", min_delta: float = 0.0):
        if mode not in ("min", "max"):
            raise ConfigError("callbacks.early_stopping.mode", mode, "min or max")
        if not isinstance(patience, int) or patience < 1:
            raise ConfigError("callbacks.early_stopping.patience", patience, "an integer of at least 1")
        if not isinstance(min_delta, (int, float)) or min_delta < 0:
            raise ConfigError("callbacks.early_stopping.min_delta", min_delta, "a number of at least 0")
        self.monitor, self.patience, self.mode, self.min_delta = monitor, patience, mode, float(min_delta)
        self.wait = 0

    def improved(self, value: float, best: float | None) -> bool:
        if best is None or math.isnan(best):
            return not math.isnan(value)
        return value < best - self.min_delta if self.mode == "min" else value > best + self.min_delta

    def state_dict(self) -> dict:
        return {"wait": self.wait}

    def load_state_dict(self, state: dict) -> None:
        self.wait = state["wait"]

    def on_epoch_end(self, run, epoch, metrics):
        if self.monitor not in metrics:
            raise ConfigError("callbacks.early_stopping.monitor", self.monitor,
                              f"one of the metrics the engine reports each epoch: {', '.join(sorted(metrics))}")
        value = metrics[self.monitor]
        if self.improved(value, run.best_score):
            run.best_epoch, run.best_score, self.wait = epoch, value, 0
            return
        self.wait += 1
        if self.wait >= self.patience:
            run.should_stop = True


@hookimpl
def register_callbacks(register):
    register("early_stopping", EarlyStopping, description="stop when a monitored metric stops improving")
