"""``data=text_csv``: a CSV of texts and labels, as a text ``Dataset`` (the core fits the vocabulary on the
training rows)."""

from __future__ import annotations

from pathlib import Path

from coupler.dataset import Dataset
from coupler.errors import ConfigError, DataError


def load_text_csv(path=None, text: str = "text", label: str = "label", level: str = "word", vocab_size: int = 20000,
                  length: int = 128, lowercase: bool = True) -> Dataset:
    import pandas as pd

    if path is None or str(path).strip() == "":
        raise ConfigError("data.path", path, "the path of a CSV file with a text column and a label column "
                                             "(data.path=reviews.csv)")
    file = Path(str(path)).expanduser()
    if not file.exists():
        raise DataError(f"data.path={str(path)!r}: no such file; give a CSV file with the columns "
                        f"{text!r} (data.text) and {label!r} (data.label).")
    if file.is_dir():
        raise DataError(f"data.path={str(path)!r} is a directory; give a CSV file.")
    for key, value in (("data.text", text), ("data.label", label)):  # text, by the schema; here: not empty
        if not value:
            raise ConfigError(key, value, "the name of a column of the CSV file")
    if text == label:
        raise ConfigError("data.label", label, f"a column other than the text column ({text!r})")
    try:
        frame = pd.read_csv(file)
    except pd.errors.EmptyDataError:
        raise DataError(f"data.path={str(path)!r} is empty; give a CSV file with a header and rows.") from None
    except Exception as exc:  # a binary or malformed file
        raise DataError(f"data.path={str(path)!r} cannot be read as CSV: {exc}") from None
    for key, column in (("data.text", text), ("data.label", label)):
        if column not in frame.columns:
            raise DataError(f"{key}={column!r}: {str(path)!r} has no such column; its columns are "
                            f"{list(map(str, frame.columns))}")
    frame = frame[frame[label].notna()]
    if frame.empty:
        raise DataError(f"data.path={str(path)!r}: no row has a label in column {label!r}.")
    X = frame[[text]].astype({text: "string"}).astype(object).reset_index(drop=True)
    X[text] = X[text].where(X[text].notna(), "")
    y = frame[label].reset_index(drop=True).rename(label)
    return Dataset(X=X, y=y, name=file.stem, text=text,
                   tokenizer={"level": level, "vocab_size": vocab_size, "length": length, "lowercase": lowercase})
