"""A plugin with no components; its distribution also ships ``hydra_plugins/coupler_hydra_marker``."""

COUPLER_API = ">=1.0,<2"
