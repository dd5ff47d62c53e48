"""``coupler predict RUN INPUT OUTPUT`` in batches: bounded memory whatever the input's size.

INPUT is read with pyarrow a batch of ``batch_rows`` rows at a time: a CSV file with ``pyarrow.csv.open_csv`` (the
run's read options mapped: separator, encoding, missing-value markers, categorical columns as text), a Parquet file
or a directory of Parquet files (a partitioned data set) with ``pyarrow.dataset``. Each batch's training columns go
through the run's own checks and preprocessing (``FinishedRun.transform``: every training column present, numbers
where the run had numbers unless ``impute``, no infinity), the model predicts them, and the batch is written at
once: its input columns, ``prediction`` and ``proba_CLASS`` (``pyarrow.csv.CSVWriter``, or
``pyarrow.parquet.ParquetWriter`` for an OUTPUT named ``.parquet``) into a temporary file renamed to OUTPUT at the
end (``run_directory.atomic_output``): a failure leaves nothing at OUTPUT.

The output does not depend on the batch size: the types of the columns the run does not read are inferred by
pyarrow from the file's first block (``CSV_BLOCK_BYTES``, fixed), and Parquet row groups hold ``ROW_GROUP_ROWS``
rows whatever the batches. The numeric training columns of a CSV are read as float64 by pyarrow (so a CSV column of
whole numbers is written to Parquet as float64, and to CSV as the same text); a value pyarrow cannot read as its
column's type (text in a numbers column, or a later block that does not fit the type inferred for another column)
restarts the file with that column read as text (every column after ``MAX_RESTARTS`` restarts), so that the run's
own checks name the value and its row, or ``--impute`` imputes it.

What streams: every engine whose run reads tables (input formats ``matrix``, ``frame``, ``files``, ``tokens``,
``text``). What does not: an ``.npy``/``.npz`` array (loaded whole, as ``numpy.load`` does), and a CSV whose read
options pyarrow cannot map (a separator longer than one character): those are read whole with pandas, as before.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from pathlib import Path

from coupler import drift
from coupler.errors import DataError

log = logging.getLogger("coupler")

#: rows a batch holds by default (``coupler predict --batch-rows``)
DEFAULT_BATCH_ROWS = 65_536
#: the bytes pyarrow's CSV reader reads a block at a time; it infers the types of the columns the run does not read
#: from the first block, so this is fixed, not derived from the batch size
CSV_BLOCK_BYTES = 1 << 20
#: rows of a Parquet output's row group, whatever the batch size (the same input gives the same file)
ROW_GROUP_ROWS = 65_536
#: pyarrow reads these as missing values, as pandas does by default (pyarrow's own defaults lack the last two)
PANDAS_NA = ["", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN", "N/A", "NA",
             "NULL", "NaN", "n/a", "nan", "null", "<NA>", "None"]


#: restarts after which every column is read as text (a restart reads the file again from its start)
MAX_RESTARTS = 3


class _Restart(Exception):
    """A CSV value pyarrow cannot read as the type chosen for its column (``column``; None: unknown): read the file
    again, that column as text."""

    def __init__(self, column: str | None):
        super().__init__(column)
        self.column = column


def predict_table_file(run, input_path: Path, output_path: Path, impute: bool = False,
                       batch_rows: int = DEFAULT_BATCH_ROWS) -> int:
    """Predict every row of ``input_path`` (a CSV or Parquet file, or a directory of Parquet files) into
    ``output_path`` a batch at a time (module docstring); ``run`` is a ``coupler.FinishedRun``. Returns the rows."""
    from coupler.run_directory import atomic_output

    if batch_rows < 1:
        raise DataError(f"--batch-rows {batch_rows}: give a number of rows of at least 1 (default {DEFAULT_BATCH_ROWS}).")
    source = _Source(run, Path(input_path), batch_rows)
    text: set[str] | None = set()  # the CSV columns read as text, besides the categorical ones (None: all)
    with atomic_output(Path(output_path)) as handle:
        while True:
            try:
                return _write(run, source.batches(text), handle, Path(output_path).suffix == ".parquet", impute,
                              source.label)
            except _Restart as restart:
                if text is None:
                    raise AssertionError("a column read as text failed to read as text") from None
                text.add(restart.column)
                text = None if restart.column is None or len(text) > MAX_RESTARTS else text
                handle.seek(0)
                handle.truncate()


def _write(run, batches: Iterator, handle, parquet: bool, impute: bool, label: str) -> int:
    """Predict and write each table of ``batches`` (with its first row's number in the file); the row count. A
    batch is written in a background thread while the next one is read and predicted (``_InOrder``)."""
    rows, far, writer, pending, replaced = 0, {}, None, [], None
    write = _InOrder()
    try:
        for offset, table in batches:
            if replaced is None:
                replaced = [c for c in _prediction_names(run) if c in table.column_names]
                if replaced:
                    log.warning("the input's columns %s are replaced by this prediction's", replaced)
            output, found = _predict_batch(run, table, offset, impute, replaced)
            for column, count in found.items():
                far[column] = far.get(column, 0) + count
            if writer is None:
                schema, writer = output.schema, _writer(handle, output.schema, parquet)
            elif output.schema != schema:  # a class label column's type, as the first batch's
                output = output.cast(schema)
            if parquet:
                groups, pending = _row_groups([*pending, output], final=False)
                write(_write_row_groups, writer, groups)
            else:
                write(writer.write_table, output)
            rows += table.num_rows
        if rows == 0:
            raise DataError(f"{label} has no rows.")
        if parquet:
            write(_write_row_groups, writer, _row_groups(pending, final=True)[0])
        write.wait()
    finally:
        write.close()
        if writer is not None:
            writer.close()  # before a restart truncates the file (a Parquet writer left open writes its footer later)
    drift.log_far_outside(far, run.distribution)
    return rows


class _InOrder:
    """Calls run one at a time, in order, in one background thread: a batch is written while the next one is read
    and predicted (pyarrow's writers release the GIL). At most one call waits, so memory stays bounded by the
    batches; ``wait`` raises what the last call raised."""

    def __init__(self):
        from concurrent.futures import ThreadPoolExecutor

        self.pool = ThreadPoolExecutor(1, thread_name_prefix="coupler-predict-writer")
        self.last = None

    def __call__(self, function, *args) -> None:
        self.wait()
        self.last = self.pool.submit(function, *args)

    def wait(self) -> None:
        last, self.last = self.last, None
        if last is not None:
            last.result()

    def close(self) -> None:
        """Wait for the call in flight (its failure is the caller's to report, if any) and stop the thread."""
        if self.last is not None:
            self.last.exception()
        self.pool.shutdown()


def _prediction_names(run) -> list[str]:
    """The columns predict adds: ``prediction``, and ``proba_CLASS`` for a classifier with probabilities."""
    from coupler.components import gives_proba

    probabilities = run.classes and gives_proba(run.model, run.task)
    return ["prediction", *([f"proba_{label}" for label in run.classes] if probabilities else [])]


def _predict_batch(run, table, offset: int, impute: bool, replaced: list[str]):
    """``table`` (the input's rows from row ``offset`` on) with its predictions; the counts of values far outside
    the training data."""
    import pandas as pd
    import pyarrow as pa

    from coupler.evaluation import measure, predictions_frame

    frame = table.select(run.preprocessor.columns).to_pandas()
    frame.index = pd.RangeIndex(offset, offset + len(frame))  # the file's row numbers, for the checks' messages
    X = run.transform(frame, impute)
    found = run.far_outside(frame)
    measured = measure(run.predictor(), X, None, [], len(run.classes))
    predictions = pa.Table.from_pandas(predictions_frame(frame.index, measured, run.classes), preserve_index=False)
    kept = table.drop_columns(replaced) if replaced else table
    for name in predictions.column_names:
        kept = kept.append_column(name, predictions.column(name))
    return kept, found


def _writer(handle, schema, parquet: bool):
    if parquet:
        import pyarrow.parquet as pq

        return pq.ParquetWriter(handle, schema)
    import pyarrow.csv as pacsv

    return pacsv.CSVWriter(handle, schema)


def _row_groups(pending: list, final: bool) -> tuple[list, list]:
    """``pending`` tables as ``(row groups of ROW_GROUP_ROWS rows to write, the rows left for later)``; the last
    group shorter when ``final``."""
    import pyarrow as pa

    held = sum(t.num_rows for t in pending)
    if held < ROW_GROUP_ROWS and not (final and held):
        return [], pending
    table = pa.concat_tables(pending)
    groups, start = [], 0
    while table.num_rows - start >= ROW_GROUP_ROWS or (final and start < table.num_rows):
        groups.append(table.slice(start, ROW_GROUP_ROWS))
        start += ROW_GROUP_ROWS
    return groups, [table.slice(start)] if start < table.num_rows else []


def _write_row_groups(writer, groups: list) -> None:
    for group in groups:
        writer.write_table(group, row_group_size=ROW_GROUP_ROWS)


# --- reading ---------------------------------------------------------------------------------------------------

class _Source:
    """The input, read in batches of ``batch_rows`` rows: ``batches(text)`` gives ``(first row, pyarrow.Table)``."""

    def __init__(self, run, path: Path, batch_rows: int):
        self.run, self.path, self.batch_rows = run, path, batch_rows
        self.label = f"input file {str(path)!r}" if not path.is_dir() else f"input directory {str(path)!r}"
        self.parquet = path.is_dir() or path.suffix == ".parquet"
        if not path.exists():
            raise DataError(f"{self.label} does not exist; give a CSV or Parquet file, or a directory of Parquet files.")

    def batches(self, text: set[str] | None) -> Iterator:
        blocks = self._parquet() if self.parquet else self._csv(text)
        offset = 0
        for table in _rebatched(blocks, self.batch_rows):
            yield offset, table
            offset += table.num_rows

    def _parquet(self):
        import pyarrow.dataset as ds

        from coupler.builtin.datasets import check_file_kind
        from coupler.dataset import check_unique_columns

        if self.path.is_file():
            check_file_kind(self.path, parquet=True, label=self.label,
                            fix=f"if it holds CSV text, name it {self.path.with_suffix('.csv').name}")
        try:
            if self.path.is_dir():  # read as data=parquet reads a directory: its files, hive folders as columns
                from coupler.parquet import parquet_files

                dataset = ds.dataset([str(f) for f in parquet_files(self.path)], format="parquet",
                                     partitioning=ds.partitioning(flavor="hive"), partition_base_dir=str(self.path))
            else:
                dataset = ds.dataset(self.path, format="parquet")
            # pandas' index, stored as a column (to_parquet of a frame whose index is not a range): not the input's
            names = [n for n in dataset.schema.names if not re.fullmatch(r"__index_level_\d+__", n)]
            check_unique_columns(names, self.label)
            self._check_columns(names)
            for batch in dataset.to_batches(columns=names, batch_size=self.batch_rows):
                yield batch
        except DataError:
            raise
        except Exception as exc:  # pyarrow raises several types for a damaged file
            raise DataError(f"{self.label}: not readable as Parquet ({_first_line(exc)}).") from None

    def _csv(self, text: set[str] | None):
        import pyarrow.csv as pacsv

        from coupler.builtin.datasets import check_file_kind
        from coupler.dataset import check_unique_columns

        options = dict(self.run.manifest.get("read_options") or {})
        check_file_kind(self.path, parquet=False, label=self.label,
                        fix=f"name it {self.path.with_suffix('.parquet').name}")
        if self.path.stat().st_size == 0:
            raise DataError(f"{self.label} is empty.")
        mapped = _pyarrow_csv_options(options)
        if mapped is None:  # options pyarrow does not take: read whole, with pandas, as the run did
            yield _whole_csv(self.run, self.path)
            return
        read, parse, null_values = mapped
        names: list[str] = []
        try:
            names = pacsv.open_csv(self.path, read_options=read, parse_options=parse).schema.names
            check_unique_columns(names, self.label)
            self._check_columns(names)
            reader = pacsv.open_csv(self.path, read_options=read, parse_options=parse,
                                    convert_options=self._convert_options(names, null_values, text))
            for batch in reader:
                yield batch
        except DataError:
            raise
        except Exception as exc:
            self._csv_failure(exc, options, names, text)

    def _convert_options(self, names: list[str], null_values: list[str], text: set[str] | None):
        """Categorical training columns as text; numeric ones as float64; the others inferred by pyarrow. The columns
        in ``text`` as text (None: every column)."""
        import pyarrow as pa
        import pyarrow.csv as pacsv

        preprocessor = self.run.preprocessor
        tabular = self.run.input_format in ("matrix", "frame")
        types = {name: pa.string() for name in (names if text is None else text)}
        for column in preprocessor.columns:
            numeric = tabular and column not in preprocessor.categorical and text is not None and column not in text
            types[column] = pa.float64() if numeric else pa.string()
        return pacsv.ConvertOptions(column_types=types, null_values=null_values, strings_can_be_null=True,
                                    quoted_strings_can_be_null=True)

    def _csv_failure(self, exc: Exception, options: dict, names: list[str], text: set[str] | None):
        from coupler.builtin.datasets import undecodable

        reason = _first_line(exc)
        encoding = options.get("encoding", "utf-8")
        if isinstance(exc, UnicodeDecodeError) or "UTF8" in reason:
            found = undecodable(self.path, encoding)
            where = (f"byte {found[2]} at byte offset {found[0]}, line {found[1]}: {found[3]}" if found else reason)
            raise DataError(f"{self.label}: the file is not {encoding} text ({where}); save it as {encoding} text, as "
                            f"the run's training data were.") from None
        if "conversion error" in reason and text is not None:
            found = re.match(r"In CSV column #(\d+):", reason)
            raise _Restart(names[int(found.group(1))] if found and int(found.group(1)) < len(names) else None) from None
        if "Empty CSV file" in reason:
            raise DataError(f"{self.label} is empty.") from None
        raise DataError(f"cannot read {str(self.path)!r}: {type(exc).__name__}: {reason}") from None

    def _check_columns(self, names: list[str]) -> None:
        """Every training column is in the input (before a row is read)."""
        import pandas as pd

        self.run.preprocessor.check_columns(pd.DataFrame(columns=names))


def _pyarrow_csv_options(options: dict):
    """The run's pandas read options as pyarrow's ``(ReadOptions, ParseOptions, null values)``, or None where they
    do not map (a separator of more than one character, an option pyarrow has no counterpart of)."""
    import pyarrow.csv as pacsv

    sep = options.get("sep", ",")
    if not isinstance(sep, str) or len(sep) != 1 or set(options) - {"sep", "encoding", "na_values", "dtype"}:
        return None
    markers = options.get("na_values") or []
    markers = [str(m) for m in (markers if isinstance(markers, (list, tuple)) else [markers])]
    read = pacsv.ReadOptions(encoding=options.get("encoding", "utf-8"), block_size=CSV_BLOCK_BYTES)
    return read, pacsv.ParseOptions(delimiter=sep), list(dict.fromkeys([*PANDAS_NA, *markers]))


def _whole_csv(run, path: Path):
    """The whole CSV, read by pandas as the run read its training data, as one pyarrow table (a column of values of
    several kinds, numbers and text, as text)."""
    import pandas as pd
    import pyarrow as pa

    frame = run.read_rows(path)
    mixed = {c: frame[c].where(frame[c].isna(), frame[c].astype(str)) for c in frame.columns
             if frame[c].dtype == object and not pd.api.types.is_string_dtype(frame[c])}
    if mixed:
        frame = frame.copy()
        for column, values in mixed.items():
            frame[column] = values
    return pa.Table.from_pandas(frame, preserve_index=False)


def _rebatched(blocks, rows: int):
    """pyarrow record batches (or tables) of any length, as tables of ``rows`` rows (the last one shorter)."""
    import pyarrow as pa

    pending, held = [], 0
    for block in blocks:
        table = block if isinstance(block, pa.Table) else pa.Table.from_batches([block])
        pending.append(table)
        held += table.num_rows
        while held >= rows:
            joined = pa.concat_tables(pending)
            yield joined.slice(0, rows)
            rest = joined.slice(rows)
            pending, held = [rest], rest.num_rows
    if held:
        yield pa.concat_tables(pending)


def _first_line(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [""])[0]  # pyarrow's messages may run to many lines
