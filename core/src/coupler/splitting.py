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
                  seed: int, class_names: list | None = None, ordered: bool = False, gap: int = 0) -> SplitIndices:
    """Positions of the train, validation and test rows of ``y``.

    The test rows are drawn first (``test`` of all rows), then the validation rows (``val`` of all rows)
    from the rest. ``stratify`` is ``auto`` (stratify classification), true or false. ``ordered`` (rows in
    time order): no drawing; the earliest rows train, the next validate, the latest test, and ``gap`` rows are
    left out at each boundary between them (windows whose targets would reach into the next split).
    """
    check_fractions(val, test)
    if stratify not in ("auto", True, False):
        raise ConfigError("split.stratify", stratify, "auto, true or false")
    stratified = classification if stratify == "auto" else bool(stratify)
    if stratified and not classification:
        raise ConfigError("split.stratify", stratify, "auto or false for a regression task")
    if ordered:
        n = len(y)
        n_test, n_val = int(round(test * n)), int(round(val * n))
        n_train = n - n_val - n_test - gap * ((val > 0) + (test > 0))
        if n_train < 1 or (test > 0 and n_test == 0) or (val > 0 and n_val == 0):
            raise DataError(f"cannot split {n} rows into val={val}, test={test}"
                            f"{f' with {gap} left out at each boundary' if gap else ''}: every split needs rows.")
        val_start = n_train + (gap if val > 0 else 0)
        test_start = val_start + n_val + (gap if test > 0 else 0)
        return SplitIndices(np.arange(n_train), np.arange(val_start, val_start + n_val),
                            np.arange(test_start, test_start + n_test))
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
    n = len(y)
    n_test, n_val = int(round(test * n)), int(round(val * n))
    if n - n_test - n_val < 1 or (test > 0 and n_test == 0) or (val > 0 and n_val == 0):
        raise DataError(f"cannot split {n} rows into val={val}, test={test}: every split needs rows. Give more "
                        f"rows, or change split.val / split.test.")
    rng = np.random.default_rng(seed)
    if not stratified:
        order = rng.permutation(n)
        return SplitIndices(np.sort(order[n_test + n_val:]), np.sort(order[n_test:n_test + n_val]),
                            np.sort(order[:n_test]))
    groups = [np.flatnonzero(y == label) for label in labels]
    counts = np.array([len(g) for g in groups])
    tests, vals = _allocate(counts, n_test), _allocate(counts, n_val)
    parts: dict[str, list] = {"train": [], "val": [], "test": []}
    for group, t, v in zip(groups, tests, vals):
        t, v = min(t, len(group) - 1), min(v, max(len(group) - 1 - t, 0))  # each class keeps a training row
        shuffled = rng.permutation(group)
        parts["test"].append(shuffled[:t])
        parts["val"].append(shuffled[t:t + v])
        parts["train"].append(shuffled[t + v:])
    return SplitIndices(*(np.sort(np.concatenate(parts[k])) for k in ("train", "val", "test")))


def split_rows(y: np.ndarray, task: str, settings: dict, seed: int, class_names: list | None = None,
               ordered: bool = False, gap: int = 0) -> SplitIndices:
    """``split_indices`` for a task and the config's ``split`` settings: what a run and its reload both use."""
    return split_indices(y, classification=task != "regression", val=settings["val"], test=settings["test"],
                         stratify=settings["stratify"], seed=seed, class_names=class_names, ordered=ordered, gap=gap)


def _allocate(counts: np.ndarray, total: int) -> np.ndarray:
    """Split ``total`` rows across classes in proportion to ``counts`` (largest remainders round up)."""
    exact = counts * total / counts.sum()
    share = np.floor(exact).astype(int)
    share[np.argsort(-(exact - share), kind="stable")[: total - share.sum()]] += 1
    return share
