"""The ``torch`` plugin: the engine's own hooks, kinds and ``trainer`` group; its optimizers, schedulers,
callbacks and ``model=mlp``; where a run resumes from. Imports no torch.

Neural models (``coupler-cnn``, ``coupler-rnn``, ...) subclass ``coupler_torch.engine.TorchModel``.
"""

from __future__ import annotations

from pathlib import Path

from coupler import hookimpl

from coupler_torch import hookspecs
from coupler_torch.callbacks import CALLBACKS
from coupler_torch.contract import TorchContract
from coupler_torch.optimizers import OPTIMIZERS, SCHEDULERS

COUPLER_API = ">=1.1,<2"  # the plugin API versions this plugin supports (coupler.hookspecs.API_VERSION)
#: where a run in progress keeps the checkpoint ``resume=RUN_DIR`` continues from, relative to the run directory
LAST_CHECKPOINT = Path("checkpoints") / "last.ckpt"


def _check_optimizer(make) -> None:
    from coupler_torch.testing import check_optimizer

    check_optimizer(make)


def _check_scheduler(make) -> None:
    from coupler_torch.testing import check_scheduler

    check_scheduler(make)


@hookimpl
def add_hookspecs(register):
    register(hookspecs)


@hookimpl
def register_kinds(register):
    register("optimizer", group="optimizer", hook="register_optimizers", used_by="uses_optimizer",
             contract="a callable make(parameters) -> torch.optim.Optimizer",
             checks={"steps downhill": _check_optimizer})
    register("scheduler", group="scheduler", hook="register_schedulers", used_by="uses_optimizer",
             contract="a callable make(optimizer, epochs=, steps_per_epoch=)",
             checks={"schedules": _check_scheduler})


@hookimpl
def register_config_groups(register):
    register("trainer", default="default", description="the torch engine's Lightning trainer settings",
             test_overrides=("trainer.max_epochs=3", "trainer.progress_bar=false"), engines=("torch",))


def build_mlp(task: str, seed: int, hidden=(64,), dropout: float = 0.0, batch_size: int = 64, threads=1):
    from coupler_torch.mlp import MLP

    return MLP(task, seed, hidden=hidden, dropout=dropout, batch_size=batch_size, threads=threads)


build_mlp.returns = TorchContract


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


@hookimpl
def resume_point(directory):
    return Path(directory) / LAST_CHECKPOINT
