"""``hydra/sweeper=coupler_optuna`` in Hydra's ConfigStore; a search file selects it with
``defaults: [{override /hydra/sweeper: coupler_optuna}]``. Its settings are Coupler's ``search`` group, not this
node: they are checked against ``coupler_optuna.plugin.SearchSettings`` like any settings group."""

from dataclasses import dataclass

from hydra.core.config_store import ConfigStore


@dataclass
class CouplerOptunaSweeperConf:
    _target_: str = "hydra_plugins.coupler_optuna_sweeper.sweeper.CouplerOptunaSweeper"


ConfigStore.instance().store(group="hydra/sweeper", name="coupler_optuna", node=CouplerOptunaSweeperConf,
                             provider="coupler-optuna")
