"""Coupler: a plugin-based training harness for machine learning.

Plugin authors need ``coupler.hookimpl`` (to mark hook implementations) and the contracts in
``coupler.components``. Importing this package imports no machine-learning library, and not even pluggy:
``hookimpl`` is looked up on first use, so that ``coupler train`` (which only hands its arguments to
``coupler-train``) and ``coupler --help`` start without it.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__", "hookimpl", "hookspec"]


def __getattr__(name: str):
    """``coupler.hookimpl`` (and ``coupler.hookspec``, for a plugin's own hooks): the markers from
    ``coupler.hookspecs``, imported when first asked for."""
    if name in ("hookimpl", "hookspec"):
        from coupler import hookspecs

        globals()[name] = getattr(hookspecs, name)
        return globals()[name]
    raise AttributeError(f"module 'coupler' has no attribute {name!r}")
