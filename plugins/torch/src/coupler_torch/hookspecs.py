"""The torch engine's hook specifications: its component kinds ``optimizer`` and ``scheduler``.

The ``torch`` plugin adds them to Coupler's plugin manager (the ``add_hookspecs`` hook) and declares the kinds
(``register_kinds``), so any plugin implements them as it implements the core's registration hooks::

    from coupler import hookimpl

    @hookimpl
    def register_optimizers(register):
        register("lion", build_lion, description="Lion")

They are versioned with coupler-torch: a plugin implementing them depends on ``coupler-torch``.
"""

from __future__ import annotations

from coupler.hookspecs import hookspec


@hookspec
def register_optimizers(register):
    """Register optimizers, selected by ``optimizer=NAME``, for models on the torch engine.

    Called once, when plugins are loaded.

    :param register: ``register(name, factory, description=None, default=False)``. ``factory(**config)``
        receives the ``optimizer`` config node's keys (``name`` excluded) and returns a callable
        ``make(parameters) -> torch.optim.Optimizer``.
    :return: None.
    """


@hookspec
def register_schedulers(register):
    """Register learning-rate schedulers, selected by ``scheduler=NAME``, for models on the torch engine.

    Called once, when plugins are loaded.

    :param register: ``register(name, factory, description=None, default=False)``. ``factory(**config)``
        receives the ``scheduler`` node's keys and returns ``make(optimizer, epochs=, steps_per_epoch=)``, which
        returns ``None`` (a constant rate) or Lightning's scheduler dict ``{"scheduler": ..., "interval": "epoch"
        | "step", "monitor": ...}``.
    :return: None.
    """
