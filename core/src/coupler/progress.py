"""Progress a person can follow while a model trains epoch by epoch (boosting rounds, passes over the data).

``EpochProgress`` is a hook implementation the run registers for its duration (``coupler.training``), so that it
works for every engine that calls ``run.epoch_end`` and stays silent where a run's hooks are (an ensemble's
stacking members). For each epoch it

- records the epoch's wall seconds in ``run.history`` (the ``seconds`` column of ``history.csv``): the time since
  the previous epoch ended or, for the first, since the fit (or the cross-validation fold's fit) started;
- without a terminal (``stderr`` is not a tty: a batch job, a CI log, a pipe), logs one line, ``epoch 3/50:
  train_loss 0.412, val_loss 0.3981 (1.52 s/epoch)``, through the ``coupler`` logger, so on stderr and in
  ``RUN/train.log``; at most one line every ``train.log_every`` seconds (0: every epoch), the first and the last
  epoch of each fit (and of each cross-validation fold: ``coupler.training`` calls ``start`` and ``close``) always;
- in a terminal, draws a live bar (tqdm's, a dependency of Coupler's; imported only then) with the epoch's metrics
  beside it, unless the engine draws its own (the torch engine's Lightning bar, ``trainer.progress_bar``: it sets
  ``engine_bar``); the per-epoch lines are then written above the bar (``tqdm.contrib.logging``), never through it.

An engine that knows how many epochs it will run at most sets ``total`` (XGBoost's rounds, Lightning's
``max_epochs``) for the bar's length and the lines' ``3/50``.
"""

from __future__ import annotations

import logging
import sys
import time
from contextlib import ExitStack

from coupler.hookspecs import hookimpl

log = logging.getLogger("coupler")

#: ``train.log_every``'s default: seconds between two per-epoch lines without a terminal
LOG_EVERY = 5.0


class EpochProgress:
    """See the module docstring. ``terminal``: None tells it from ``stream.isatty()``."""

    def __init__(self, log_every: float = LOG_EVERY, terminal: bool | None = None, stream=None,
                 clock=time.perf_counter):
        self.log_every, self.clock = float(log_every), clock
        self.stream = stream if stream is not None else sys.stderr
        self.terminal = _isatty(self.stream) if terminal is None else terminal
        #: the most epochs the engine will run (for ``3/50`` and the bar's length), None when unknown
        self.total: int | None = None
        #: True when the engine draws its own bar (Lightning's): no second one
        self.engine_bar = False
        self._lap_started = clock()
        self._logged_at: float | None = None  # clock() of the last line
        self._unlogged: str | None = None  # the latest epoch's line when it was not logged (rate limit)
        self._bar = None
        self._fold: tuple | None = None  # the cross-validation fold the bar counts (a new fold: a new bar)
        self._redirect = ExitStack()  # log lines written above the bar while there is one
        self._redirected = False

    # --- lifecycle hooks --------------------------------------------------------------------------------------

    @hookimpl
    def on_fit_start(self, run, model) -> None:
        self.start()

    def start(self) -> None:
        """A fit starts (the run's, or a cross-validation fold's, which fires no hook): its first epoch is timed
        from now and logged whatever the rate limit."""
        self._lap_started, self._logged_at = self.clock(), None

    @hookimpl
    def on_epoch_end(self, run, epoch, metrics) -> None:
        now = self.clock()
        seconds = now - self._lap_started
        self._lap_started = now
        if run.history and run.history[-1].get("epoch") == epoch:
            run.history[-1]["seconds"] = round(seconds, 4)
        fold = getattr(run, "fold", None)
        line = self.line(epoch, metrics, seconds, fold)
        if self.terminal:
            if fold != self._fold:
                self._close_bar()
                self._fold = fold
            self._draw(epoch, metrics)
        if self._logged_at is None or now - self._logged_at >= self.log_every:
            self._log(line, now)
        else:
            self._unlogged = line

    @hookimpl
    def on_fit_end(self, run, model) -> None:
        self.close()

    # --- the parts ------------------------------------------------------------------------------------------

    def line(self, epoch: int, metrics: dict, seconds: float, fold: tuple | None = None) -> str:
        """``[fold 1.2 ]epoch 3[/50]: name value, ... (1.52 s/epoch)``: epochs counted from 1, as a person does."""
        where = f"fold {fold[0]}.{fold[1]} " if fold else ""
        count = f"{epoch + 1}/{self.total}" if self.total else f"{epoch + 1}"
        values = ", ".join(f"{name} {_number(value)}" for name, value in metrics.items())
        return f"{where}epoch {count}: {values or 'no metrics'} ({seconds:.3g} s/epoch)"

    def close(self) -> None:
        """The fit ended (or failed): the last epoch's line if the rate limit held it back, the bar closed."""
        if self._unlogged is not None:
            self._log(self._unlogged, self.clock())
        self._close_bar()
        self._redirect.close()
        self._redirected = False

    def _close_bar(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def _log(self, line: str, now: float) -> None:
        log.info("%s", line)
        self._logged_at, self._unlogged = now, None

    def _draw(self, epoch: int, metrics: dict) -> None:
        """The live bar (created at the first epoch, so that an engine without epochs never shows one); once there
        is a bar, the engine's or this one, log lines go above it."""
        if self._bar is None:
            try:
                from tqdm.auto import tqdm
                from tqdm.contrib.logging import logging_redirect_tqdm
            except ImportError:  # tqdm uninstalled by hand: the lines alone
                self.terminal = False
                return
            if not self._redirected:
                self._redirect.enter_context(logging_redirect_tqdm())
                self._redirected = True
            if not self.engine_bar:
                self._bar = tqdm(total=self.total, file=self.stream, unit="epoch", desc="training", leave=True,
                                 dynamic_ncols=True, initial=epoch)
            if self._bar is None:
                return
        self._bar.set_postfix({name: _number(value) for name, value in metrics.items()}, refresh=False)
        self._bar.update(epoch + 1 - self._bar.n)


def _isatty(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # a closed or file-like stream without one
        return False


def _number(value) -> str:
    return format(value, ".4g") if isinstance(value, float) else str(value)
