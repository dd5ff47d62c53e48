"""``CNN``: convolution blocks, global average pooling and a linear classifier (or regressor), on the
torch engine. Rows of pixels (``matrix`` input) are reshaped to ``input_shape`` inside the network, so the
engine feeds it like any other model; augmentation runs on training batches only, with torch ops.
An image folder (``files`` input: a DataFrame of paths) is read lazily by a ``DataLoader`` with
``num_workers`` workers, each image resized to ``input_shape`` (default 3x32x32)."""

from __future__ import annotations

import math

import torch
from torch import nn

from coupler.errors import ConfigError
from coupler.schema import defaults
from coupler_cnn.plugin import AugmentSchema
from coupler_torch.engine import TorchModel

#: the image shape of an image folder when model.input_shape is null
FILE_SHAPE = (3, 32, 32)


class Reshape(nn.Module):
    def __init__(self, shape: tuple[int, ...]):
        super().__init__()
        self.shape = tuple(shape)

    def forward(self, x):
        return x.reshape(x.shape[0], *self.shape)


class CNN(TorchModel):
    reads_files = True

    def __init__(self, task: str, seed: int, depth: int = 2, width: int = 32, kernel_size: int = 3,
                 batch_norm: bool = True, dropout: float = 0.25, input_shape=None, batch_size: int = 64,
                 augment: dict | None = None, num_workers: int = 2):
        super().__init__(task, seed, batch_size)
        # types and ranges are checked by the schema (coupler_cnn.plugin.CNNSchema) before the model is built;
        # what it cannot say is checked here: an odd kernel, three positive sizes
        if kernel_size % 2 == 0:
            raise ConfigError("model.kernel_size", kernel_size, "an odd number (3, 5, ...): padding keeps the size")
        if input_shape is not None and (len(input_shape) != 3 or min(input_shape) < 1):
            raise ConfigError("model.input_shape", input_shape, "null or [channels, height, width], e.g. [1,8,8]")
        self.num_workers, self.depth, self.width, self.kernel_size = num_workers, depth, width, kernel_size
        self.batch_norm, self.dropout = batch_norm, float(dropout)
        self.input_shape = None if input_shape is None else [int(v) for v in input_shape]
        augment = {**defaults(AugmentSchema), **(augment or {})}
        self.augmentation = {"flip": augment["flip"], "crop": augment["crop"], "rotation": float(augment["rotation"]),
                             "noise": float(augment["noise"])}

    def architecture(self) -> dict:
        return {"depth": self.depth, "width": self.width, "kernel_size": self.kernel_size,
                "batch_norm": self.batch_norm, "dropout": self.dropout, "input_shape": self.input_shape}

    def shape(self, n_inputs: int) -> tuple[int, int, int]:
        """``input_shape``; when it is null, one square channel, or 3x32x32 for an image folder."""
        if self.input_shape is not None:
            if math.prod(self.input_shape) != n_inputs:
                raise ConfigError("model.input_shape", self.input_shape,
                                  f"a shape of {n_inputs} values (the data has {n_inputs} features)")
            return tuple(self.input_shape)
        side = math.isqrt(n_inputs)
        if side * side == n_inputs:
            return (1, side, side)
        if n_inputs == math.prod(FILE_SHAPE):  # an image folder read at the default size
            return FILE_SHAPE
        raise ConfigError("model.input_shape", None, f"[channels, height, width] multiplying to {n_inputs}: "
                              f"{n_inputs} features are not a square image")

    # --- image folders: paths read by a DataLoader with workers ---------------------------------------------

    def _files(self, X) -> bool:
        return hasattr(X, "columns") and "path" in X.columns

    def input_size(self, X) -> int:
        if self._files(X):
            return math.prod(self.input_shape or FILE_SHAPE)
        return super().input_size(X)

    def _loader(self, paths, targets, sampler=None):
        """A ``DataLoader`` whose workers live as long as it does (not respawned every epoch)."""
        from torch.utils.data import DataLoader

        from coupler_cnn.image_folder import ImageFiles

        dataset = ImageFiles(paths, targets, self.shape(self.n_inputs))
        return DataLoader(dataset, batch_size=self.batch_size, sampler=sampler, num_workers=self.num_workers,
                          persistent_workers=self.num_workers > 0)

    def training_batches(self, split, epoch):
        if not self._files(split.X):
            return super().training_batches(split, epoch)
        return self._loader(split.X["path"].tolist(), self._targets(split.y),
                            sampler=_EpochOrder(len(split.X), self.seed, epoch))

    def input_batches(self, X):
        if not self._files(X):
            yield from super().input_batches(X)
            return
        cached = getattr(self, "_scoring", None)
        if cached is None or cached[0] is not X:  # the validation split is scored every epoch: keep its workers
            self._scoring = cached = (X, self._loader(X["path"].tolist(), None))
        yield from cached[1]

    def build_network(self, n_inputs: int, n_outputs: int) -> nn.Module:
        channels, height, width = self.shape(n_inputs)
        self.image_shape = (channels, height, width)
        layers: list[nn.Module] = [Reshape((channels, height, width))]
        size = min(height, width)
        for block in range(self.depth):
            out = self.width * 2**block
            for _ in range(2):
                layers.append(nn.Conv2d(channels, out, self.kernel_size, padding=self.kernel_size // 2,
                                        bias=not self.batch_norm))
                if self.batch_norm:
                    layers.append(nn.BatchNorm2d(out))
                layers.append(nn.ReLU(inplace=True))
                channels = out
            if size >= 4:
                layers.append(nn.MaxPool2d(2))
                size //= 2
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(self.dropout), nn.Linear(channels, n_outputs)]
        return nn.Sequential(*layers)

    def augment(self, x: torch.Tensor) -> torch.Tensor:
        """Random flips, shifts, rotations and noise for a training batch of flattened images."""
        options = self.augmentation
        if not (options["flip"] or options["crop"] or options["rotation"] or options["noise"]):
            return x
        channels, height, width = self.image_shape
        images = x.reshape(x.shape[0], channels, height, width)
        n = images.shape[0]
        if options["flip"]:
            flip = torch.rand(n, device=x.device) < 0.5
            images = torch.where(flip[:, None, None, None], images.flip(-1), images)
        if options["crop"] or options["rotation"]:
            angle = (torch.rand(n, device=x.device) * 2 - 1) * math.radians(options["rotation"])
            shift = torch.randint(-options["crop"], options["crop"] + 1, (n, 2), device=x.device).to(images.dtype)
            cos, sin = torch.cos(angle).to(images.dtype), torch.sin(angle).to(images.dtype)
            theta = torch.stack([
                torch.stack([cos, -sin, shift[:, 0] * 2 / width], dim=1),
                torch.stack([sin, cos, shift[:, 1] * 2 / height], dim=1),
            ], dim=1)
            grid = nn.functional.affine_grid(theta, list(images.shape), align_corners=False)
            images = nn.functional.grid_sample(images, grid, align_corners=False, padding_mode="zeros")
        if options["noise"]:
            images = images + torch.randn_like(images) * options["noise"]
        return images.reshape(x.shape)


class _EpochOrder(torch.utils.data.Sampler):
    """Row order of an epoch, seeded from (seed, epoch) like in-memory data, so a resumed run reads alike."""

    def __init__(self, n: int, seed: int, epoch):
        self.n, self.seed, self.epoch = n, seed, epoch

    def __len__(self) -> int:
        return self.n

    def __iter__(self):
        from coupler_torch.engine import _epoch_seed

        generator = torch.Generator().manual_seed(_epoch_seed(self.seed, self.epoch()))
        return iter(torch.randperm(self.n, generator=generator).tolist())
