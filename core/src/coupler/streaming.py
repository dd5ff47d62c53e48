"""Rows that are read in batches, never all at once: the ``stream`` input format.

A data set larger than memory (``data=parquet``) reaches a model that lists ``"stream"`` in its
``input_formats`` as a ``Split`` whose ``X`` is a ``RowStream``: preprocessed rows of that split (the same
float matrix as input format ``matrix``), read on demand. A model that does not stream gets the rows in memory.

A ``RowStream`` is a list of ``Partition``\\ s: independent, picklable pieces (a Parquet row group, a slice of
an array) whose ``read()`` returns one ``Batch``. A model may read them itself (on a Dask worker, through
XGBoost's external-memory iterator) or ask ``batches()`` for shuffled, sharded batches of a fixed size (a torch
``IterableDataset``). Memory held at once: one partition plus the shuffle buffer.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np


@dataclass
class Batch:
    """Preprocessed rows: ``X`` a float matrix (rows, features), ``y`` integer class codes (classification) or
    floats (regression), ``weight`` one weight per row or None."""

    X: np.ndarray
    y: np.ndarray
    weight: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.y)


class Partition:
    """One independent piece of a stream: ``rows`` (known before it is read) and ``read()``. Picklable, so that
    a worker process or machine can read it itself."""

    rows: int
    #: whether ``read()`` gives weights (None: not known until read)
    weighted: bool | None = None

    def read(self) -> Batch:  # pragma: no cover - the contract
        raise NotImplementedError


class RowStream:
    """Preprocessed rows of one split, as partitions. Subclasses implement ``partitions()``; ``n_features`` is
    the width of ``Batch.X``."""

    n_features: int
    #: a regression target's mean and standard deviation over the stream's rows, when known without reading them
    #: (the Parquet scan measured them); None: read the stream to know
    target_moments: tuple[float, float] | None = None

    def partitions(self) -> list[Partition]:  # pragma: no cover - the contract
        raise NotImplementedError

    def __len__(self) -> int:
        return sum(p.rows for p in self.partitions())

    def batches(self, batch_size: int, *, seed: int | None = None, buffer_rows: int = 0, rank: int = 0,
                world: int = 1, drop_last: bool = False) -> Iterator[Batch]:
        """Batches of ``batch_size`` rows (the last may be smaller unless ``drop_last``).

        ``seed``: shuffle, reproducibly for one seed (give the epoch a part in it for a new order each epoch):
        the partitions' order, and the rows within a buffer of ``buffer_rows`` rows (at least one partition's).
        None: the rows in order.

        ``rank`` of ``world`` (data-parallel training): this process's share. The partitions, in the (seeded) order
        every rank computes alike, are one sequence of rows; rank ``r`` takes the ``r``-th of ``world`` equal runs
        of it, each a whole number of batches, reading only the partitions its run overlaps. Every rank yields the
        same number of batches, so that no process waits for another's last one; the rows left over (fewer than
        ``world`` batches and ``world`` rows) are skipped this epoch, other rows in another epoch's order.
        """
        if batch_size < 1:
            raise ValueError(f"batch_size={batch_size}; a batch holds at least one row")
        parts = list(self.partitions())
        rng = np.random.default_rng(seed) if seed is not None else None
        if rng is not None:
            parts = [parts[i] for i in rng.permutation(len(parts))]
        if world > 1:
            share = sum(p.rows for p in parts) // world
            share -= share % batch_size
            pieces = _rows_between(parts, rank * share, (rank + 1) * share)
            yield from _batched(pieces, batch_size, rng, buffer_rows, drop_last=True)
        else:
            yield from _batched((p.read() for p in parts), batch_size, rng, buffer_rows, drop_last=drop_last)


def _rows_between(parts: list[Partition], start: int, stop: int) -> Iterator[Batch]:
    """Rows ``start`` to ``stop`` of the partitions taken as one sequence; a partition outside is never read."""
    offset = 0
    for part in parts:
        end = offset + part.rows
        if end > start and offset < stop:
            yield _take(part.read(), slice(max(start - offset, 0), min(stop, end) - offset))
        if end >= stop:
            return
        offset = end


def _batched(pieces: Iterator[Batch], batch_size: int, rng, buffer_rows: int, drop_last: bool) -> Iterator[Batch]:
    """Re-cut ``pieces`` into batches; with ``rng``, shuffle rows within a buffer of at least ``buffer_rows``."""
    pending: list[Batch] = []
    held = 0
    for piece in pieces:
        if len(piece) == 0:
            continue
        pending.append(piece)
        held += len(piece)
        if held < (max(buffer_rows, batch_size) if rng is not None else batch_size):
            continue
        merged = _concat(pending, rng)
        usable = len(merged) - len(merged) % batch_size
        for start in range(0, usable, batch_size):
            yield _take(merged, slice(start, start + batch_size))
        rest = _take(merged, slice(usable, None))
        pending, held = ([rest], len(rest)) if len(rest) else ([], 0)
    if pending:
        merged = _concat(pending, rng)
        for start in range(0, len(merged), batch_size):
            chunk = _take(merged, slice(start, start + batch_size))
            if drop_last and len(chunk) < batch_size:
                return
            yield chunk


def _concat(pieces: list[Batch], rng) -> Batch:
    if len(pieces) == 1 and rng is None:
        return pieces[0]
    X = np.concatenate([p.X for p in pieces])
    y = np.concatenate([p.y for p in pieces])
    weight = None if any(p.weight is None for p in pieces) else np.concatenate([p.weight for p in pieces])
    if rng is not None:
        order = rng.permutation(len(y))
        X, y, weight = X[order], y[order], None if weight is None else weight[order]
    return Batch(X, y, weight)


def _take(batch: Batch, rows: slice) -> Batch:
    return Batch(batch.X[rows], batch.y[rows], None if batch.weight is None else batch.weight[rows])


@dataclass
class ArrayPartition(Partition):
    """A slice of in-memory arrays."""

    X: np.ndarray
    y: np.ndarray
    weight: np.ndarray | None = None

    @property
    def rows(self) -> int:  # type: ignore[override]
        return len(self.y)

    @property
    def weighted(self) -> bool:  # type: ignore[override]
        return self.weight is not None

    def read(self) -> Batch:
        return Batch(self.X, self.y, self.weight)


class ArrayStream(RowStream):
    """In-memory arrays as a stream of partitions of ``partition_rows`` rows (tests, and data that fits)."""

    def __init__(self, X: np.ndarray, y: np.ndarray, weight: np.ndarray | None = None,
                 partition_rows: int = 65536):
        self.X, self.y, self.weight = np.asarray(X), np.asarray(y), weight
        self.n_features = self.X.shape[1]
        self.partition_rows = max(int(partition_rows), 1)

    def __len__(self) -> int:
        return len(self.y)

    def partitions(self) -> list[Partition]:
        step = self.partition_rows
        return [ArrayPartition(self.X[i:i + step], self.y[i:i + step],
                               None if self.weight is None else self.weight[i:i + step])
                for i in range(0, len(self.y), step)]
