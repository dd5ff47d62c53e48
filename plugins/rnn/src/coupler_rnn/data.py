"""``data=sequences`` (sequence classification) and ``data=timeseries`` (forecasting from lookback windows).

Each parameter's type and range is checked by the loader's schema (``coupler_rnn.plugin``) before a run calls
these functions; what they check is what needs the files (and the rules between parameters)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from coupler.dataset import Dataset
from coupler.errors import DataError


def _file(key: str, path) -> Path:
    file = Path(str(path)).expanduser()
    if not file.is_file():
        raise DataError(f"{key}={path}: no such file{' (it is a directory)' if file.is_dir() else ''}. "
                        f"Give the path of an existing file (relative paths start at the current directory).")
    return file


def flat_columns(steps: int, features: list[str], prefix=lambda step: f"t{step}") -> list[str]:
    """Column names of sequences flattened step by step: step 0's features first."""
    return [f"{prefix(step)}_{feature}" for step in range(steps) for feature in features]


# --- data=sequences ---------------------------------------------------------------------------------------

def generate_sequences(rows: int = 600, steps: int = 30, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``rows`` sequences of ``steps`` x 3 features in 3 classes that differ only in temporal pattern: a sine
    whose frequency rises (``rising``), falls (``falling``) or stays (``steady``) over the sequence, with random
    phase, amplitude and noise. Rising and falling sweep the same frequencies, so the order of the steps tells
    them apart, not the values. Features: the signal, its step-to-step change, and pure noise."""
    rng = np.random.default_rng(seed)
    t = np.linspace(0.0, 1.0, steps)
    labels = np.array(["rising", "falling", "steady"])[np.arange(rows) % 3]
    rng.shuffle(labels)
    low, high = 2.0, 6.0  # cycles over the sequence
    phase = rng.uniform(0, 2 * np.pi, size=(rows, 1))
    amplitude = rng.uniform(0.7, 1.3, size=(rows, 1))
    # phase of a linear chirp: 2*pi * (f0 t + (f1 - f0) t^2 / 2)
    rising = 2 * np.pi * (low * t + (high - low) * t**2 / 2)
    falling = 2 * np.pi * (high * t + (low - high) * t**2 / 2)
    steady = 2 * np.pi * ((low + high) / 2) * t
    sweep = np.where((labels == "rising")[:, None], rising, np.where((labels == "falling")[:, None], falling, steady))
    signal = amplitude * np.sin(sweep + phase) + rng.normal(scale=0.3, size=(rows, steps))
    change = np.diff(signal, axis=1, prepend=signal[:, :1])
    noise = rng.normal(size=(rows, steps))
    return np.stack([signal, change, noise], axis=2), labels


def sequence_dataset(X: np.ndarray, y, name: str) -> Dataset:
    """A ``Dataset`` of 3-D ``X`` (samples x steps x features), flattened step by step."""
    if X.ndim != 3:
        raise DataError(f"data {name!r}: X has shape {X.shape}; it must be 3-D: samples x steps x features "
                        f"(a univariate sequence: add a last axis of 1, X[..., None])")
    if X.shape[0] == 0 or X.shape[1] == 0 or X.shape[2] == 0:
        raise DataError(f"data {name!r}: X has shape {X.shape}; every axis needs at least one entry")
    y = np.asarray(y)
    if y.ndim != 1:
        raise DataError(f"data {name!r}: y has shape {y.shape}; it must be 1-D: one label or value per sample")
    if len(y) != len(X):
        raise DataError(f"data {name!r}: X has {len(X)} samples but y has {len(y)} labels; they must match")
    if not np.issubdtype(X.dtype, np.number) or np.issubdtype(X.dtype, np.complexfloating):
        raise DataError(f"data {name!r}: X holds {X.dtype} values; it must hold real numbers")
    bad = ~np.isfinite(X)
    if bad.any():
        sample, step, feature = (int(i) for i in np.argwhere(bad)[0])
        raise DataError(f"data {name!r}: X holds {int(bad.sum())} missing or infinite value(s), the first at sample "
                        f"{sample}, step {step}, feature {feature}; fill or drop them first, so that every step is a "
                        f"number")
    if y.dtype == object:
        y = y.astype(str) if all(isinstance(v, str) for v in y) else y
    if y.dtype.kind == "f":
        missing = np.isnan(y)
    elif y.dtype == object:
        missing = np.array([v is None or (isinstance(v, (float, np.floating)) and v != v) for v in y.tolist()])
    else:  # integers, booleans, strings: nothing can be missing
        missing = np.zeros(len(y), dtype=bool)
    if missing.any():
        raise DataError(f"data {name!r}: y has {int(missing.sum())} missing label(s), the first at sample "
                        f"{int(np.argmax(missing))}; drop those samples or give them a label")
    samples, steps, features = X.shape
    width = max(3, len(str(steps - 1)))
    columns = flat_columns(steps, [f"f{j}" for j in range(features)], prefix=lambda s: f"t{s:0{width}d}")
    frame = pd.DataFrame(X.reshape(samples, steps * features).astype(np.float64), columns=columns)
    target = pd.Series(y, name="target")
    return Dataset(frame, target, name=name, sequence=(steps, features))


def load_sequences(path=None, target_path=None, rows: int = 600, steps: int = 30, seed: int = 0) -> Dataset:
    """Generated sequences (``path: null``), a ``.npz`` with arrays ``X`` and ``y``, or ``.npy`` files
    ``path`` (X) and ``target_path`` (y)."""
    if path is None:
        if target_path is not None:
            raise DataError("data.target_path is set but data.path is not: give data.path=X.npy too")
        X, y = generate_sequences(rows, steps, seed)
        return sequence_dataset(X, y, "sequences")
    file = _file("data.path", path)
    try:
        loaded = np.load(file, allow_pickle=False)
    except Exception as exc:
        raise DataError(f"data.path={path}: not a readable .npy or .npz file ({type(exc).__name__}: {exc})") from None
    if isinstance(loaded, np.lib.npyio.NpzFile):
        with loaded:
            missing = [key for key in ("X", "y") if key not in loaded.files]
            if missing:
                raise DataError(f"data.path={path}: the .npz has the arrays {loaded.files}; it needs X "
                                f"(samples x steps x features) and y (one label per sample)")
            if target_path is not None:
                raise DataError(f"data.target_path={target_path}: a .npz carries its own y; leave target_path null")
            try:
                X, y = loaded["X"], loaded["y"]
            except ValueError as exc:  # an object array: Python objects, which are never unpickled
                raise DataError(f"data.path={path}: {exc}. Save numbers and strings as plain arrays, e.g. "
                                f"np.savez(path, X=X.astype(float), y=y.astype(str))") from None
    else:
        if target_path is None:
            raise DataError(f"data.path={path} is a .npy array of sequences; give the labels as data.target_path=y.npy "
                            f"(or put X and y in one .npz)")
        X = loaded
        try:
            y = np.load(_file("data.target_path", target_path), allow_pickle=False)
        except DataError:
            raise
        except Exception as exc:
            raise DataError(f"data.target_path={target_path}: not a readable .npy file ({type(exc).__name__}: "
                            f"{exc}); save labels as a plain array, e.g. np.save(path, y.astype(str))") from None
        if isinstance(y, np.lib.npyio.NpzFile):
            raise DataError(f"data.target_path={target_path}: give a .npy array of labels, not a .npz")
    return sequence_dataset(np.asarray(X), y, Path(str(path)).stem)


# --- data=timeseries -------------------------------------------------------------------------------------

def generate_series(length: int = 2000, seed: int = 0) -> pd.DataFrame:
    """An hourly-like series: ``load`` = slow trend + daily (24-step) and weekly (168-step) seasons + AR(1)
    noise; ``temperature`` = a lagged daily cycle + noise, which drives part of ``load``."""
    rng = np.random.default_rng(seed)
    t = np.arange(length)
    temperature = 15 + 6 * np.sin(2 * np.pi * (t - 4) / 24) + rng.normal(scale=0.8, size=length)
    noise = np.zeros(length)
    shocks = rng.normal(scale=0.5, size=length)
    for i in range(1, length):
        noise[i] = 0.7 * noise[i - 1] + shocks[i]
    load = (50 + 0.002 * t + 3 * np.sin(2 * np.pi * t / 24) + 1.5 * np.sin(2 * np.pi * t / 168)
            + 0.15 * (temperature - 15) + noise)
    return pd.DataFrame({"load": load, "temperature": temperature})


def load_timeseries(path=None, columns=None, target=None, lookback: int = 24, horizon: int = 1, gap=None,
                    length: int = 2000, seed: int = 0) -> Dataset:
    """Windows of a time series: X = the ``lookback`` last steps of ``columns`` (flattened step by step),
    y = ``target`` ``horizon`` steps after the window's last step; rows in time order (``ordered=True``), with
    the naive last-value forecast as the baseline. The core's chronological split leaves ``gap`` windows
    (default: ``horizon``) out at each split boundary, so that no training target lies after the last observed
    step of the first validation window (and likewise for test)."""
    gap = horizon if gap is None else gap
    if path is None:
        frame = generate_series(length, seed)
        name = "timeseries"
        target = "load" if target is None else target
    else:
        file = _file("data.path", path)
        try:
            frame = pd.read_csv(file)
        except pd.errors.EmptyDataError:
            raise DataError(f"data.path={path}: the file is empty; it needs a header row and rows of data.") from None
        except (pd.errors.ParserError, UnicodeDecodeError) as exc:
            raise DataError(f"data.path={path}: not a readable CSV file ({exc}).") from None
        name = file.stem
    if target is None:
        raise DataError(f"data.target is required: the column to forecast; columns are {list(frame.columns)}")
    target = str(target)
    frame.columns = [str(c) for c in frame.columns]
    if target not in frame.columns:
        raise DataError(f"data.target={target}: no such column; columns are {list(frame.columns)}")
    if columns is None:
        columns = [c for c in frame.columns
                   if pd.api.types.is_numeric_dtype(frame[c]) and not pd.api.types.is_bool_dtype(frame[c])]
    else:
        if isinstance(columns, (str, int)) and not isinstance(columns, bool):
            columns = [columns]
        if not isinstance(columns, (list, tuple)) or not columns:
            raise DataError(f"data.columns={columns!r}: give a list of column names, or null for every numeric column")
        columns = [str(c) for c in columns]
        unknown = [c for c in columns if c not in frame.columns]
        if unknown:
            raise DataError(f"data.columns: no such column(s) {unknown}; columns are {list(frame.columns)}")
        text = [c for c in columns if not pd.api.types.is_numeric_dtype(frame[c])]
        if text:
            raise DataError(f"data.columns: column(s) {text} are not numeric; a window holds numbers only")
    if not columns:
        raise DataError(f"data.path={path}: no numeric columns to build windows from")
    if not pd.api.types.is_numeric_dtype(frame[target]) or pd.api.types.is_bool_dtype(frame[target]):
        raise DataError(f"data.target={target}: the column holds {frame[target].dtype}; forecasting needs numbers")
    used = list(dict.fromkeys([*columns, target]))
    holes = [c for c in used if not np.isfinite(frame[c].to_numpy(dtype=np.float64)).all()]
    if holes:
        raise DataError(f"data.path={path}: column(s) {holes} have missing or infinite values; fill them first "
                        f"(e.g. interpolate) so that every window is complete")
    values = frame[columns].to_numpy(dtype=np.float64)
    series = frame[target].to_numpy(dtype=np.float64)
    n = len(frame) - lookback - horizon + 1  # window i: steps i .. i+lookback-1, target at i+lookback-1+horizon
    if n < 10:
        raise DataError(f"data {name!r}: {len(frame)} steps give {max(n, 0)} windows of lookback={lookback} and "
                        f"horizon={horizon}; it needs at least 10")
    windows = np.lib.stride_tricks.sliding_window_view(values, lookback, axis=0)[:n]  # (n, columns, lookback)
    X = windows.transpose(0, 2, 1).reshape(n, lookback * len(columns))  # step by step: oldest step first
    y = series[lookback - 1 + horizon:][:n]
    last = series[lookback - 1:][:n]
    index = frame.index[lookback - 1 + horizon:][:n]  # a row is named by its target's position in the file
    names = flat_columns(lookback, columns, prefix=lambda step: f"lag{lookback - 1 - step}")
    X = pd.DataFrame(X, columns=names, index=index)
    y = pd.Series(y, index=X.index, name=target)
    baseline = pd.Series(last, index=X.index, name=target)
    return Dataset(X, y, name=name, task="regression", sequence=(lookback, len(columns)), ordered=True, gap=gap,
                   baseline=baseline, baseline_name="last value")
