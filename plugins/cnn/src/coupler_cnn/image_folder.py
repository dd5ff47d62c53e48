"""``data=image_folder``: one subfolder per class, images read lazily (Pillow) by a ``DataLoader`` with
workers while the model trains. The dataset holds the images' paths (input format ``files``)."""

from __future__ import annotations

from pathlib import Path

from coupler.dataset import Dataset
from coupler.errors import DataError

SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}


def load_image_folder(path) -> Dataset:
    """The images under ``path`` (``data.path``, required: the schema refuses a run without it before any data
    is read), one subfolder per class."""
    import pandas as pd

    root = Path(str(path)).expanduser()
    if not root.is_dir():
        raise DataError(f"data.path={path}: no such folder.")
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    rows = [(str(file.resolve()), label) for label in classes for file in sorted((root / label).rglob("*"))
            if file.suffix.lower() in SUFFIXES and file.is_file()]
    found = sorted({label for _, label in rows})
    if len(found) < 2:
        raise DataError(f"data.path={path}: an image folder holds one subfolder per class, each with images "
                        f"({', '.join(sorted(SUFFIXES))}); found images for {len(found)} class(es) {found}.")
    X = pd.DataFrame({"path": [p for p, _ in rows]})
    return Dataset(X, pd.Series([label for _, label in rows], name="label"), name=f"image_folder:{root.name}",
                   files=True)


class ImageFiles:
    """A map-style torch dataset: image ``i`` resized to (height, width), as a flat float vector in [-1, 1]."""

    def __init__(self, paths, targets, shape: tuple[int, int, int]):
        self.paths, self.targets, self.shape = list(paths), targets, shape

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int):
        import numpy as np
        import torch
        from PIL import Image, UnidentifiedImageError

        channels, height, width = self.shape
        try:
            with Image.open(self.paths[index]) as image:
                image = image.convert("RGB" if channels == 3 else "L").resize((width, height))
                pixels = np.asarray(image, dtype=np.float32) / 127.5 - 1.0
        except (OSError, UnidentifiedImageError) as exc:
            raise DataError(f"cannot read image {self.paths[index]}: {exc}") from None
        x = torch.from_numpy(pixels.reshape(height, width, -1).transpose(2, 0, 1).reshape(-1).copy())
        return x if self.targets is None else (x, self.targets[index])
