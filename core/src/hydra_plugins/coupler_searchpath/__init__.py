"""Coupler's config directories on Hydra's search path, whichever primary config a command line names.

Hydra reads ``hydra.searchpath`` from the primary config alone: with ``-cp DIR -cn exp`` (or ``--config-dir DIR
-cn exp``), a primary of the user's whose defaults list names ``coupler`` would not see the core's and the
plugins' config files (``trainer/default``, ``model/logistic_regression``). A ``SearchPathPlugin`` (Hydra's public
seam for a library's configs) adds them for every primary: the core's directory (unless it is already Hydra's
primary one, ``pkg://coupler.conf``), then each working plugin's, in ``coupler.config.config_directories``' order,
before a ``--config-dir``.

Hydra imports this module in any Hydra application of the environment; it changes nothing there: it acts only
when Coupler's primary config is in Hydra's ConfigStore (``coupler.config.store_configs`` put it there), that is
in ``coupler-train`` and in ``coupler``'s own compositions.
"""

from hydra.core.config_search_path import ConfigSearchPath
from hydra.core.config_store import ConfigStore
from hydra.core.object_type import ObjectType
from hydra.plugins.search_path_plugin import SearchPathPlugin

#: Hydra's names for the directory of ``coupler.train_app``'s ``config_path="conf"`` (``--info`` shows the second)
PRIMARY_DIRECTORY = ("pkg://coupler/conf", "pkg://coupler.conf")


class CouplerSearchPath(SearchPathPlugin):
    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        if ConfigStore.instance().get_type("coupler.yaml") != ObjectType.CONFIG:
            return  # another Hydra application
        from coupler.config import CORE_CONF, config_directories
        from coupler.plugin_manager import get_plugin_manager

        present = {element.path for element in search_path.get_path()}
        for provider, directory in config_directories(get_plugin_manager()):
            path = f"file://{directory}"
            if path in present or (directory == str(CORE_CONF) and present.intersection(PRIMARY_DIRECTORY)):
                continue
            search_path.append(provider=provider, path=path)
            present.add(path)
