"""Coupler: a plugin-based training harness for machine learning.

Plugin authors need ``coupler.hookimpl`` (to mark hook implementations) and the contracts in
``coupler.components``. Importing this package imports no machine-learning library.
"""

from coupler.hookspecs import hookimpl

__version__ = "0.1.0"

__all__ = ["__version__", "hookimpl"]
