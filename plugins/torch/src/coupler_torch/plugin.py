"""The ``torch`` plugin: the engine's own hooks, kinds and ``trainer`` group; its optimizers, schedulers,
callbacks and ``model=mlp``, each with the schema of its parameters (``coupler.schema``); where a run resumes
from. Imports no torch.

Neural models (``coupler-cnn``, ``coupler-rnn``, ...) subclass ``coupler_torch.engine.TorchModel``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from coupler import hookimpl
from coupler.onnx_export import FormatExporter
from coupler.schema import param
from coupler_torch import hookspecs
from coupler_torch.callbacks import CALLBACKS
from coupler_torch.contract import TorchContract
from coupler_torch.optimizers import OPTIMIZERS, SCHEDULERS

COUPLER_API = ">=1.2,<2"  # the plugin API versions this plugin supports (coupler.hookspecs.API_VERSION)
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


#: the precisions the engine trains under (Lightning's names; 32 and 64, as Hydra reads trainer.precision=32, are
#: 32-true and 64-true)
PRECISIONS = ("32-true", "16-mixed", "bf16-mixed", "16-true", "bf16-true", "64-true", 32, 64)


@dataclass
class TrainerSchema:
    """``trainer=default``: the torch engine's settings of Lightning's ``Trainer`` and of its own checkpoints. The
    schema is the group's default option (no file) and checks every option's node (a user's trainer/NAME.yaml)."""

    max_epochs: int = param(100, help="passes over the training split (early stopping may stop sooner)", ge=1)
    accelerator: str = param("auto", help="Lightning's accelerator (auto: a GPU when there is one)",
                             choices=("auto", "cpu", "gpu", "cuda", "mps", "tpu", "hpu"))
    devices: Annotated[int | str | list[int], "auto, a whole number or a list of them"] = param(
        "auto", help="Lightning's devices: auto, a count (-1: all), or a list of device indices")
    strategy: str = param("auto", help="Lightning's strategy: auto, ddp (data parallel over trainer.devices), ...")
    num_nodes: int = param(1, help="Lightning's num_nodes: machines of a DDP job, each running trainer.devices "
                                   "processes (started by torchrun or SLURM: docs/cluster.md)", ge=1)
    precision: Annotated[str | int, "a precision's name"] = param(
        "32-true", help="Lightning's precision: the dtype of the weights and the compute", choices=PRECISIONS)
    deterministic: bool = param(False, help="torch's deterministic algorithms only")
    gradient_clip_val: float | None = param(None, help="clip the gradients' norm to this (null: no clipping)", gt=0)
    progress_bar: Annotated[bool | str, "auto, true or false"] = param(
        "auto", help="Lightning's progress bar (auto: only when stderr is a terminal)", choices=("auto", True, False))
    resumable: bool = param(True, help="keep checkpoints/last.ckpt up to date while the run trains, for resume=RUN_DIR")
    resume_interval: float = param(30, help="seconds between writes of checkpoints/last.ckpt, after the first epoch "
                                            "(0: after every epoch)", ge=0)
    shuffle_buffer: int = param(65536, help="rows shuffled together when training from a stream (data larger than "
                                            "memory), at least a partition's: memory holds them; 0: a partition at a "
                                            "time", ge=0)


@hookimpl
def register_config_groups(register):
    register("trainer", default="default", description="the torch engine's Lightning trainer settings",
             test_overrides=("trainer.max_epochs=1", "trainer.progress_bar=false"), engines=("torch",),
             schema=TrainerSchema)


@dataclass
class MLPSchema:
    """``model=mlp``: a multilayer perceptron on the torch engine, for tables (binary, multiclass, regression). Its
    optimizer: optimizer=... (default adam, lr 0.001; scheduler cosine); its epochs: trainer.max_epochs (100; early
    stopping: callbacks=[early_stopping])."""

    hidden: list[int] = param(default_factory=lambda: [64], help="hidden layer widths, first to last, each at least "
                                                                 "1 ([128,64]: two layers; []: none, a linear model)")
    dropout: float = param(0.0, help="the fraction of each hidden layer's outputs zeroed while training", ge=0, lt=1)
    batch_size: int = param(64, help="rows per training step", ge=1)
    threads: int | None = param(1, help="torch threads while training and predicting (null: torch's default); a "
                                        "small network runs fastest on one", ge=1)


def build_mlp(task: str, seed: int, hidden: list[int], dropout: float, batch_size: int, threads: int | None):
    from coupler_torch.mlp import MLP

    return MLP(task, seed, hidden=hidden, dropout=dropout, batch_size=batch_size, threads=threads)


build_mlp.returns = TorchContract
build_mlp.input_formats = ("stream", "matrix")  # MLP's: a data set larger than memory reaches it as a RowStream
build_mlp.export_formats = ("onnx", "torchscript")  # a matrix in: coupler_torch.export (cnn, rnn, transformer: none)


@dataclass
class TorchScriptSchema:
    """``exporters=[torchscript]``: it takes no parameters (the module holds the run's preprocessing; its parity on
    the test rows is checked and recorded)."""


class TorchScriptExporter(FormatExporter):
    """``exporters=[torchscript]``: ``exports/model.torchscript.pt``, the network with the run's preprocessing in
    torch ops (``coupler_torch.export`` says what it takes)."""

    format = "torchscript"


@hookimpl
def register_exporters(register):
    register("torchscript", TorchScriptExporter, schema=TorchScriptSchema,
             description="exports/model.torchscript.pt: torch.jit.script of the network with the run's preprocessing, "
                         "parity checked")


@hookimpl
def register_models(register):
    register("mlp", build_mlp, schema=MLPSchema,
             description="a multilayer perceptron for tables (torch engine; hidden widths, dropout)")


@hookimpl
def register_optimizers(register):
    for name, (factory, schema, description) in OPTIMIZERS.items():
        register(name, factory, schema=schema, description=description)


@hookimpl
def register_schedulers(register):
    for name, (factory, schema, description) in SCHEDULERS.items():
        register(name, factory, schema=schema, description=description)


@hookimpl
def register_callbacks(register):
    for name, (factory, schema, description) in CALLBACKS.items():
        register(name, factory, schema=schema, description=description)



@hookimpl
def resume_point(directory):
    return Path(directory) / LAST_CHECKPOINT


@hookimpl
def register_config_dirs(register):
    """``conf/search/MODEL.yaml``: the search space of each model of this plugin (``coupler train -m search=MODEL``,
    with coupler-optuna installed). The plugin that knows a model's parameters ships its space, listed with it as
    the provider (``coupler train --help``, ``coupler plugins``)."""
    register(Path(__file__).parent / "conf")
