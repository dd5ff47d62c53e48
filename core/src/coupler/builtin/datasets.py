"""Built-in data loaders: scikit-learn's bundled sets, and CSV / Parquet files of the user's own."""

from __future__ import annotations

import logging
from pathlib import Path

from coupler.dataset import Dataset
from coupler.errors import DataError, did_you_mean
from coupler.hookspecs import hookimpl

COUPLER_API = ">=1.0,<2"  # the plugin API versions this plugin supports (coupler.hookspecs.API_VERSION)

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
    file = Path(path).expanduser()
    if not file.is_file():
        raise DataError(f"data.path={path}: no such file{' (it is a directory)' if file.is_dir() else ''}. "
                        f"Give the path of an existing file (relative paths start at the current directory).")
    return file


def table(frame, *, name: str, target: str, features=None, categorical=None, read_options=None) -> Dataset:
    """A ``Dataset`` from a DataFrame: pick the target and features, infer the categorical columns."""
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
    features = _as_list(features, "data.features")
    categorical = _as_list(categorical, "data.categorical") or []
    if features is None:
        features = [c for c in frame.columns if c != target]
    unknown = [c for c in [*features, *categorical] if c not in frame.columns]
    if unknown:
        raise DataError(f"column(s) {unknown} named in data.features / data.categorical do not exist; "
                        f"columns are {list(frame.columns)}.")
    if target in features:
        raise DataError(f"data.features includes the target {target!r}; remove it.")
    missing_target = frame[target].isna()
    if missing_target.any():
        log.warning("data %s: dropping %d row(s) whose target %r is missing", name, int(missing_target.sum()), target)
        frame = frame[~missing_target]
    X = frame[features]
    inferred = [c for c in features if not pd.api.types.is_numeric_dtype(X[c]) or pd.api.types.is_bool_dtype(X[c])]
    categorical = list(dict.fromkeys([*categorical, *inferred]))
    return Dataset(X, frame[target], name=name, categorical=categorical, read_options=read_options or {})


def load_csv(path=None, target=None, features=None, categorical=None, na_values=None, sep=",",
             encoding="utf-8") -> Dataset:
    import pandas as pd

    file = _check_path(path)
    if not isinstance(sep, str) or not sep:
        raise DataError(f"data.sep={sep!r}: give the character between columns, e.g. ',' or ';'.")
    options = {"sep": sep, "encoding": encoding,
               "na_values": _as_list(na_values, "data.na_values") if na_values is not None else list(NA_VALUES),
               "dtype": {c: str for c in _as_list(categorical, "data.categorical") or []}}
    try:
        frame = pd.read_csv(file, **options)
    except pd.errors.EmptyDataError:
        raise DataError(f"data.path={path}: the file is empty; it needs a header row and rows of data.") from None
    except UnicodeDecodeError as exc:
        raise DataError(f"data.path={path}: the file is not {encoding} text ({exc.reason} at byte {exc.start}); "
                        f"set its encoding, e.g. data.encoding=latin-1.") from None
    except LookupError:
        raise DataError(f"data.encoding={encoding}: no such text encoding (try utf-8, latin-1, cp1252).") from None
    except (pd.errors.ParserError, ValueError) as exc:
        raise DataError(f"data.path={path}: not a readable CSV file ({exc}). Check data.sep={sep!r}.") from None
    return table(frame, name=f"csv:{file.name}", target=target, features=features, categorical=categorical,
                 read_options=options)


def load_parquet(path=None, target=None, features=None, categorical=None) -> Dataset:
    import pandas as pd

    file = _check_path(path)
    try:
        frame = pd.read_parquet(file)
    except Exception as exc:  # pyarrow raises several types for a file that is not Parquet
        raise DataError(f"data.path={path}: not a readable Parquet file ({type(exc).__name__}: {exc}).") from None
    return table(frame, name=f"parquet:{file.name}", target=target, features=features, categorical=categorical,
                 read_options={"na_values": NA_VALUES,
                               "dtype": {c: str for c in _as_list(categorical, "data.categorical") or []}})


@hookimpl
def register_data_loaders(register):
    for name, (function, description) in BUNDLED.items():
        register(name, bundled_loader(name, function), description=f"scikit-learn's {description}")
    register("csv", load_csv, description="a CSV file: data.path=FILE data.target=COLUMN")
    register("parquet", load_parquet, description="a Parquet file: data.path=FILE data.target=COLUMN")
