"""Coupler: a plugin-based training harness for machine learning.

Plugin authors need ``coupler.hookimpl`` (to mark hook implementations), ``coupler.Callback`` (the base class of
callbacks) and the contracts in ``coupler.components``; users of a finished run need ``coupler.FinishedRun`` (load
it, ``transform`` rows with its preprocessing, ``predict``, ``predict_proba``). Importing this package imports no
machine-learning library, and not even pluggy: each name is looked up on first use, so that ``coupler train``
(which only hands its arguments to ``coupler-train``) and ``coupler --help`` start without them.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["Callback", "FinishedRun", "__version__", "hookimpl", "hookspec"]

#: the public names imported on first use: name -> module (``hookspec`` is for a plugin's own hooks)
_LAZY = {"hookimpl": "coupler.hookspecs", "hookspec": "coupler.hookspecs", "Callback": "coupler.callback",
         "FinishedRun": "coupler.finished_run"}


def __getattr__(name: str):
    """``coupler.hookimpl``, ``coupler.hookspec``, ``coupler.Callback``, ``coupler.FinishedRun``: imported from their modules when
    first asked for."""
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'coupler' has no attribute {name!r}")
