"""``hydra/sweeper=coupler_optuna`` in Hydra's ConfigStore, and ``search/schema``: every search setting at its
default, which a search file extends (``defaults: [schema, override /hydra/sweeper@_global_.hydra.sweeper:
coupler_optuna, _self_]``) so that ``search.KEY=VALUE`` works for a key the file does not set. The sweeper's own
node holds nothing: its settings are Coupler's ``search`` group, checked against
``coupler_optuna.plugin.SearchSettings`` like any settings group, but for ``sweep_dir``: the search's default
``hydra.sweep.dir``. Hydra imports this module when it scans its
plugins, before it composes."""

from dataclasses import dataclass

from hydra.core.config_store import ConfigStore
from omegaconf import OmegaConf

#: a search's sweep directory unless ``hydra.sweep.dir`` is given (Coupler's primary config reads
#: ``hydra.sweeper.sweep_dir``): one per study (``search.study_name``, else the search's name), not a timestamped
#: one, so that rerunning the same command continues the study
SWEEP_DIR = ("multirun/search/${coupler_optuna.study:${oc.select:search.study_name,null},"
             "${oc.select:hydra.runtime.choices.search,null}}")


def _study_name(given, search) -> str:
    """The study's name as ``coupler_optuna.search`` chooses it: ``search.study_name``, else the search's name."""
    return str(given if given is not None else search or "coupler")


OmegaConf.register_new_resolver("coupler_optuna.study", _study_name, replace=True)


@dataclass
class CouplerOptunaSweeperConf:
    _target_: str = "hydra_plugins.coupler_optuna_sweeper.sweeper.CouplerOptunaSweeper"
    sweep_dir: str = SWEEP_DIR


def _search_defaults() -> dict:
    from coupler.schema import defaults
    from coupler_optuna.plugin import SearchSettings

    return defaults(SearchSettings)


ConfigStore.instance().store(group="search", name="schema", node=_search_defaults(), package="search",
                             provider="coupler-optuna")
ConfigStore.instance().store(group="hydra/sweeper", name="coupler_optuna", node=CouplerOptunaSweeperConf,
                             provider="coupler-optuna")
