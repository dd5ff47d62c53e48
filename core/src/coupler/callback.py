"""``coupler.Callback``: the base class of callbacks, Lightning-style.

A callback overrides the lifecycle hooks it needs (``coupler.hookspecs``: ``on_run_start`` ... ``on_run_end``, or
``on_run_failed``); the others stay no-ops. An override needs no ``@hookimpl``: the subclass's methods named like a
lifecycle hook are marked when the class is created. The base class's no-ops are hook implementations too (so every lifecycle
method of a callback is one, as the conformance kit requires); ``observes`` tells an override from a no-op (the
run warns about an epoch watcher whose model reported no epoch). Plain objects with ``@hookimpl`` methods keep
working as callbacks.

A callback declares what it needs from the model, and the run refuses it, before reading any data, with a
model that cannot honour it (``coupler.capabilities``):

- ``requires``: model capabilities (``Model`` attributes) that must be true, e.g. ``("reports_epochs",)``
  for a callback that acts on ``on_epoch_end``;
- ``engines``: the engines (``Model.engine``) it acts inside, e.g. ``("torch",)`` for a callback that an
  engine finds among ``run.callbacks`` and uses itself; None: any.
"""

from __future__ import annotations

from coupler.hookspecs import hookimpl

#: the lifecycle hooks a callback may implement, in the order a run fires them
LIFECYCLE_HOOKS = ("on_run_start", "on_fit_start", "on_epoch_end", "on_fit_end", "on_evaluate_end", "on_export",
                   "on_run_end", "on_run_failed")


class Callback:
    """Subclass it and override the hooks you need; see the module docstring."""

    #: the model capabilities it needs (``Model`` attributes that must be true), e.g. ``("reports_epochs",)``
    requires: tuple[str, ...] = ()
    #: the engines it acts inside (``Model.engine``), e.g. ``("torch",)``; None: any
    engines: tuple[str, ...] | None = None

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        for name in LIFECYCLE_HOOKS:
            method = cls.__dict__.get(name)
            if callable(method) and not hasattr(method, f"{hookimpl.project_name}_impl"):
                setattr(cls, name, hookimpl(method))

    @hookimpl
    def on_run_start(self, run) -> None:
        """The run's config is resolved and its directory exists; no data is loaded yet."""

    @hookimpl
    def on_fit_start(self, run, model) -> None:
        """Data loaded, split and preprocessed; ``model`` is about to be fitted."""

    @hookimpl
    def on_epoch_end(self, run, epoch, metrics) -> None:
        """An engine finished an epoch; set ``run.should_stop = True`` to stop it."""

    @hookimpl
    def on_fit_end(self, run, model) -> None:
        """Training finished (or stopped early)."""

    @hookimpl
    def on_evaluate_end(self, run, split, metrics) -> None:
        """A split was measured."""

    @hookimpl
    def on_export(self, run, exporter, paths) -> None:
        """An exporter wrote its files."""

    @hookimpl
    def on_run_end(self, run, metrics) -> None:
        """The run directory is complete and sealed."""

    @hookimpl
    def on_run_failed(self, run, error) -> None:
        """The run failed after it started (``error``: the exception); ``on_run_end`` does not come."""


def observes(callback, hook: str) -> bool:
    """Whether ``callback`` implements lifecycle hook ``hook`` (an override of ``Callback``'s no-op, or any
    ``@hookimpl`` method of a plain object)."""
    method = getattr(type(callback), hook, None) or getattr(callback, hook, None)
    return method is not None and method is not getattr(Callback, hook, None)
