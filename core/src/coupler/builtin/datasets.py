"""Built-in data loaders: scikit-learn's bundled sets, and CSV / Parquet files of the user's own.

Files of the user's own are where bad data comes from, so the loaders read them warily: a Parquet file
named ``.csv`` (and the converse) is told by its first bytes; a header naming a column twice is read raw,
before pandas renames the second ``a.1``; a byte that is not in the file's encoding is reported at its
offset in the file; a column of numbers with a few stray text values, and a target mixing numbers and text,
are named with the values and their rows. ``read_csv_file`` and ``read_parquet_file`` serve ``coupler
predict`` too.

Each loader declares its parameters once, as a schema (``CsvSchema``, ``ParquetSchema``; the bundled sets take
none): Hydra's node for ``data=csv``, the checks of the command line and of the composed node before the loader
runs, and ``coupler train data=csv --help`` all come from it. The annotated types below say in words what a
parameter takes, so that ``data.path={a:1}`` is refused naming the key, the value and that.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from coupler.dataset import SHOWN, Dataset, check_unique_columns, data_rows
from coupler.errors import DataError, did_you_mean, shown
from coupler.hookspecs import hookimpl
from coupler.schema import param

COUPLER_API = ">=1.2,<2"  # the plugin API versions this plugin supports (coupler.hookspecs.API_VERSION)

log = logging.getLogger("coupler.data")

#: name -> (scikit-learn loader, description)
BUNDLED = {
    "iris": ("load_iris", "iris flowers: 150 rows, 4 features, 3 classes"),
    "wine": ("load_wine", "wine cultivars: 178 rows, 13 features, 3 classes"),
    "breast_cancer": ("load_breast_cancer", "breast cancer diagnosis: 569 rows, 30 features, 2 classes"),
    "digits": ("load_digits", "8x8 handwritten digits: 1797 rows, 64 pixel features, 10 classes"),
    "diabetes": ("load_diabetes", "diabetes progression: 442 rows, 10 features, regression"),
}
#: markers read as missing, besides pandas' own ('', 'NA', 'N/A', 'NaN', 'null', 'None', ...)
NA_VALUES = ["?"]
#: the first (and last) four bytes of every Parquet file
PARQUET_MAGIC = b"PAR1"

#: what the CSV and Parquet loaders' parameters take, in words (the schemas' types; a value of another type is
#: refused with these words). A path or a column may be a number: a file named 2024, a CSV header "3".
FilePath = Annotated[str | int | Path | None, "one value, the path of a file (data.path=FILE)"]
FileOrDirectory = Annotated[str | int | Path | None, "one value, the path of a file or a directory (data.path=DIR)"]
Column = Annotated[str | int | None, "one column name (data.target=COLUMN)"]
KeyColumn = Annotated[str | int | None, "one column name (data.key=COLUMN)"]
Columns = Annotated[str | int | list[str | int] | None, "a column name or a list of them ([a,b])"]
Markers = Annotated[str | int | float | list[str | int | float] | None, "a marker or a list of them (['?','n/a'])"]
Text = Annotated[str, "one value, as text"]


@dataclass
class BundledSchema:
    """A bundled set (``data=iris``, ...): it takes no parameters."""


@dataclass
class TableSchema:
    """What every table of the user's own takes."""

    path: FilePath = param(help="the file; a relative path starts at the current directory")
    target: Column = param(help="the column to predict; rows where it is missing are dropped with a warning")
    features: Columns = param(None, help="a list of feature columns; null takes every column but the target")
    categorical: Columns = param(None, help="columns to treat as categories; text and boolean columns always are")


@dataclass
class ParquetSchema(TableSchema):
    """``data=parquet``: a Parquet file of the user's own, or a directory of them (a partitioned data set, read
    lazily: ``coupler.parquet``)."""

    path: FileOrDirectory = param(help="the file, or a directory of Parquet files read lazily (hive partitions such as "
                                "year=2024/ are columns); a relative path starts at the current directory")
    key: KeyColumn = param(None, help="a directory's split: a column whose seeded hash assigns each row's split (rows "
                                   "of one key stay together); null: the hash of the whole row")


@dataclass
class CsvSchema(TableSchema):
    """``data=csv``: a CSV file of the user's own; what a Parquet file says itself (missing values, the
    separator, the encoding) is set here."""

    na_values: Markers = param(default_factory=lambda: list(NA_VALUES),
                               help="markers read as missing, besides pandas' own (empty, NA, N/A, NaN, null, None, "
                                    "...); null: only ?")
    sep: Text = param(",", help="the field separator")
    encoding: Text = param("utf-8", help="the file's text encoding (latin-1, cp1252, ...)")


def bundled_loader(name: str, function: str):
    def load() -> Dataset:
        from sklearn import datasets

        bunch = getattr(datasets, function)(as_frame=True)
        y = bunch.target.rename("target")
        names = getattr(bunch, "target_names", None)
        if names is not None and name != "digits" and y.dtype.kind in "iu":
            y = y.map(dict(enumerate(str(n) for n in names)))  # class names, not codes, in predictions
        return Dataset(bunch.data, y, name=name)

    load.__name__ = f"load_{name}"
    return load


def _as_list(value, key: str) -> list[str] | None:
    """A column name or a list of them; numbers count as names (a CSV header "2" is read as the name "2")."""
    if value is None:
        return None
    if isinstance(value, (str, int)) and not isinstance(value, bool):
        return [str(value)]
    if isinstance(value, (list, tuple)) and all(isinstance(v, (str, int)) and not isinstance(v, bool) for v in value):
        return [str(v) for v in value]
    raise DataError(f"{key} must be a column name or a list of column names, not {value!r}.")


def _check_path(path) -> Path:
    if path is None:
        raise DataError("data.path is required: data=csv data.path=FILE data.target=COLUMN")
    file = Path(str(path)).expanduser()  # a file named 2024 reaches here as the number 2024
    if not file.is_file():
        raise DataError(f"data.path={path}: no such file{' (it is a directory)' if file.is_dir() else ''}. "
                        f"Give the path of an existing file (relative paths start at the current directory).")
    return file


# --- reading files warily ----------------------------------------------------------------------------------

def is_parquet(file: Path) -> bool:
    """Whether ``file`` starts with Parquet's magic bytes, whatever its name says."""
    with open(file, "rb") as handle:
        return handle.read(len(PARQUET_MAGIC)) == PARQUET_MAGIC


def check_file_kind(file: Path, parquet: bool, label: str, fix: str) -> None:
    """Refuse a Parquet file where CSV text is expected (``parquet=False``), or the converse: the first bytes
    tell, not the name. ``label`` names the file in the message (``data.path=F``), ``fix`` is what to do."""
    if is_parquet(file) and not parquet:
        raise DataError(f"{label} is a Parquet file (it starts with {PARQUET_MAGIC.decode()}), not CSV text: {fix}.")
    if parquet and not is_parquet(file):
        with open(file, "rb") as handle:
            start = handle.read(1024)
        looks = "it looks like text" if start and b"\0" not in start else "it is no table Coupler reads"
        raise DataError(f"{label} is not a Parquet file (a Parquet file starts with {PARQUET_MAGIC.decode()}; "
                        f"{looks}): {fix}.")


def undecodable(file: Path, encoding: str, chunk: int = 1 << 20) -> tuple[int, int, str, str] | None:
    """The first byte of ``file`` that is not ``encoding`` text: (offset in the file, line, the byte, the reason),
    or None. pandas reports an offset within the chunk it was decoding, not within the file: this one counts
    from the file's start, reading it in chunks."""
    import codecs

    decoder = codecs.getincrementaldecoder(encoding)()
    offset, lines = 0, 1
    with open(file, "rb") as handle:
        while True:
            read = handle.read(chunk)
            pending = decoder.getstate()[0]  # bytes of a character begun in the previous chunk
            data = pending + read
            try:
                decoder.decode(read, final=not read)
            except UnicodeDecodeError as exc:
                where = offset - len(pending) + exc.start
                line = lines + data[:exc.start].count(b"\n") - pending.count(b"\n")
                return where, line, f"0x{data[exc.start]:02x}", exc.reason
            if not read:
                return None
            lines += read.count(b"\n")
            offset += len(read)


def read_csv_file(file: Path, options: dict, label: str, parquet_fix: str, encoding_fix: str):
    """``pandas.read_csv(file, **options)``, refusing what pandas would misread: a Parquet file, a header naming
    a column twice (pandas renames the second ``a.1``), a byte outside the encoding (at its offset in the file).
    ``label`` names the file in messages; the fixes are the caller's (a setting for training, a file name for
    predict)."""
    import pandas as pd

    check_file_kind(file, parquet=False, label=label, fix=parquet_fix)
    encoding = options.get("encoding", "utf-8")
    try:
        header = pd.read_csv(file, **{**_header_options(options), "header": None, "nrows": 1})
        if len(header):
            check_unique_columns([v for v in header.iloc[0] if isinstance(v, str) and v], label)
        return pd.read_csv(file, **options)
    except UnicodeDecodeError as exc:
        found = undecodable(file, encoding)
        where = (f"byte {found[2]} at byte offset {found[0]}, line {found[1]}: {found[3]}" if found
                 else f"{exc.reason} at byte {exc.start}")
        raise DataError(f"{label}: the file is not {encoding} text ({where}); {encoding_fix}.") from None


def read_parquet_file(file: Path, label: str, csv_fix: str):
    """``pandas.read_parquet(file)``, refusing a file that is not Parquet (``csv_fix`` says what to do) and one
    whose schema names a column twice (pyarrow's own error is many lines long); any other failure is one line."""
    import pandas as pd
    import pyarrow.parquet as pq

    check_file_kind(file, parquet=True, label=label, fix=csv_fix)
    try:
        check_unique_columns(pq.read_schema(file).names, label)
        return pd.read_parquet(file)
    except DataError:
        raise
    except Exception as exc:  # pyarrow raises several types for a damaged file
        reason = (str(exc).strip().splitlines() or [""])[0]
        raise DataError(f"{label}: not a readable Parquet file ({type(exc).__name__}: {reason}).") from None


def _header_options(options: dict) -> dict:
    """The read options that shape the header row (its separator and encoding), and nothing that parses values."""
    return {k: v for k, v in options.items() if k in ("sep", "encoding")} | {"dtype": str, "keep_default_na": False}


# --- a table of the user's own -----------------------------------------------------------------------------

def table(frame, *, name: str, target: str, features=None, categorical=None, read_options=None,
          missing_markers: list | None = None) -> Dataset:
    """A ``Dataset`` from a DataFrame: pick the target and features, infer the categorical columns.

    ``missing_markers``: the loader's ``data.na_values`` (None if it has no such setting): a message may
    suggest adding a value to them."""
    import pandas as pd

    if target is None:
        raise DataError(f"data.target is required: name the column to predict; columns are {list(frame.columns)}.")
    if isinstance(target, (list, dict)) or isinstance(target, bool):
        raise DataError(f"data.target={target}: name one column; columns are {list(frame.columns)}.")
    target = str(target)
    if target not in frame.columns:
        hint = ""
        if len(frame.columns) == 1 and any(sep in str(frame.columns[0]) for sep in ";\t|"):
            found = next(sep for sep in ";\t|" if sep in str(frame.columns[0]))
            hint = f" The file seems to use {found!r} between columns: set data.sep (quoted: 'data.sep=\"{found}\"')."
        raise DataError(f"data.target={target}: no such column.{did_you_mean(target, map(str, frame.columns))} "
                        f"Columns are {list(frame.columns)}.{hint}")
    explicit = _as_list(categorical, "data.categorical") or []
    features = _as_list(features, "data.features")
    if features is None:
        features = [c for c in frame.columns if c != target]
    unknown = [c for c in [*features, *explicit] if c not in frame.columns]
    if unknown:
        raise DataError(f"column(s) {unknown} named in data.features / data.categorical do not exist; "
                        f"columns are {list(frame.columns)}.")
    if target in features:
        raise DataError(f"data.features includes the target {target!r}; remove it.")
    missing_target = frame[target].isna()
    if missing_target.any():
        log.warning("data %s: dropping %d row(s) whose target %r is missing", name, int(missing_target.sum()), target)
        frame = frame[~missing_target]
    _check_target_kinds(frame[target], missing_markers)
    X = frame[features]
    inferred = [c for c in features if not pd.api.types.is_numeric_dtype(X[c]) or pd.api.types.is_bool_dtype(X[c])]
    for column in inferred:
        if column not in explicit:
            _check_stray_text(X[column], missing_markers)
    categorical = list(dict.fromkeys([*explicit, *inferred]))
    return Dataset(X, frame[target], name=name, categorical=categorical, read_options=read_options or {})


def _numbers_in(values):
    """Which of ``values`` (text as read from a file) are numbers: a boolean Series on the same index."""
    import pandas as pd

    return pd.to_numeric(values.astype(object).where(values.notna()), errors="coerce").notna()


def _na_values_fix(markers: list | None, values) -> str:
    """``"data.na_values=['?','n/a?']"``: the loader's markers and ``values``, as an override to paste."""
    listed = ",".join(repr(str(v)) for v in dict.fromkeys([*(markers or []), *map(str, values)]))
    return f"\"data.na_values=[{listed}]\""


def _check_stray_text(column, missing_markers: list | None) -> None:
    """A column of numbers with a few text values (``#REF!``, ``n/a?``) would be taken as categories and one-hot
    encoded, a column per distinct number: name the column, the stray values and their rows instead."""
    import numpy as np

    present, numbers = column.notna().to_numpy(), _numbers_in(column).to_numpy()
    if numbers.sum() <= present.sum() / 2 or numbers.sum() == present.sum():
        return
    stray = np.flatnonzero(present & ~numbers)
    firsts = stray[~column.iloc[stray].duplicated().to_numpy()]  # each distinct value at its first row
    listing = ", ".join(f"{shown(column.iloc[p])} ({data_rows([column.index[p]], [p])})" for p in firsts[:SHOWN])
    more = f" and {len(firsts) - SHOWN} more" if len(firsts) > SHOWN else ""
    mark = (f"fix the file or mark them missing with {_na_values_fix(missing_markers, column.iloc[firsts[:SHOWN]])}"
            if missing_markers is not None else "fix the file")
    raise DataError(f"column {shown(column.name)} holds numbers and {len(stray)} value"
                    f"{'s that are' if len(stray) > 1 else ' that is'} not: {listing}{more}. To read it as numbers, {mark}; "
                    f"if the column holds categories, name it in data.categorical.")


def _check_target_kinds(y, missing_markers: list | None) -> None:
    """A target of numbers and text (``0, 1, yes``) is a file with a mistake in it, not a three-class problem:
    name the values of each kind."""
    import pandas as pd

    if pd.api.types.is_numeric_dtype(y) or pd.api.types.is_bool_dtype(y):
        return
    distinct = pd.Series(pd.unique(y.dropna()))
    numbers = _numbers_in(distinct)
    if numbers.all() or not numbers.any():
        return
    as_written = [str(v) if isinstance(v, str) else shown(v) for v in distinct[numbers]]
    texts = list(distinct[~numbers])
    fewer = texts if len(texts) <= len(as_written) else list(distinct[numbers])
    drop = (f", or drop those rows by marking them missing: {_na_values_fix(missing_markers, fewer[:SHOWN])}"
            if missing_markers is not None else "")
    raise DataError(f"the target {shown(y.name)} mixes numbers ({', '.join(as_written[:SHOWN])}"
                    f"{', ...' if len(as_written) > SHOWN else ''}) and text ({', '.join(map(shown, texts[:SHOWN]))}"
                    f"{', ...' if len(texts) > SHOWN else ''}); a target holds one kind of label: fix the file"
                    f"{drop}.")


def load_csv(path, target, features, categorical, na_values, sep, encoding) -> Dataset:
    """``data=csv`` (parameters: ``CsvSchema``, checked before this runs)."""
    import pandas as pd

    file = _check_path(path)
    if not sep:  # the schema says text; an empty one is no separator
        raise DataError(f"data.sep={sep!r}: give the character between columns, e.g. ',' or ';'.")
    markers = _markers(na_values)
    options = {"sep": sep, "encoding": encoding, "na_values": markers,
               "dtype": {c: str for c in _as_list(categorical, "data.categorical") or []}}
    try:
        frame = read_csv_file(file, options, label=f"data.path={path}",
                              parquet_fix=f"use data=parquet data.path={path}",
                              encoding_fix="set its encoding, e.g. data.encoding=latin-1")
    except pd.errors.EmptyDataError:
        raise DataError(f"data.path={path}: the file is empty; it needs a header row and rows of data.") from None
    except LookupError:
        raise DataError(f"data.encoding={encoding}: no such text encoding (try utf-8, latin-1, cp1252).") from None
    except (pd.errors.ParserError, ValueError) as exc:
        raise DataError(f"data.path={path}: not a readable CSV file ({exc}). Check data.sep={sep!r}.") from None
    return table(frame, name=f"csv:{file.name}", target=target, features=features, categorical=categorical,
                 read_options=options, missing_markers=markers)


def _markers(na_values) -> list:
    """``data.na_values`` as a list of text markers (pandas compares the file's text with them)."""
    if na_values is None:
        return list(NA_VALUES)
    return [str(v) for v in (na_values if isinstance(na_values, (list, tuple)) else [na_values])]


def load_parquet(path, target, features, categorical, key=None):
    """``data=parquet`` (parameters: ``ParquetSchema``, checked before this runs): a file, in memory, or a
    directory, lazily (a ``coupler.parquet.ParquetDataset``)."""
    if path is not None and Path(str(path)).expanduser().is_dir():
        from coupler.parquet import open_directory

        return open_directory(path, target, features, categorical, key)
    if key is not None:
        raise DataError(f"data.key={key}: a key splits a directory of Parquet files; a single file is split as "
                        f"split.* says. Remove data.key, or give data.path a directory.")
    file = _check_path(path)
    frame = read_parquet_file(file, label=f"data.path={path}", csv_fix=f"for a CSV file use data=csv data.path={path}")
    return table(frame, name=f"parquet:{file.name}", target=target, features=features, categorical=categorical,
                 read_options={"na_values": NA_VALUES,
                               "dtype": {c: str for c in _as_list(categorical, "data.categorical") or []}})


@hookimpl
def register_data_loaders(register):
    for name, (function, description) in BUNDLED.items():
        register(name, bundled_loader(name, function), description=f"scikit-learn's {description}",
                 default=name == "iris", schema=BundledSchema)  # iris: what a plain `coupler train` trains on
    register("csv", load_csv, description="a CSV file: data.path=FILE data.target=COLUMN", schema=CsvSchema)
    register("parquet", load_parquet, description="a Parquet file or a directory of them (read lazily): "
             "data.path=FILE_OR_DIR data.target=COLUMN",
             schema=ParquetSchema)
