"""What a data loader returns, and how the task is inferred from the target.

Also the checks every data set gets, whatever loaded it: no infinity (it is not a missing value, and no model
can learn from it), no two feature columns of one name; and the helpers that make data errors readable: rows
named as the user counts them (``data_rows``; values are shown as the user wrote them by
``coupler.errors.shown``). A loader's parameters are checked against its schema (``coupler.schema``) before it
runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from coupler.components import TASKS
from coupler.errors import ConfigError, CouplerError, DataError, plain, shown

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    import pandas as pd

#: An integer target with at most this many distinct values is taken as classification.
MAX_INFERRED_CLASSES = 20
#: How many offending values or rows a data error lists.
SHOWN = 5


@dataclass
class Dataset:
    """A table: features ``X``, target ``y``, and which feature columns are categorical.

    ``read_options`` are the keyword arguments of ``pandas.read_csv`` that read a file of the same shape
    (``coupler predict`` uses them for its input).

    ``files=True``: the features are paths of files the model reads itself, lazily (an image folder); they
    reach the model as a DataFrame, unpreprocessed (input format ``files``), and only a model whose
    ``reads_files`` is true can train on them.

    ``sequence=(steps, features)``: each row is a sequence, flattened step by step into ``steps * features``
    numeric columns (step 0's features first). It is preprocessed as any matrix; the run tells the model the
    shape (``RunContext.sequence_shape``).

    ``ordered=True``: the rows are in time order, and the split keeps it: the earliest rows train, the next
    validate, the latest test (no shuffling); ``gap`` rows are left out at each boundary (for windows whose
    targets lie ahead of their inputs: no training target inside the validation span).

    ``baseline``: a reference prediction for every row (a Series on ``y``'s index, in ``y``'s labels or units),
    such as a naive forecast; the run measures it with the same metrics (``baseline.json``), named
    ``baseline_name``.

    ``text="COLUMN"``: the one feature column holds text. The core fits a ``coupler.tokenizer.Vocabulary`` with
    the ``tokenizer`` settings (``level``, ``vocab_size``, ``length``, ``lowercase``) on the training rows; a
    model reads token ids (input format ``tokens``) or the raw text (``text``).
    """

    X: pd.DataFrame
    y: pd.Series
    name: str
    categorical: list[str] = field(default_factory=list)
    task: str | None = None
    read_options: dict = field(default_factory=dict)
    files: bool = False
    sequence: tuple[int, int] | None = None
    ordered: bool = False
    gap: int = 0
    baseline: pd.Series | None = None
    baseline_name: str = "baseline"
    text: str | None = None
    tokenizer: dict | None = None

    def __post_init__(self) -> None:
        if len(self.X) == 0:
            raise DataError(f"data {self.name!r} has no rows; give a file with at least a few rows of data.")
        if self.X.shape[1] == 0:
            raise DataError(f"data {self.name!r} has no feature columns besides the target.")
        missing = [c for c in self.categorical if c not in self.X.columns]
        if missing:
            raise DataError(
                f"data {self.name!r}: categorical column(s) {missing} are not feature columns; "
                f"feature columns are {list(self.X.columns)}"
            )
        if self.sequence is not None:
            steps, features = self.sequence
            if steps * features != self.X.shape[1]:
                raise DataError(f"data {self.name!r}: sequence=({steps}, {features}) needs {steps * features} "
                                f"columns; the table has {self.X.shape[1]}")
            self.sequence = (int(steps), int(features))
        if not isinstance(self.gap, int) or isinstance(self.gap, bool) or self.gap < 0 or (self.gap and not self.ordered):
            raise DataError(f"data {self.name!r}: gap={self.gap!r}; a gap is a whole number of rows >= 0, for ordered "
                            f"rows only")
        if self.baseline is not None and len(self.baseline) != len(self.y):
            raise DataError(f"data {self.name!r}: the baseline has {len(self.baseline)} values for {len(self.y)} rows")
        check_unique_columns(self.X.columns, f"data {self.name!r}")
        if not self.files and self.text is None:
            check_finite(self.X, "column")
        check_finite(self.y.to_frame(), "the target")
        if self.text is not None:
            from coupler.tokenizer import check_settings

            if list(self.X.columns) != [self.text]:
                raise DataError(f"data {self.name!r}: a text data set has one feature column, the text "
                                f"({self.text!r}); it has {list(self.X.columns)}")
            self.tokenizer = check_settings(self.tokenizer or {})

    def fingerprint(self) -> str:
        """A hash of the table's contents, recorded with a run to tell whether data changed since.

        For ``files=True`` the table holds paths: each file's size and modification time (nanoseconds) are
        hashed too, so that an image rewritten in place changes the fingerprint; a copy that keeps the times
        (``cp -p``, ``rsync -a``) matches, as in make's and rsync's own quick check. A missing file hashes as
        missing."""
        import hashlib
        import os

        import pandas as pd

        digest = hashlib.sha256()
        digest.update(pd.util.hash_pandas_object(self.X, index=True).to_numpy().tobytes())
        digest.update(pd.util.hash_pandas_object(self.y, index=True).to_numpy().tobytes())
        if self.files:
            for path in self.X.to_numpy().ravel():
                if not isinstance(path, (str, os.PathLike)):  # os.stat(3) would read open file 3
                    continue
                try:
                    stat = os.stat(path)
                    digest.update(f"{stat.st_size}:{stat.st_mtime_ns};".encode())
                except (OSError, ValueError):
                    digest.update(b"missing;")
        return digest.hexdigest()


def infer_task(y: pd.Series, requested: str = "auto") -> str:
    """``binary``, ``multiclass`` or ``regression``: ``requested`` unless it is ``auto``, else from ``y``.

    Text, boolean and categorical targets are classification; an integer target with at most
    ``MAX_INFERRED_CLASSES`` distinct values too; any other numeric target is regression.
    """
    import pandas as pd

    if requested not in ("auto", *TASKS):
        raise ConfigError("task", requested, f"one of auto, {', '.join(TASKS)}")
    n_classes = y.nunique(dropna=True)
    if requested == "regression":
        if not pd.api.types.is_numeric_dtype(y) or pd.api.types.is_bool_dtype(y):
            raise DataError(f"task=regression needs a numeric target; the target has dtype {y.dtype}.")
        return "regression"
    if requested in ("binary", "multiclass"):
        if n_classes < 2:
            raise DataError(f"task={requested} needs at least two classes; the target has {n_classes}.")
        if requested == "binary" and n_classes != 2:
            fix = "task=multiclass" if n_classes <= MAX_INFERRED_CLASSES else "task=regression or task=auto"
            raise DataError(f"task=binary needs two classes; the target has {n_classes} distinct values. Use {fix}.")
        return requested
    numeric = pd.api.types.is_numeric_dtype(y) and not pd.api.types.is_bool_dtype(y)
    if numeric:
        values = y.dropna().to_numpy()
        integral = pd.api.types.is_integer_dtype(y) or bool((values == values.round()).all())
        if not integral or n_classes > MAX_INFERRED_CLASSES:
            return "regression"
    if n_classes < 2:
        raise DataError(f"the target has a single value ({shown(y.dropna().iloc[0])}); nothing to learn.")
    return "binary" if n_classes == 2 else "multiclass"


def encode_target(y, task: str, classes: list | None = None) -> tuple[np.ndarray, list]:
    """Class codes 0..K-1 and the class labels (sorted) for classification; floats for regression.
    With ``classes`` given (a trained run's), a label outside them is an error."""
    import numpy as np
    import pandas as pd

    if task == "regression":
        return pd.to_numeric(y).to_numpy(dtype=float), []
    labels = [plain(v) for v in pd.unique(y)]
    if classes is None:
        classes = sorted(labels, key=lambda v: (str(type(v)), v))
    unknown = [v for v in labels if v not in classes]
    if unknown:
        raise CouplerError(f"the target holds label(s) {unknown[:10]} the model was not trained on; "
                           f"its classes are {classes}.")
    # code each distinct label once, then spread the codes over the rows without a Python loop per row
    lookup = {label: code for code, label in enumerate(classes)}
    distinct = pd.unique(y)
    positions = pd.Index(distinct).get_indexer(y)
    return np.array([lookup[plain(v)] for v in distinct], dtype=np.int64)[positions], classes


# --- showing data to the user ------------------------------------------------------------------------------

def data_rows(labels, positions=None) -> str:
    """``data row 5`` / ``data rows 8, 10, ...``: rows counted from 1 below the header, as the user counts them
    in the file. A loader's table keeps the file's row numbers as its index (rows dropped for a missing target
    keep theirs); any other index is counted by position."""
    labels, positions = list(labels), list(positions if positions is not None else range(len(labels)))
    numbers = [int(label) + 1 if isinstance(plain(label), int) and not isinstance(plain(label), bool)
               else position + 1 for label, position in zip(labels, positions)]
    listing = ", ".join(map(str, numbers[:SHOWN])) + (", ..." if len(numbers) > SHOWN else "")
    return f"data row{'s' if len(numbers) > 1 else ''} {listing}"


# --- checks every data set gets ----------------------------------------------------------------------------

def check_unique_columns(names, where: str) -> None:
    """Two columns of one name would be told apart by nothing but their position: refuse them, naming each."""
    seen: dict = {}
    for position, name in enumerate(names, start=1):
        seen.setdefault(name, []).append(position)
    twice = {name: positions for name, positions in seen.items() if len(positions) > 1}
    if twice:
        listing = "; ".join(f"{shown(name)} {'twice' if len(p) == 2 else f'{len(p)} times'} (columns "
                            f"{', '.join(map(str, p[:-1]))} and {p[-1]})" for name, p in list(twice.items())[:SHOWN])
        raise DataError(f"{where}: the header names {listing}; give each column its own name.")


def check_finite(frame, what: str) -> None:
    """Refuse infinity in the numeric columns of ``frame``: it is not a missing value (nothing imputes it), a
    scaler turns it into NaN and an engine into an error deep inside it. ``what`` names a column: ``column``,
    ``the target``, ``input column``."""
    import numpy as np
    import pandas as pd

    for column in frame.columns:
        values = frame[column]
        if not pd.api.types.is_float_dtype(values):  # integers and booleans hold no infinity; text is not numbers
            continue
        infinite = np.isinf(values.to_numpy(dtype=float, na_value=np.nan))
        if infinite.any():
            positions = np.flatnonzero(infinite)
            raise DataError(
                f"{what} {shown(column)} holds infinity ({shown(values.iloc[positions[0]])}) in {len(positions)} "
                f"row{'s' if len(positions) > 1 else ''} ({data_rows(values.index[positions], positions)}); "
                f"infinity is not a missing value: remove those rows or replace the values in the file (a number, or "
                f"an empty cell to impute it)."
            )
