"""The ``cnn`` plugin: registers ``model=cnn`` and ``data=image_folder``, each with its schema (the single source
of its parameters: defaults, checks, ``coupler train --help``). Imports no torch."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from coupler import hookimpl
from coupler.schema import param
from coupler_torch.contract import TorchContract  # what its models declare, without importing torch

COUPLER_API = ">=1.2,<2"  # the plugin API versions this plugin supports (coupler.hookspecs.API_VERSION)


@dataclass
class AugmentSchema:
    """``model.augment``: random changes to each training batch (torch ops; the validation and test splits are
    never augmented)."""

    flip: bool = param(False, help="random horizontal flip (wrong for digits and text)")
    crop: int = param(1, help="random shift by up to this many pixels", ge=0)
    rotation: float = param(10.0, help="random rotation by up to this many degrees", ge=0, le=180)
    noise: float = param(0.0, help="Gaussian noise with this standard deviation", ge=0, le=10)


@dataclass
class CNNSchema:
    """``model=cnn``: a convolutional network on the torch engine. Rows of pixels are reshaped to ``input_shape``;
    optimizer: optimizer=...; epochs: trainer.max_epochs. Checked beyond the schema (in ``CNN``): kernel_size odd,
    input_shape three positive sizes multiplying to the data's feature count."""

    depth: int = param(2, help="convolution blocks (two conv layers each; 2x2 max-pooling while the image is 4 px "
                                "or more)", ge=1)
    width: int = param(32, help="channels of the first block, doubled in each further block", ge=1)
    kernel_size: int = param(3, help="convolution kernel size, odd (3, 5, ...) so that padding keeps the size", ge=1)
    batch_norm: bool = param(True, help="batch normalization after each convolution")
    dropout: float = param(0.25, help="dropout probability before the linear head", ge=0, le=0.95)
    input_shape: list[int] | None = param(None, help="[channels, height, width] each row is reshaped to; null: one "
                                                     "square channel (3x32x32 for an image folder)")
    batch_size: int = param(64, help="rows per training batch", ge=1)
    num_workers: int = param(2, help="DataLoader workers reading an image folder (data=image_folder)", ge=0)
    augment: AugmentSchema = param(default_factory=AugmentSchema, help="training-batch augmentation")


@dataclass
class ImageFolderSchema:
    """``data=image_folder``: one subfolder per class, each holding images (png, jpg, bmp, gif, tif, webp), read
    lazily while the model trains; the model resizes each image to model.input_shape (cnn: 3x32x32 by default)."""

    path: str = param(help="the folder holding one subfolder of images per class")


def build_cnn(task: str, seed: int, depth, width, kernel_size, batch_norm, dropout, input_shape, batch_size, augment,
              num_workers):
    from coupler_cnn.model import CNN

    return CNN(task=task, seed=seed, depth=depth, width=width, kernel_size=kernel_size, batch_norm=batch_norm,
               dropout=dropout, input_shape=input_shape, batch_size=batch_size, augment=augment,
               num_workers=num_workers)


build_cnn.returns = TorchContract


def load_image_folder(path):
    from coupler_cnn.image_folder import load_image_folder

    return load_image_folder(path=path)


@hookimpl
def register_models(register):
    register("cnn", build_cnn, schema=CNNSchema,
             description="a convolutional network (torch engine; depth, width, batch norm, augmentation)")


@hookimpl
def register_data_loaders(register):
    register("image_folder", load_image_folder, schema=ImageFolderSchema,
             description="an image folder, one subfolder per class: data.path=DIR (read lazily, with workers)")


@hookimpl
def register_config_dirs(register):
    """``conf/search/MODEL.yaml``: the search space of each model of this plugin (``coupler train -m search=MODEL``,
    with coupler-optuna installed). The plugin that knows a model's parameters ships its space, listed with it as
    the provider (``coupler train --help``, ``coupler plugins``)."""
    register(Path(__file__).parent / "conf")
