"""The ``RunContext``: what lifecycle hooks and models see of the run in progress."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class RunContext:
    """One run: its resolved config (plain containers), its directory, and what it learned so far.

    Engines call ``epoch_end`` after each epoch; observers (plugins, callbacks) may set ``should_stop``.
    A callback that keeps state across epochs may offer ``state_dict()`` / ``load_state_dict(state)``: an
    engine that saves its progress stores it, and restores it when the run is resumed.
    """

    config: dict
    directory: Path
    hooks: Any  # the plugin manager's hook relay
    seed: int = 0
    task: str | None = None
    classes: list = field(default_factory=list)
    feature_names: list[str] = field(default_factory=list)
    history: list[dict] = field(default_factory=list)
    should_stop: bool = False
    #: set by an early-stopping callback: the epoch whose model is kept, and its monitored value
    best_epoch: int | None = None
    best_score: float | None = None
    #: the run's callbacks by config key (engines act on the ones they know)
    callbacks: dict[str, Any] = field(default_factory=dict)
    #: the ``coupler.registry.Registry``: an engine builds components of its own kinds from it, with the nodes
    #: of ``config`` (which it may fill in: ``config.yaml`` is written after ``fit``)
    registry: Any = None
    #: what ``fit`` receives: the model's input format the run chose (``matrix``, ``frame``, ``files``,
    #: ``tokens`` or ``text``; see ``Model.input_formats``)
    input_format: str = "matrix"
    #: the shape of one row for sequence data: ``(steps, features)``; for token ids ``(length,)``; else None
    sequence_shape: tuple | None = None
    #: for token ids: the number of ids (padding 0 and unknown 1 included)
    vocab_size: int | None = None
    #: the data's fingerprint (``Dataset.fingerprint``, what the manifest records): set once the data is read
    data_fingerprint: str | None = None
    log: logging.Logger = field(default_factory=lambda: logging.getLogger("coupler.run"))
    #: the cross-validation fold this ``fit`` trains, ``(repeat, number)`` from 1 (``cv.folds``); None: the run's
    #: own model. A fold's ``config`` is a copy of the run's, and its directory a temporary one
    fold: tuple[int, int] | None = None
    #: the run's ``coupler.progress.EpochProgress`` (the per-epoch line, the bar, ``history.csv``'s seconds): an
    #: engine that knows its most epochs sets its ``total``, one that draws its own bar its ``engine_bar``
    progress: Any = None

    def epoch_end(self, epoch: int, metrics: dict[str, float]) -> bool:
        """Record an epoch's metrics, tell every observer, and return whether training should stop."""
        metrics = {k: float(v) for k, v in metrics.items()}
        self.history.append({"epoch": epoch, **metrics})
        self.hooks.on_epoch_end(run=self, epoch=epoch, metrics=metrics)
        return self.should_stop
