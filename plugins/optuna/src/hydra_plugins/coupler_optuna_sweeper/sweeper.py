"""Coupler's Optuna sweeper: a Hydra ``Sweeper`` (public API: ``hydra.plugins.sweeper.Sweeper``, the launcher from
``Plugins.instance().instantiate_launcher``), the study in ``coupler_optuna.search``. Imports no Optuna until a
sweep starts."""

from __future__ import annotations

from typing import Any

from hydra.plugins.sweeper import Sweeper


class CouplerOptunaSweeper(Sweeper):
    def __init__(self, **kwargs: Any) -> None:
        self.config = self.launcher = self.hydra_context = None

    def setup(self, *, hydra_context, task_function, config) -> None:
        from hydra.core.plugins import Plugins

        self.config, self.hydra_context = config, hydra_context
        self.launcher = Plugins.instance().instantiate_launcher(config=config, hydra_context=hydra_context,
                                                                task_function=task_function)

    def sweep(self, arguments: list[str]) -> Any:
        from coupler_optuna.search import run_search

        return run_search(self.config, self.launcher, list(arguments))
