"""The torch engine's hook specifications: its component kinds ``optimizer`` and ``scheduler``.

The ``torch`` plugin adds them to Coupler's plugin manager (the ``add_hookspecs`` hook) and declares the kinds
(``register_kinds``), so any plugin implements them as it implements the core's registration hooks::

    from coupler import hookimpl

    @hookimpl
    def register_optimizers(register):
        register("lion", build_lion, schema=LionSchema, description="Lion")

They are versioned with coupler-torch: a plugin implementing them depends on ``coupler-torch``.
"""

from __future__ import annotations

from coupler.hookspecs import hookspec


@hookspec
def register_optimizers(register):
    """Register optimizers, selected by ``optimizer=NAME``, for models on the torch engine.

    Called once, when plugins are loaded.

    :param register: ``register(name, factory, description=None, default=False, schema=None)``, the same
        ``register`` as the core's hooks: ``schema`` is the dataclass of the optimizer's parameters
        (``coupler.schema``; without one, the factory's keyword parameters are its schema). ``factory(**config)``
        receives every key of the ``optimizer`` config node (``name`` excluded), checked against the schema and
        completed with its defaults, and returns a callable ``make(parameters) -> torch.optim.Optimizer``.
    :return: None.
    """


@hookspec
def register_schedulers(register):
    """Register learning-rate schedulers, selected by ``scheduler=NAME``, for models on the torch engine.

    Called once, when plugins are loaded.

    :param register: ``register(name, factory, description=None, default=False, schema=None)``, as for
        ``register_optimizers``. ``factory(**config)`` receives the ``scheduler`` node's keys (checked against the
        schema and completed with its defaults) and returns ``make(optimizer, epochs=, steps_per_epoch=)``, which
        returns ``None`` (a constant rate) or Lightning's scheduler dict ``{"scheduler": ..., "interval": "epoch"
        | "step", "monitor": ...}``.
    :return: None.
    """
