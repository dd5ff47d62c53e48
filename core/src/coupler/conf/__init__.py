"""Coupler's own Hydra config files; a package so that Hydra finds it as ``pkg://coupler.conf``."""
