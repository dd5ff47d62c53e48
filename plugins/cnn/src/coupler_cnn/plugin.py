"""The ``cnn`` plugin: registers ``model=cnn`` and ``data=image_folder``. Imports no torch."""

from __future__ import annotations

from pathlib import Path

from coupler import hookimpl
from coupler_torch.contract import TorchContract  # what its models declare, without importing torch

COUPLER_API = ">=1.0,<2"  # the plugin API versions this plugin supports (coupler.hookspecs.API_VERSION)


def build_cnn(task: str, seed: int, depth: int = 2, width: int = 32, kernel_size: int = 3, batch_norm: bool = True,
              dropout: float = 0.25, input_shape=None, batch_size: int = 64, augment: dict | None = None,
              num_workers: int = 2):
    from coupler_cnn.model import CNN

    return CNN(task=task, seed=seed, depth=depth, width=width, kernel_size=kernel_size, batch_norm=batch_norm,
               dropout=dropout, input_shape=input_shape, batch_size=batch_size, augment=augment,
               num_workers=num_workers)


build_cnn.returns = TorchContract


def load_image_folder(path=None):
    from coupler_cnn.image_folder import load_image_folder

    return load_image_folder(path=path)


@hookimpl
def register_models(register):
    register("cnn", build_cnn, description="a convolutional network (torch engine; depth, width, batch norm, augmentation)")


@hookimpl
def register_data_loaders(register):
    register("image_folder", load_image_folder,
             description="an image folder, one subfolder per class: data.path=DIR (read lazily, with workers)")


@hookimpl
def register_config_dirs(register):
    register(Path(__file__).parent / "conf")
