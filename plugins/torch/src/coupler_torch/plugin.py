"""The ``torch`` plugin: optimizers, schedulers, the engine's callbacks and ``model=mlp``. Imports no torch.

Neural models (``coupler-cnn``, ``coupler-rnn``, ...) subclass ``coupler_torch.engine.TorchModel``.
"""

from __future__ import annotations

from pathlib import Path

from coupler import hookimpl

from coupler_torch.callbacks import CALLBACKS
from coupler_torch.optimizers import OPTIMIZERS, SCHEDULERS

COUPLER_API = ">=1.0,<2"  # the plugin API versions this plugin supports (coupler.hookspecs.API_VERSION)


def build_mlp(task: str, seed: int, hidden=(64,), dropout: float = 0.0, batch_size: int = 64, threads=1):
    from coupler_torch.mlp import MLP

    return MLP(task, seed, hidden=hidden, dropout=dropout, batch_size=batch_size, threads=threads)


@hookimpl
def register_models(register):
    register("mlp", build_mlp, description="a multilayer perceptron for tables (torch engine; hidden widths, dropout)")


@hookimpl
def register_optimizers(register):
    for name, (factory, description) in OPTIMIZERS.items():
        register(name, factory, description=description)


@hookimpl
def register_schedulers(register):
    for name, (factory, description) in SCHEDULERS.items():
        register(name, factory, description=description)


@hookimpl
def register_callbacks(register):
    for name, (factory, description) in CALLBACKS.items():
        register(name, factory, description=description)


@hookimpl
def register_config_dirs(register):
    register(Path(__file__).parent / "conf")
