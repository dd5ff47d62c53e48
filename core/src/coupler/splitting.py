"""Seeded train / validation / test splits, stratified for classification."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from coupler.errors import ConfigError, DataError


@dataclass(frozen=True)
class SplitIndices:
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray


def check_fractions(val: float, test: float) -> None:
    for key, value in (("split.val", val), ("split.test", test)):
        if not isinstance(value, (int, float)) or not 0 <= value < 1:
            raise ConfigError(key, value, "a fraction in [0, 1)")
    if val + test >= 1:
        raise ConfigError("split.val + split.test", val + test, "less than 1, so that rows are left to train on")


def split_indices(y: np.ndarray, *, classification: bool, val: float, test: float, stratify: str | bool,
                  seed: int, class_names: list | None = None) -> SplitIndices:
    """Positions of the train, validation and test rows of ``y``.

    The test rows are drawn first (``test`` of all rows), then the validation rows (``val`` of all rows)
    from the rest. ``stratify`` is ``auto`` (stratify classification), true or false.
    """
    check_fractions(val, test)
    if stratify not in ("auto", True, False):
        raise ConfigError("split.stratify", stratify, "auto, true or false")
    stratified = classification if stratify == "auto" else bool(stratify)
    if stratified and not classification:
        raise ConfigError("split.stratify", stratify, "auto or false for a regression task")
    positions = np.arange(len(y))
    n_splits = 1 + (val > 0) + (test > 0)
    if stratified:
        labels, counts = np.unique(y, return_counts=True)
        small = [(class_names[label] if class_names else label.item(), count)
                 for label, count in zip(labels, counts) if count < n_splits]
        if small:
            listing = ", ".join(f"{label!r} ({count} row{'s' if count > 1 else ''})" for label, count in small)
            raise DataError(
                f"cannot stratify the split: class {listing} has fewer rows than the {n_splits} splits "
                f"(train, val, test) need. Drop or merge the rare class, or set split.stratify=false."
            )
    try:
        rest, test_rows = _take(positions, y, test, seed, stratified)
        train_rows, val_rows = _take(rest, y[rest], val / (1 - test) if val else 0.0, seed, stratified)
    except ValueError as exc:
        fix = " or set split.stratify=false" if stratified else ""
        raise DataError(
            f"cannot split {len(y)} rows into val={val}, test={test}: {exc}. Give more rows, change "
            f"split.val / split.test{fix}."
        ) from None
    return SplitIndices(np.sort(train_rows), np.sort(val_rows), np.sort(test_rows))


def _take(positions: np.ndarray, y: np.ndarray, fraction: float, seed: int, stratified: bool):
    from sklearn.model_selection import train_test_split

    if fraction == 0:
        return positions, positions[:0]
    return train_test_split(positions, test_size=fraction, random_state=seed, shuffle=True,
                            stratify=y if stratified else None)
