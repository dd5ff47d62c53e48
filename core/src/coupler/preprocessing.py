"""Preprocessing fitted on the training split only: impute missing values, scale numbers, encode categories.

The fitted state is plain JSON (``state()`` / ``from_state()``), saved in the run directory as
``preprocessor.json``: readable, diffable, and loaded without pickle.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from coupler.dataset import SHOWN, check_finite, data_rows
from coupler.errors import ConfigError, DataError, shown
from coupler.settings import ENCODE, IMPUTE, SCALE

log = logging.getLogger("coupler.data")

#: one-hot encoding refuses a column with more categories than this, whatever the number of rows
MAX_ONEHOT_CATEGORIES = 1000
#: ... and a column with more categories than this that has a category for more than half of its rows (an
#: identifier, or numbers read as text): it would add a column per row and teach the model nothing
MAX_ONEHOT_PER_ROW = 50


class Preprocessor:
    """Turns a feature table into what a model takes (``Model.input_format``).

    ``matrix``: a float64 array; numeric columns imputed (``impute``) and scaled (``scale``); categorical
    columns filled with their most frequent training value and one-hot (or ordinal) encoded; a category
    unseen in training encodes as all zeros (ordinal: -1).
    ``frame``: a DataFrame of float numeric columns (missing values kept) and ``category`` columns whose
    categories are the training ones (unseen values become missing), for models that handle both natively.
    ``files``: the columns as they are (paths of files the model reads itself); nothing is learned.
    ``tokens``: a text data set's token ids, an int64 array (rows, length), from a ``Vocabulary`` fitted on the
    training rows. ``text``: the text column as it is (for a model with its own tokenizer).
    """

    def __init__(self, impute: str = "median", scale: str = "standard", encode: str = "onehot"):
        for key, value, allowed in (("preprocess.impute", impute, IMPUTE), ("preprocess.scale", scale, SCALE),
                                    ("preprocess.encode", encode, ENCODE)):
            if value not in allowed:
                raise ConfigError(key, value, f"one of {', '.join(allowed)}")
        self.impute, self.scale, self.encode = impute, scale, encode
        self.numeric: dict[str, dict[str, float]] = {}
        self.categorical: dict[str, dict[str, Any]] = {}
        self.columns: list[str] = []
        self.input_format = "matrix"
        self.vocabulary = None  # a coupler.tokenizer.Vocabulary, for input format "tokens"
        self._lookups: dict = {}  # categorical column -> (index, dtype) of its training categories

    # --- fitting --------------------------------------------------------------------------------------

    def fit(self, X, categorical: list[str], input_format: str = "matrix", tokenizer: dict | None = None
            ) -> Preprocessor:
        """Learn from the training rows ``X``. For ``input_format="frame"`` only the categories are learned (a
        frame keeps missing values and unscaled numbers); for ``"files"`` and ``"text"`` nothing is; for
        ``"tokens"`` the vocabulary of the one (text) column, with the ``tokenizer`` settings."""
        import pandas as pd

        self.columns = list(X.columns)
        self.input_format = input_format
        if input_format in ("files", "text"):
            return self
        if input_format == "tokens":
            from coupler.tokenizer import Vocabulary

            self.vocabulary = Vocabulary(**tokenizer).fit(X[self.columns[0]])
            return self
        for column in self.columns:
            if column in categorical:
                values = category_text(X[column]).dropna()
                fill = values.mode().iloc[0] if len(values) else ""
                self.categorical[column] = {"fill": fill, "categories": sorted(set(values) | {fill})}
                if input_format == "matrix" and self.encode == "onehot":
                    _check_onehot_size(column, len(self.categorical[column]["categories"]), len(X))
                continue
            series = X[column]
            # a float column needs no conversion to tell whether it holds a number
            values = series if pd.api.types.is_float_dtype(series) else pd.to_numeric(series, errors="coerce")
            if not values.notna().any():
                raise DataError(
                    f"feature column {column!r} has no numeric value in the training split; name it in "
                    f"data.categorical if it holds categories, or drop it with data.features."
                )
            if input_format == "frame":
                continue
            values = values.to_numpy(dtype=float)
            fill = {"median": np.nanmedian, "mean": np.nanmean, "zero": lambda v: 0.0}[self.impute](values)
            filled = np.where(np.isnan(values), fill, values)
            if self.scale == "standard":
                offset, scale = filled.mean(), filled.std()
            elif self.scale == "minmax":
                offset, scale = filled.min(), filled.max() - filled.min()
            else:
                offset, scale = 0.0, 1.0
            self.numeric[column] = {"fill": float(fill), "offset": float(offset),
                                    "scale": float(scale) if scale > 0 else 1.0}
        return self

    # --- transforming ---------------------------------------------------------------------------------

    def check_input(self, X, impute: bool = False) -> None:
        """Refuse input the model would silently misread (``coupler predict``): a value that is not a number
        in a column the run trained on as numbers (unless ``impute``: then it becomes missing and is imputed as
        training did), and infinity in such a column (it is no missing value, ``impute`` or not)."""
        import pandas as pd

        if self.input_format not in ("matrix", "frame"):
            return
        numeric = [c for c in self.columns if c not in self.categorical]
        numbers = {}
        for column in numeric:
            values = X[column]
            numbers[column] = values if pd.api.types.is_numeric_dtype(values) else pd.to_numeric(values, errors="coerce")
            if not impute:
                _check_all_numbers(values, numbers[column])
        check_finite(pd.DataFrame(numbers, index=X.index).astype(float), "input column")

    def check_columns(self, X) -> None:
        missing = [c for c in self.columns if c not in X.columns]
        if missing:
            shown = f"{missing[:10]}{f' and {len(missing) - 10} more' if len(missing) > 10 else ''}"
            raise DataError(f"the input lacks {len(missing)} of the {len(self.columns)} training columns: {shown}. "
                            f"Its columns are {list(X.columns)[:10]}{' ...' if len(X.columns) > 10 else ''}.")

    def transform(self, X, input_format: str = "matrix"):
        import pandas as pd

        self.check_columns(X)
        if input_format in ("files", "text"):
            return X[self.columns]
        if input_format == "tokens":
            return self.vocabulary.encode(X[self.columns[0]])
        if input_format == "frame":
            # the training columns in order; a new frame that copies no data when X is so already (coupler serve's
            # rows), never X itself: a model may cache its answer for the frame it was given, and X may change
            in_order = len(X.columns) == len(self.columns) and all(X.columns == self.columns)
            frame = X.copy(deep=False) if in_order else X[self.columns]
            converted = {}  # only columns that need it: float columns pass through without a copy
            for column, dtype in zip(self.columns, frame.dtypes):
                if column in self.categorical:
                    categories = self.categorical[column]["categories"]
                    values = frame[column]
                    if not pd.api.types.is_string_dtype(values):  # already text: no copy (coupler serve, per request)
                        values = category_text(values, categories)
                    index, dtype = self._lookup(column)
                    # codes into the training categories; an unseen or missing value -1 (missing)
                    converted[column] = pd.Categorical.from_codes(index.get_indexer(values), dtype=dtype)
                elif not pd.api.types.is_float_dtype(dtype):
                    converted[column] = _numbers(frame[column], column)
            return frame.assign(**converted) if converted else frame
        if input_format != "matrix":
            raise ConfigError("Model.input_format", input_format, "matrix, frame, files, tokens or text")
        if self.input_format != "matrix":
            raise ValueError(f"this preprocessor was fitted for {self.input_format} input; fit it with "
                             f"input_format='matrix'")
        blocks = []
        for column in self.columns:
            if column in self.categorical:
                spec = self.categorical[column]
                values = category_text(X[column], spec["categories"]).fillna(spec["fill"]).to_numpy()
                codes = pd.Index(spec["categories"]).get_indexer(values)  # -1: unseen in training
                if self.encode == "ordinal":
                    blocks.append(codes.astype(float)[:, None])
                else:
                    onehot = np.zeros((len(values), len(spec["categories"])))
                    known = codes >= 0
                    onehot[np.flatnonzero(known), codes[known]] = 1.0
                    blocks.append(onehot)
            else:
                spec = self.numeric[column]
                values = _numbers(X[column], column).to_numpy()
                values = np.where(np.isnan(values), spec["fill"], values)
                blocks.append(((values - spec["offset"]) / spec["scale"])[:, None])
        return np.hstack(blocks) if blocks else np.empty((len(X), 0))

    def _lookup(self, column: str):
        """A categorical column's training categories as an index and a dtype, built once (per request, coupler
        serve would otherwise build them again)."""
        found = self._lookups.get(column)
        if found is None:
            import pandas as pd

            categories = self.categorical[column]["categories"]
            found = self._lookups[column] = (pd.Index(categories), pd.CategoricalDtype(categories))
        return found

    def feature_names(self, input_format: str = "matrix") -> list[str]:
        if input_format == "tokens":
            return [f"token_{i}" for i in range(self.vocabulary.length)]
        if input_format in ("frame", "files", "text") or self.encode == "ordinal":
            return list(self.columns)
        names = []
        for column in self.columns:
            if column in self.categorical:
                names += [f"{column}={c}" for c in self.categorical[column]["categories"]]
            else:
                names.append(column)
        return names

    # --- state ----------------------------------------------------------------------------------------

    def state(self) -> dict:
        state = {"impute": self.impute, "scale": self.scale, "encode": self.encode, "columns": self.columns,
                 "input_format": self.input_format, "numeric": self.numeric, "categorical": self.categorical}
        if self.vocabulary is not None:
            state["vocabulary"] = self.vocabulary.state()
        return state

    @classmethod
    def from_state(cls, state: dict) -> Preprocessor:
        self = cls(state["impute"], state["scale"], state["encode"])
        self.columns, self.numeric, self.categorical = state["columns"], state["numeric"], state["categorical"]
        self.input_format = state.get("input_format", "matrix")
        if "vocabulary" in state:
            from coupler.tokenizer import Vocabulary

            self.vocabulary = Vocabulary.from_state(state["vocabulary"])
        return self


def category_text(values, categories=None):
    """A categorical column's values as the text its categories are (missing values stay missing). A column of whole
    numbers that a missing value turned into floats (``1`` read as ``1.0``) reads as the whole numbers' text
    (``"1"``), as the column of integers it is; with ``categories`` (a run's), a float's own text is kept where they
    hold it (a run that learned ``"1.0"``). Training, prediction, drift and the exports read a category so, so that
    one missing value in a batch changes no other row's answer."""
    import pandas as pd

    text = values.astype(object).where(values.isna(), values.astype(str))
    if pd.api.types.is_float_dtype(values):
        whole = values.notna() & np.isfinite(values) & (values == values.round())
        if categories is not None:
            whole &= ~text.isin(set(categories))
        if whole.any():
            text = text.where(~whole, values.where(whole, 0).astype("int64").astype(str))
    return text


def _check_onehot_size(column: str, categories: int, rows: int) -> None:
    """One-hot encoding makes a column per category: refuse a column that would make the matrix huge (a column
    of numbers with stray text once asked for 974 GiB) or that has a category for nearly every row."""
    if categories > MAX_ONEHOT_CATEGORIES or (categories > MAX_ONEHOT_PER_ROW and categories > rows / 2):
        raise DataError(
            f"feature column {shown(column)} has {categories} distinct values in {rows} training row"
            f"{'s' if rows != 1 else ''}: one-hot encoding would make a column for each. If it is an identifier, "
            f"leave it out (data.features=[...] without it); if it holds numbers, fix its text values (and leave it "
            f"out of data.categorical); or encode each category as one number with preprocess.encode=ordinal."
        )


def _check_all_numbers(values, numbers) -> None:
    """Refuse text in a column the run trained on as numbers, naming the values and their rows."""
    bad = values.notna() & numbers.isna()
    if not bad.any():
        return
    positions = np.flatnonzero(bad.to_numpy())
    firsts = positions[~values.iloc[positions].duplicated().to_numpy()]  # each distinct value at its first row
    listing = ", ".join(f"{shown(values.iloc[p])} ({data_rows([values.index[p]], [p])})" for p in firsts[:SHOWN])
    raise DataError(
        f"input column {shown(values.name)} holds {len(positions)} value{'s' if len(positions) > 1 else ''} that "
        f"{'are' if len(positions) > 1 else 'is'} not a number: {listing}{', ...' if len(firsts) > SHOWN else ''}; "
        f"the run was trained on numbers there. Fix the file, or impute them as training imputed missing values: "
        f"coupler predict --impute RUN INPUT OUTPUT."
    )


def _numbers(values, column: str):
    """A numeric column as floats; values that are not numbers become missing, with a warning and a count."""
    import pandas as pd

    numbers = pd.to_numeric(values, errors="coerce").astype(float)
    lost = int((numbers.isna() & values.notna()).sum())
    if lost:
        example = values[numbers.isna() & values.notna()].iloc[0]
        log.warning("column %r: %d value(s) are not numbers (e.g. %r) and are treated as missing", column, lost, example)
    return numbers
