"""``hydra/sweeper=coupler_optuna`` in Hydra's ConfigStore, and ``search/schema``: every search setting at its
default, which a search file extends (``defaults: [schema, override /hydra/sweeper@_global_.hydra.sweeper:
coupler_optuna, _self_]``) so that ``search.KEY=VALUE`` works for a key the file does not set. The sweeper's own
node holds nothing: its settings are Coupler's ``search`` group, checked against
``coupler_optuna.plugin.SearchSettings`` like any settings group. Hydra imports this module when it scans its
plugins, before it composes."""

from dataclasses import dataclass

from hydra.core.config_store import ConfigStore


@dataclass
class CouplerOptunaSweeperConf:
    _target_: str = "hydra_plugins.coupler_optuna_sweeper.sweeper.CouplerOptunaSweeper"


def _search_defaults() -> dict:
    from coupler.schema import defaults

    from coupler_optuna.plugin import SearchSettings

    return defaults(SearchSettings)


ConfigStore.instance().store(group="search", name="schema", node=_search_defaults(), package="search",
                             provider="coupler-optuna")
ConfigStore.instance().store(group="hydra/sweeper", name="coupler_optuna", node=CouplerOptunaSweeperConf,
                             provider="coupler-optuna")
