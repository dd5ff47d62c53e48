"""``data=parquet data.path=DIR``: a directory of Parquet files (a partitioned data set), read lazily.

Nothing reads the whole table at once. Opening the directory reads the files' footers only (schema, row groups).
Each row's split is a seeded hash of its ``data.key`` column, or of the whole row (``split_codes``), so that a
row's split is known from the row alone: no pass over the table, no index arrays. One streaming pass over the
row groups (``scan``) counts each split's rows, gathers the target's classes, and fits the preprocessing on the
training rows: running statistics for numbers (mean and variance by Chan's combination, minimum, maximum),
counts for categories, and a seeded sample of ``SAMPLE_ROWS`` training rows for the median (an estimate: the
sample's median) and for ``coupler drift``'s record. The result is an ordinary ``Preprocessor``'s state.

A model that lists the ``stream`` input format gets each split as a ``ParquetStream`` (``coupler.streaming``):
one ``ParquetPartition`` per row group, preprocessed as it is read. Any other model gets the rows in memory
(``materialize``): the same split, the same checks as a single file's.
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from coupler.dataset import MAX_INFERRED_CLASSES, Dataset, check_unique_columns
from coupler.errors import DataError, did_you_mean, plain
from coupler.streaming import Batch, Partition, RowStream

log = logging.getLogger("coupler.data")

#: training rows kept, seeded, for the medians and the drift record
SAMPLE_ROWS = 50_000
#: distinct target values tracked while scanning; more, and a numeric target is a regression target
DISTINCT_TRACKED = 1_000
SPLITS = ("train", "val", "test")


def _hash_key(seed: int) -> str:
    return f"{seed:016d}"[-16:]  # pandas' hash key: 16 characters


def split_codes(frame, seed: int, val: float, test: float, key: str | None, booleans=()) -> np.ndarray:
    """Each row's split (0 train, 1 val, 2 test) from a seeded hash of its ``key`` column, or of the whole row:
    a fraction ``val`` of rows validate and ``test`` test, in expectation; equal rows share a split. ``booleans``:
    the columns of true/false values (objects in a row group that has a missing one)."""
    import pandas as pd

    frame = frame[[key]] if key else frame
    # integers and booleans as floats: they read as floats (objects) in a row group that has a missing value, and
    # a row's split must not depend on its neighbours
    integers = {c: frame[c].astype("float64") for c in frame.columns
                if pd.api.types.is_integer_dtype(frame[c]) or pd.api.types.is_bool_dtype(frame[c]) or c in booleans}
    hashed = pd.util.hash_pandas_object(frame.assign(**integers) if integers else frame, index=False,
                                        hash_key=_hash_key(seed))
    uniform = (hashed.to_numpy() >> np.uint64(11)).astype(np.float64) / float(1 << 53)
    codes = np.zeros(len(uniform), dtype=np.int8)
    codes[uniform >= 1.0 - val - test] = 1
    codes[uniform >= 1.0 - test] = 2
    return codes


@dataclass
class Fragment:
    """One row group of one file (a pyarrow fragment, picklable), and its raw row count."""

    fragment: object
    rows: int


class ParquetDataset:
    """A directory of Parquet files, opened lazily: schema, columns and row groups, no rows."""

    def __init__(self, directory: Path, label: str, target, features, categorical, key):
        import pyarrow.dataset as ds

        from coupler.builtin.datasets import _as_list

        self.directory, self.label = directory, label
        self.name = f"parquet:{directory.name}"
        files = parquet_files(directory)
        if not files:
            raise DataError(f"{label}: the directory holds no file; give a directory of Parquet files.")
        from coupler.builtin.datasets import PARQUET_MAGIC, is_parquet

        others = [str(p.relative_to(directory)) for p in files if not is_parquet(p)]
        if others:
            raise DataError(f"{label}: {len(others)} file(s) in the directory are not Parquet (a Parquet file starts "
                            f"with {PARQUET_MAGIC.decode()}): {others[:5]}. Move them out of the directory.")
        self.files = files
        try:
            self._dataset = ds.dataset([str(p) for p in files], format="parquet",
                                       partitioning=ds.partitioning(flavor="hive"),
                                       partition_base_dir=str(directory))
            self.fragments = [Fragment(group, group.row_groups[0].num_rows)
                              for fragment in self._dataset.get_fragments()
                              for group in fragment.split_by_row_group()]
        except Exception as exc:  # pyarrow raises several types for damaged or mismatched files
            reason = (str(exc).strip().splitlines() or [""])[0]
            raise DataError(f"{label}: not a readable Parquet data set ({type(exc).__name__}: {reason}). All files "
                            f"need one schema (the same columns and types).") from None
        self.schema = self._dataset.schema
        _check_one_schema(self._dataset, label, directory)
        columns = list(self.schema.names)
        check_unique_columns(columns, label)
        if target is None or isinstance(target, (list, dict, bool)):
            raise DataError(f"data.target is required: name one column to predict; columns are {columns}.")
        self.target = str(target)
        explicit = _as_list(categorical, "data.categorical") or []
        features = _as_list(features, "data.features")
        self.key = None if key is None else str(key)
        for name, wanted in (("data.target", [self.target]), ("data.features", features or []),
                             ("data.categorical", explicit), ("data.key", [self.key] if self.key else [])):
            unknown = [c for c in wanted if c not in columns]
            if unknown:
                raise DataError(f"{name}: no column {unknown[0]!r}.{did_you_mean(unknown[0], columns)} Columns are "
                                f"{columns}.")
        self.features = features if features is not None else [c for c in columns if c not in (self.target, self.key)]
        if self.target in self.features:
            raise DataError(f"data.features includes the target {self.target!r}; remove it.")
        import pyarrow as pa

        empty = _pandas(self.schema.empty_table())
        self.dtypes = empty[self.features].dtypes
        numeric = {f.name for f in self.schema if pa.types.is_integer(f.type) or pa.types.is_floating(f.type)
                   or pa.types.is_decimal(f.type)}  # decimals (Spark's) are read as floats
        self.categorical = list(dict.fromkeys([*explicit, *(c for c in self.features if c not in numeric)]))
        #: columns of true/false: hashed as numbers, whether or not their row group has a missing value
        self.booleans = [f.name for f in self.schema if pa.types.is_boolean(f.type)]
        self.target_dtype = empty[self.target].dtype
        self.read_columns = list(dict.fromkeys([*self.features, self.target, *([self.key] if self.key else [])]))

    def fingerprint(self) -> str:
        """A hash of each file's relative name, size and modification time (nanoseconds): make's and rsync's quick
        check, without reading the rows."""
        digest = hashlib.sha256()
        for path in self.files:
            stat = path.stat()
            digest.update(f"{path.relative_to(self.directory)}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
        return digest.hexdigest()

    def read(self, fragment: Fragment, columns: list[str] | None = None):
        """One row group as a DataFrame, rows whose target is missing dropped."""
        frame = read_fragment(fragment.fragment, self.schema, columns or self.read_columns)
        return frame[frame[self.target].notna()] if self.target in frame else frame

    def materialize(self, seed: int, val: float, test: float) -> tuple[Dataset, np.ndarray]:
        """The whole table in memory, checked as a single file is (``coupler.builtin.datasets.table``), and each
        row's split code."""
        import pandas as pd

        from coupler.builtin.datasets import table

        frames = [self.read(f) for f in self.fragments]
        if not sum(map(len, frames)):
            raise DataError(f"{self.label}: the data set has no row with a target.")
        codes = np.concatenate([split_codes(f[self.read_columns], seed, val, test, self.key, self.booleans)
                                for f in frames])
        frame = pd.concat(frames, ignore_index=True)
        dataset = table(frame, name=self.name, target=self.target, features=self.features,
                        categorical=self.categorical)
        return dataset, codes


def parquet_files(directory: Path) -> list[Path]:
    """Every file under ``directory``, linked folders followed (each real folder once), sorted; files and folders
    whose name starts with ``.`` or ``_`` are left out: what Spark, Hive and editors leave beside the data
    (``_SUCCESS``, ``_metadata``, ``.crc``, ``.DS_Store``). ``coupler predict`` reads a directory the same way."""
    found, seen = [], set()
    for folder, folders, names in os.walk(directory, followlinks=True):
        real = os.path.realpath(folder)
        if real in seen:  # a link back up the tree, or a second link to one folder
            folders[:] = []
            continue
        seen.add(real)
        folders[:] = [f for f in folders if not f.startswith((".", "_"))]
        found += [Path(folder) / n for n in names if not n.startswith((".", "_")) and os.path.isfile(Path(folder) / n)]
    return sorted(found)


def read_fragment(fragment, schema, columns: list):
    """One row group's ``columns`` as a DataFrame; a read that fails names the file."""
    try:
        table = fragment.to_table(schema=schema, columns=columns)
    except Exception as exc:  # pyarrow raises several types for a damaged file
        reason = (str(exc).strip().splitlines() or [""])[0]
        raise DataError(f"{fragment.path}: not readable ({type(exc).__name__}: {reason}).") from None
    return _pandas(table)


def _pandas(table):
    """``table.to_pandas()``, decimal columns as floats."""
    import pyarrow as pa

    decimals = [i for i, f in enumerate(table.schema) if pa.types.is_decimal(f.type)]
    for i in decimals:
        table = table.set_column(i, table.schema[i].name, table.column(i).cast(pa.float64()))
    return table.to_pandas()


def _check_one_schema(dataset, label: str, directory: Path) -> None:
    """Every file holds every column of the data set's schema (the first file's), in its type: pyarrow would
    fill a missing column with nulls and cast another type, or fail halfway through the scan."""
    schema = dataset.schema
    partitions = set(dataset.partitioning.schema.names) if dataset.partitioning else set()
    for fragment in dataset.get_fragments():
        physical = fragment.physical_schema
        for column in schema:
            if column.name in partitions:
                continue
            index = physical.get_field_index(column.name)
            where = f"{label}: file {os.path.relpath(fragment.path, directory)}"
            if index < 0:
                raise DataError(f"{where} has no column {column.name!r}, which the first file has; every file of the "
                                f"directory needs the same columns. Move the file out, or rewrite it.")
            if not physical.field(index).type.equals(column.type):
                raise DataError(f"{where}: column {column.name!r} is {physical.field(index).type}, and "
                                f"{column.type} in the first file; every file needs the same types. Rewrite the "
                                f"file with that type.")


# --- the streaming pass ------------------------------------------------------------------------------------

@dataclass
class _Numbers:
    """Running statistics of one numeric column over the training rows (Chan et al.'s pairwise combination)."""

    count: int = 0
    mean: float = 0.0
    m2: float = 0.0
    low: float = np.inf
    high: float = -np.inf
    missing: int = 0

    def add(self, values: np.ndarray) -> None:
        present = values[~np.isnan(values)]
        self.missing += len(values) - len(present)
        if not len(present):
            return
        n, mean = len(present), float(present.mean())
        m2 = float(((present - mean) ** 2).sum())
        total = self.count + n
        delta = mean - self.mean
        self.mean += delta * n / total
        self.m2 += m2 + delta * delta * self.count * n / total
        self.count = total
        self.low, self.high = min(self.low, float(present.min())), max(self.high, float(present.max()))

    def state(self, impute: str, scale: str, median: float) -> dict:
        fill = {"median": median, "mean": self.mean, "zero": 0.0}[impute]
        total = self.count + self.missing
        mean = (self.count * self.mean + self.missing * fill) / total
        m2 = self.m2 + self.count * (self.mean - mean) ** 2 + self.missing * (fill - mean) ** 2
        low, high = (min(self.low, fill), max(self.high, fill)) if self.missing else (self.low, self.high)
        if scale == "standard":
            offset, spread = mean, (m2 / total) ** 0.5
        elif scale == "minmax":
            offset, spread = low, high - low
        else:
            offset, spread = 0.0, 1.0
        return {"fill": float(fill), "offset": float(offset), "scale": float(spread) if spread > 0 else 1.0}


@dataclass
class Scan:
    """What one pass over the data set learned: rows per split per row group, the target's distinct values
    (``many``: more than ``DISTINCT_TRACKED``), the training rows' statistics and a seeded sample of them."""

    rows: list[tuple[int, int, int]] = field(default_factory=list)
    labels: set = field(default_factory=set)
    many: bool = False
    integral: bool = True
    numbers: dict[str, _Numbers] = field(default_factory=dict)
    counts: dict[str, dict] = field(default_factory=dict)
    class_counts: dict = field(default_factory=dict)
    sample: object = None
    dropped: int = 0
    target: _Numbers = field(default_factory=_Numbers)  # the training rows' target, when it holds numbers

    def split_rows(self, split: str) -> int:
        return sum(r[SPLITS.index(split)] for r in self.rows)


def scan(data: ParquetDataset, seed: int, val: float, test: float) -> Scan:
    """One pass over every row group: see ``Scan``. Memory: one row group and the sample."""
    import pandas as pd

    from coupler.preprocessing import category_text

    result = Scan(numbers={c: _Numbers() for c in data.features if c not in data.categorical},
                  counts={c: {} for c in data.categorical})
    rng = np.random.default_rng(seed)
    sample, priorities = [], np.empty(0)
    for fragment in data.fragments:
        raw = read_fragment(fragment.fragment, data.schema, data.read_columns)
        keep = raw[data.target].notna().to_numpy()
        result.dropped += int((~keep).sum())
        frame = raw[keep]
        codes = split_codes(frame[data.read_columns], seed, val, test, data.key, data.booleans)
        result.rows.append(tuple(int((codes == k).sum()) for k in range(3)))
        target = frame[data.target]
        if not result.many:
            result.labels.update(plain(v) for v in pd.unique(target))
            result.many = len(result.labels) > DISTINCT_TRACKED
        if pd.api.types.is_numeric_dtype(target) and not pd.api.types.is_bool_dtype(target) and result.integral:
            values = target.to_numpy(dtype=float)
            result.integral = bool((values == np.round(values)).all())
        train = frame[codes == 0]
        if not len(train):
            continue
        if pd.api.types.is_numeric_dtype(train[data.target]) and not pd.api.types.is_bool_dtype(train[data.target]):
            result.target.add(train[data.target].to_numpy(dtype=float))
        if not result.many:
            for label, count in train[data.target].map(plain).value_counts().items():
                result.class_counts[label] = result.class_counts.get(label, 0) + int(count)
        for column, numbers in result.numbers.items():
            numbers.add(pd.to_numeric(train[column], errors="coerce").to_numpy(dtype=float))
        for column, counts in result.counts.items():
            for value, count in category_text(train[column]).value_counts().items():
                counts[value] = counts.get(value, 0) + int(count)
        # the sample: the SAMPLE_ROWS training rows of lowest random priority so far (a seeded reservoir)
        drawn = rng.random(len(train))
        sample.append(train[data.features])
        priorities = np.concatenate([priorities, drawn])
        if len(priorities) > 2 * SAMPLE_ROWS:
            sample, priorities = _keep_lowest(sample, priorities)
    if sample:
        sample, priorities = _keep_lowest(sample, priorities)
        result.sample = sample[0]
    if result.dropped:
        log.warning("data %s: dropping %d row(s) whose target %r is missing", data.name, result.dropped, data.target)
    return result


def _keep_lowest(frames: list, priorities: np.ndarray) -> tuple[list, np.ndarray]:
    import pandas as pd

    frame = pd.concat(frames) if len(frames) > 1 else frames[0]
    order = np.argsort(priorities, kind="stable")[:SAMPLE_ROWS]
    order.sort()  # the kept rows in the data's order
    return [frame.iloc[order]], priorities[order]


def target_values(data: ParquetDataset, found: Scan):
    """A Series standing for the target (its distinct values, in its dtype) for ``coupler.dataset.infer_task``."""
    import pandas as pd

    values = sorted(found.labels, key=lambda v: (str(type(v)), v))
    if found.many and not (pd.api.types.is_numeric_dtype(data.target_dtype)
                           and not pd.api.types.is_bool_dtype(data.target_dtype)):
        raise DataError(f"{data.label}: the target {data.target!r} holds more than {DISTINCT_TRACKED} distinct "
                        f"values that are not numbers: too many classes. Choose another target column.")
    if found.many or (not found.integral and pd.api.types.is_numeric_dtype(data.target_dtype)):
        # a numeric target with many values, or fractions: regression; two stand-in values say so
        return pd.Series([0.5, 1.5] if not found.integral else list(range(MAX_INFERRED_CLASSES + 1)),
                         name=data.target, dtype=float if not found.integral else "int64")
    return pd.Series(values, name=data.target, dtype=data.target_dtype)


def fit_preprocessor(data: ParquetDataset, found: Scan, settings: dict):
    """The ``Preprocessor`` (input format ``matrix``) that the scan's statistics define: what
    ``Preprocessor.fit`` would learn from the training rows, the median taken from the sample."""
    from coupler.preprocessing import Preprocessor, _check_onehot_size

    preprocessor = Preprocessor(**settings)
    train_rows = found.split_rows("train")
    if not train_rows:
        raise DataError(f"{data.label}: no row fell in the training split; the data set has "
                        f"{sum(map(sum, found.rows))} row(s) with a target.")
    numeric, categorical = {}, {}
    for column in data.features:
        if column in data.categorical:
            counts = found.counts[column]
            fill = min(counts, key=lambda v: (-counts[v], v)) if counts else ""
            categorical[column] = {"fill": fill, "categories": sorted(set(counts) | {fill})}
            if preprocessor.encode == "onehot":
                _check_onehot_size(column, len(categorical[column]["categories"]), train_rows)
            continue
        numbers = found.numbers[column]
        if not numbers.count:
            raise DataError(f"feature column {column!r} has no numeric value in the training split; name it in "
                            f"data.categorical if it holds categories, or drop it with data.features.")
        import pandas as pd

        median = float(np.nanmedian(pd.to_numeric(found.sample[column], errors="coerce").to_numpy(dtype=float)))
        numeric[column] = numbers.state(preprocessor.impute, preprocessor.scale, median)
    return Preprocessor.from_state({"impute": preprocessor.impute, "scale": preprocessor.scale,
                                    "encode": preprocessor.encode, "columns": list(data.features),
                                    "input_format": "matrix", "numeric": numeric, "categorical": categorical})


# --- the stream ----------------------------------------------------------------------------------------------

@dataclass
class ParquetPartition(Partition):
    """One row group's rows of one split (``split`` -1: all its rows), preprocessed when read (on whichever
    process or machine reads it)."""

    fragment: object
    schema: object
    columns: list
    features: list
    target: str
    key: str | None
    seed: int
    fractions: tuple[float, float]
    split: int
    rows: int  # type: ignore[misc]
    preprocessor_state: dict
    task: str
    classes: list
    class_weights: list | None = None
    booleans: tuple = ()

    @property
    def weighted(self) -> bool:  # type: ignore[override]
        return self.class_weights is not None

    def read(self) -> Batch:
        from coupler.dataset import encode_target
        from coupler.preprocessing import Preprocessor

        frame = read_fragment(self.fragment, self.schema, self.columns)
        frame = frame[frame[self.target].notna()]
        if self.split >= 0:
            frame = frame[split_codes(frame[self.columns], self.seed, *self.fractions, self.key, self.booleans)
                          == self.split]
        preprocessor = Preprocessor.from_state(self.preprocessor_state)
        X = np.asarray(preprocessor.transform(frame[self.features], "matrix"), dtype=np.float32)
        y, _ = encode_target(frame[self.target], self.task, self.classes or None)
        weight = None if self.class_weights is None else np.asarray(self.class_weights)[y]
        return Batch(X, y, weight)


class ParquetStream(RowStream):
    """One split of a ``ParquetDataset``: a partition per row group that holds rows of the split."""

    def __init__(self, partitions: list[ParquetPartition], n_features: int):
        self._partitions, self.n_features = partitions, n_features
        self._rows = sum(p.rows for p in partitions)

    def __len__(self) -> int:
        return self._rows

    def partitions(self) -> list[Partition]:
        return list(self._partitions)


def streams(data: ParquetDataset, found: Scan, preprocessor, seed: int, val: float, test: float, task: str,
            classes: list, class_weights: list | None) -> dict[str, ParquetStream]:
    """Each split as a ``ParquetStream`` (only the training split weighted)."""
    n_features = len(preprocessor.feature_names("matrix"))
    state = preprocessor.state()
    result = {}
    for code, split in enumerate(SPLITS):
        parts = [ParquetPartition(fragment.fragment, data.schema, data.read_columns, data.features, data.target,
                                  data.key, seed, (val, test), code, rows[code], state, task, classes,
                                  class_weights if split == "train" else None, tuple(data.booleans))
                 for fragment, rows in zip(data.fragments, found.rows) if rows[code]]
        result[split] = ParquetStream(parts, n_features)
    if task == "regression" and found.target.count:  # what the torch engine standardizes the target with
        result["train"].target_moments = (found.target.mean, (found.target.m2 / found.target.count) ** 0.5)
    return result


def unscanned_streams(data: ParquetDataset, preprocessor, seed: int, val: float, test: float, task: str,
                      classes: list, splits=SPLITS) -> dict[str, ParquetStream]:
    """Streams of a finished run's splits (``coupler evaluate``), or of all rows (``splits=("all",)``), without a
    scan: each row group is one partition, and a stream's length is an upper bound until it is read."""
    state, n_features = preprocessor.state(), len(preprocessor.feature_names("matrix"))
    return {split: ParquetStream([ParquetPartition(f.fragment, data.schema, data.read_columns, data.features,
                                                   data.target, data.key, seed, (val, test),
                                                   SPLITS.index(split) if split in SPLITS else -1, f.rows, state,
                                                   task, classes, None, tuple(data.booleans))
                                  for f in data.fragments], n_features)
            for split in splits}


def open_directory(path, target, features, categorical, key) -> ParquetDataset:
    directory = Path(str(path)).expanduser().absolute()  # reads happen later, perhaps elsewhere (a Dask worker)
    return ParquetDataset(directory, f"data.path={path}", target, features, categorical, key)
