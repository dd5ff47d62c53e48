"""Coupler's config directories on Hydra's search path, whichever primary config a command line names.

Hydra reads ``hydra.searchpath`` from the primary config alone: with ``-cp DIR -cn exp`` (or ``--config-dir DIR
-cn exp``), a primary of the user's whose defaults list names ``coupler`` would not see the core's and the
plugins' config files (``trainer/default``, ``model/logistic_regression``). A ``SearchPathPlugin`` (Hydra's public
seam for a library's configs) adds them for every primary: the directories of the plugin manager whose configs
``coupler.config.store_configs`` stored (the core's, unless it is already Hydra's primary one,
``pkg://coupler.conf``; then each working plugin's), before a ``--config-dir``.

Hydra imports this module in any Hydra application of the environment; it changes nothing there: it acts only in
a process where ``store_configs`` ran (``coupler-train``, ``coupler``'s own compositions, ``coupler.testing``).
"""

import sys

from hydra.core.config_search_path import ConfigSearchPath
from hydra.plugins.search_path_plugin import SearchPathPlugin

#: Hydra's names for the directory of ``coupler.train_app``'s ``config_path="conf"`` (``--info`` shows the second)
PRIMARY_DIRECTORY = ("pkg://coupler/conf", "pkg://coupler.conf")


class CouplerSearchPath(SearchPathPlugin):
    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        config = sys.modules.get("coupler.config")
        if config is None or not config.stored_directories:
            return  # another Hydra application
        present = {element.path for element in search_path.get_path()}
        for provider, directory in config.stored_directories:
            path = f"file://{directory}"
            if path in present or (directory == str(config.CORE_CONF) and present.intersection(PRIMARY_DIRECTORY)):
                continue
            search_path.append(provider=provider, path=path)
            present.add(path)
