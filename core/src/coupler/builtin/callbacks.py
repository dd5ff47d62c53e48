"""Built-in callbacks. ``early_stopping`` is engine-neutral: it watches ``on_epoch_end`` and sets
``run.should_stop``; every iterative engine honours that flag and keeps the best epoch's model. It requires a
model that reports epochs (``Model.reports_epochs``): with one that declares it trains in one step, the run is
refused before it reads data. Its parameters are declared once, in ``EarlyStoppingSchema``: the range and choice
checks happen before the run, when the command line and the composed config are read."""

from __future__ import annotations

import math
from dataclasses import dataclass

from coupler.callback import Callback
from coupler.errors import ConfigError
from coupler.hookspecs import hookimpl
from coupler.schema import param

COUPLER_API = ">=1.2,<2"  # the plugin API versions this plugin supports (coupler.hookspecs.API_VERSION)


@dataclass
class EarlyStoppingSchema:
    """``callbacks=[early_stopping]``: ``callbacks.early_stopping.*``."""

    monitor: str = param("val_loss", help="a metric the engine reports each epoch")
    patience: int = param(10, help="epochs without improvement before stopping", ge=1)
    mode: str = param("min", help="whether a lower or a higher value is better", choices=("min", "max"))
    min_delta: float = param(0.0, help="the least change that counts as an improvement", ge=0)


class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved by more than ``min_delta`` for ``patience`` epochs.

    ``monitor`` names a key of the epoch's metrics (``val_loss``, ``val_accuracy``, ...); ``mode`` is ``min``
    or ``max``. ``run.best_epoch`` and ``run.best_score`` tell the engine which epoch to keep.
    """

    requires = ("reports_epochs",)

    def __init__(self, monitor: str, patience: int, mode: str, min_delta: float):
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
    register("early_stopping", EarlyStopping, description="stop when a monitored metric stops improving",
             schema=EarlyStoppingSchema)
