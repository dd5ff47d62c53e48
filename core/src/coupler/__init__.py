"""Coupler: a plugin-based training harness for machine learning.

Plugin authors need ``coupler.hookimpl`` (to mark hook implementations), ``coupler.Callback`` (the base class of
callbacks) and the contracts in ``coupler.components``. Importing this package imports no machine-learning library, and not even pluggy:
``hookimpl`` is looked up on first use, so that ``coupler train`` (which only hands its arguments to
``coupler-train``) and ``coupler --help`` start without it.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["Callback", "__version__", "hookimpl"]


def __getattr__(name: str):
    """``coupler.hookimpl`` (the marker from ``coupler.hookspecs``) and ``coupler.Callback`` (the callbacks'
    base class, ``coupler.callback``), imported when first asked for."""
    if name == "hookimpl":
        from coupler.hookspecs import hookimpl

        globals()["hookimpl"] = hookimpl
        return hookimpl
    if name == "Callback":
        from coupler.callback import Callback

        globals()["Callback"] = Callback
        return Callback
    raise AttributeError(f"module 'coupler' has no attribute {name!r}")
