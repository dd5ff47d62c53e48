"""The ``tensorboard`` plugin: registers the tracker ``tracking=tensorboard``. Imports no tensorboard until a run
selects it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePosixPath

from coupler import hookimpl
from coupler.errors import ConfigError
from coupler.schema import param

COUPLER_API = ">=1.3,<2"  # register_trackers came with API 1.3 (coupler.hookspecs.API_VERSION)


@dataclass
class TensorBoardSchema:
    """``tracking=tensorboard``: ``tracking.tensorboard.*``."""

    directory: str = param("tensorboard", help="the folder inside the run directory that holds the event files "
                                               "(tensorboard --logdir runs/ finds them)")
    hparams: bool = param(True, help="record the run's flattened config as TensorBoard hyper-parameters")


def build_tracker(directory: str, hparams: bool):
    """The tracker; the event files are part of the run, so they live inside it and are sealed with it."""
    path = PurePosixPath(directory.replace("\\", "/"))
    if not directory or path.is_absolute() or ".." in path.parts or not path.parts:
        raise ConfigError("tracking.tensorboard.directory", directory,
                          "a relative folder inside the run directory, e.g. tensorboard (the run seals its files)")
    if _run_entry(path.parts[0]):
        raise ConfigError("tracking.tensorboard.directory", directory,
                          f"a folder of its own inside the run directory, e.g. tensorboard: {path.parts[0]} is one "
                          f"the run itself writes")
    from coupler_tensorboard.tracker import TensorBoardTracker

    return TensorBoardTracker(directory=str(path), hparams=hparams)


#: the run directory's entries an engine writes besides the core's ``RUN_ENTRIES`` (the torch engine's resume point)
ENGINE_ENTRIES = frozenset({"checkpoints"})


def _run_entry(name: str) -> bool:
    """Whether the run directory's entry ``name`` is one the run writes itself (``coupler.run_directory``): its
    files and folders, the manifest, per-split metric arrays, staging and temporary names (``.NAME``)."""
    from coupler.run_directory import MANIFEST, RUN_ENTRIES

    return (name in RUN_ENTRIES or name in ENGINE_ENTRIES or name == MANIFEST or name.startswith(".")
            or name.endswith(("_val.csv", "_test.csv")))


@hookimpl
def register_trackers(register):
    register("tensorboard", build_tracker, schema=TensorBoardSchema,
             description="TensorBoard event files in RUN/tensorboard: per-epoch scalars, final metrics, hyper-parameters")
