"""Reloading a finished run: ``coupler evaluate``, ``coupler predict``, and ``coupler.FinishedRun`` in Python.

The model is rebuilt by its registered factory from the saved config and restored with ``Model.load``; the
preprocessing from ``preprocessor.json``. Nothing is unpickled. In Python::

    from coupler import FinishedRun

    run = FinishedRun("outputs/2024-05-01/12-00-00")
    run.predict(frame)          # labels (or numbers), one per row of a DataFrame with the training columns
    run.predict_proba(frame)    # a DataFrame, a column per class; None for a model without probabilities
    run.transform(frame)        # the rows as the model reads them (the run's own preprocessing)
    run.far_outside(frame)      # {feature: rows} far outside the training data (coupler.drift's rule)
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import threading
from pathlib import Path

import numpy as np

from coupler import drift
from coupler.components import Split
from coupler.dataset import encode_target
from coupler.errors import CouplerError, DataError
from coupler.evaluation import measure, measure_stream, predictions_frame, select_metrics
from coupler.parquet import ParquetDataset
from coupler.plugin_faults import BlamedModel, component_label
from coupler.plugin_manager import PluginManager
from coupler.preprocessing import Preprocessor
from coupler.run_directory import atomic_write_bytes, atomic_write_text, read_manifest
from coupler.splitting import SplitIndices, split_rows

log = logging.getLogger("coupler")


#: the working directory is the process's: one thread at a time may move it
_WORKING_DIRECTORY_LOCK = threading.RLock()


@contextlib.contextmanager
def working_directory(path: str | None):
    """Run the block in ``path`` (when it is a directory), so that a run's relative data paths resolve as they
    did when it trained. The directory is the whole process's: threads that reload runs at once (a server
    holding several) take turns here; code in other threads that opens relative paths meanwhile would see
    ``path``, so such code should use absolute ones."""
    with _WORKING_DIRECTORY_LOCK:
        previous = os.getcwd()
        if path and Path(path).is_dir():
            os.chdir(path)
        try:
            yield
        finally:
            os.chdir(previous)


class FinishedRun:
    """A finished run, verified (``read_manifest``) and reloaded: its config, classes, preprocessing and model.

    ``manager``: the plugin manager whose plugins rebuild the model (default: the process's, with every
    installed plugin)."""

    def __init__(self, run_dir: Path | str, manager: PluginManager | None = None):
        import yaml

        if manager is None:
            from coupler.plugin_manager import get_plugin_manager

            manager = get_plugin_manager()
        self.directory = Path(run_dir)
        self.manifest = read_manifest(self.directory)
        # written by OmegaConf.to_yaml from the resolved config: plain YAML (no OmegaConf import: coupler predict's
        # start-up), data only (safe_load, as coupler compare reads it)
        self.config = yaml.safe_load((self.directory / "config.yaml").read_text())
        self.manager = manager
        self.task = self.manifest["task"]
        self.classes = self.manifest["classes"]
        self.preprocessor = Preprocessor.from_state(json.loads((self.directory / "preprocessor.json").read_text()))
        recorded = self.manifest["components"]["model"]
        try:
            component = manager.registry.get("model", recorded["name"])
        except CouplerError:
            raise CouplerError(
                f"run {str(self.directory)!r} was trained with model {recorded['name']!r} of plugin "
                f"{recorded['plugin']!r} ({recorded['distribution']} {recorded['version']}), which is not installed "
                f"or is disabled here: pip install {recorded['distribution']}=={recorded['version']}"
            ) from None
        # relative paths in the model's config (a pretrained model's directory) start where the run was trained
        with working_directory(self.manifest.get("working_directory")):
            self.model = component.build("model", self.config["model"], task=self.task, seed=self.manifest["seed"])
        self.model.load(self.directory.resolve() / "model")
        self.input_format = self.manifest["features"]["input_format"]
        #: each feature's training distribution (``coupler.drift``); None for a run that has none
        self.distribution = drift.read(self.directory)
        self._far_outside = drift.FarOutside(self.distribution)

    def metrics(self):
        return select_metrics(self.config.get("metrics"), self.task, self.model, self.manager.registry)

    def evaluate(self, data_config: dict | None = None) -> dict[str, dict]:
        """The run's val and test metrics, recomputed from its own data; or, with ``data_config``, the
        metrics on every row of that data set (``{"data": {...}}``)."""
        metrics = self.metrics()
        if data_config is not None:
            dataset = self.manager.registry.get("data", data_config["name"]).build("data", data_config)
            if isinstance(dataset, ParquetDataset) and self.input_format == "matrix":  # streamed, row group by group
                stream = self._streams(dataset, ("all",))["all"]
                return {"data": measure_stream(self.predictor(), stream, metrics, len(self.classes), self.task)[0].scalars}
            dataset = self._in_memory(dataset)[0]
            y, _ = encode_target(dataset.y, self.task, self.classes)
            X = self.preprocessor.transform(dataset.X, self.input_format)
            return {"data": measure(self.predictor(), X, y, metrics, len(self.classes)).scalars}
        if self.manifest["features"].get("streamed"):
            with working_directory(self.manifest.get("working_directory")):
                data = self.manager.registry.get("data", self.config["data"]["name"]).build("data", self.config["data"])
            self._check_fingerprint(data)
            streams = self._streams(data, ("val", "test"))
            if (self.config.get("cv") or {}).get("folds"):
                streams.pop("val")
            return {name: measure_stream(self.predictor(), streams[name], metrics, len(self.classes), self.task,
                                         rows=self.manifest["rows"][name])[0].scalars
                    if name in streams and self.manifest["rows"][name] else {} for name in ("val", "test")}
        dataset, y, indices = self._own_split()
        results = {}
        for name, rows in (("val", indices.val), ("test", indices.test)):
            part = Split(self.preprocessor.transform(dataset.X.iloc[rows], self.input_format), y[rows])
            results[name] = measure(self.predictor(), part.X, part.y, metrics, len(self.classes)).scalars if len(part) else {}
        return results

    def _own_split(self):
        """The run's own data set, its encoded target, and its split's rows (without val rows when the final model
        of a cross-validated run trained on them), as it was trained."""
        config = self.config["data"]
        # relative paths start where the run was trained
        with working_directory(self.manifest.get("working_directory")):
            dataset = self.manager.registry.get("data", config["name"]).build("data", config)
            self._check_fingerprint(dataset)  # relative file paths too
        dataset, codes = self._in_memory(dataset)
        y, _ = encode_target(dataset.y, self.task, self.classes)
        if codes is not None:  # a directory of Parquet files: each row's split is its hash's
            indices = SplitIndices(*(np.flatnonzero(codes == k) for k in range(3)))
        else:
            indices = split_rows(y, self.task, self.config["split"], self.manifest["seed"], self.classes,
                                 ordered=dataset.ordered, gap=dataset.gap)
        cv = self.config.get("cv") or {}
        if cv.get("folds") and cv.get("refit", True):  # the final model trained on the val rows: no val score
            indices = dataclasses.replace(indices, val=indices.val[:0])
        return dataset, y, indices

    def _check_fingerprint(self, dataset) -> None:
        if dataset.fingerprint() != self.manifest["data_fingerprint"]:
            log.warning("the data differ from those the run was trained on; val/test are not the run's splits")

    def _in_memory(self, dataset):
        """A ``Dataset``, and each row's split code for a directory of Parquet files read whole (else None)."""
        if isinstance(dataset, ParquetDataset):
            return dataset.materialize(self.manifest["seed"], self.config["split"]["val"], self.config["split"]["test"])
        return dataset, None

    def _streams(self, data, splits) -> dict:
        from coupler.parquet import unscanned_streams

        return unscanned_streams(data, self.preprocessor, self.manifest["seed"], self.config["split"]["val"],
                                 self.config["split"]["test"], self.task, self.classes, splits)

    def labelled_rows(self, path: Path | None = None):
        """``(rows, target)``: the run's own test rows (raw, as the data set gives them) and their labels (or
        numbers); or, with ``path``, every row of that CSV or Parquet file, which holds the training columns and the
        target column (``manifest["features"]["target"]``)."""
        import numpy as np

        if path is None:
            dataset, y, indices = self._own_split()
            labels = np.asarray(self.classes, dtype=object)[y[indices.test]] if self.classes else y[indices.test]
            return dataset.X.iloc[indices.test], labels
        target = self.manifest["features"]["target"]
        frame = self.read_rows(Path(path))
        if target not in frame.columns:
            raise DataError(f"{str(path)!r} has no column {target!r}, the run's target; add it (the true labels of "
                            f"its rows) to explain the model on these rows.")
        labels = frame[target].to_numpy()
        if self.classes:
            unknown = sorted({str(v) for v in labels} - {str(c) for c in self.classes})
            if unknown:
                raise DataError(f"{str(path)!r}: column {target!r} holds {unknown[:5]}, which are not classes the run "
                                f"learned: {self.classes}")
            labels = np.asarray([self.classes[[str(c) for c in self.classes].index(str(v))] for v in labels],
                                dtype=object)
        return frame.drop(columns=[target]), labels

    def predictor(self) -> BlamedModel:
        """The model, answering rows as ``transform`` gives them (``predict``, ``predict_proba``); an exception from it
        names its component and plugin."""
        return BlamedModel(self.model, component_label(self.manager, "model", self.config["model"]["name"]))

    def transform(self, rows, impute: bool = False):
        """``rows`` (a DataFrame with the training columns, or what ``pandas.DataFrame`` accepts) as the model
        reads them: the run's own preprocessing, after the checks ``coupler predict`` makes (every training
        column present; numbers where the run had numbers, unless ``impute``)."""
        import pandas as pd

        frame = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(rows)
        self.preprocessor.check_columns(frame)
        self.preprocessor.check_input(frame, impute=impute)
        return self.preprocessor.transform(frame, self.input_format)

    def predict(self, rows, output_path: Path | None = None, impute: bool = False):
        """The predictions for ``rows`` (see ``transform``), one a row: the class labels of a classifier, the
        numbers of a regressor. (With ``output_path``, ``rows`` is a file: ``predict_file``.)"""
        if output_path is not None:
            return self.predict_file(rows, output_path, impute)
        import numpy as np

        predicted = np.asarray(self.predictor().predict(self.transform(rows, impute)))
        return np.asarray(self.classes, dtype=object)[predicted.astype(int)] if self.classes else predicted

    def predictions(self, rows, impute: bool = False, validated: bool = False):
        """``(predict(rows), predict_proba(rows))`` from one pass of the preprocessing (``coupler serve``).
        ``validated``: ``rows`` is a DataFrame whose every training column is there and whose numeric columns hold
        finite floats or missing values only (``coupler serve`` validated them): ``transform``'s checks are
        skipped."""
        import numpy as np
        import pandas as pd

        from coupler.components import gives_proba

        X = self.preprocessor.transform(rows, self.input_format) if validated else self.transform(rows, impute)
        model = self.predictor()
        predicted = np.asarray(model.predict(X))
        labels = np.asarray(self.classes, dtype=object)[predicted.astype(int)] if self.classes else predicted
        proba = model.predict_proba(X) if self.classes and gives_proba(self.model, self.task) else None
        return labels, None if proba is None else pd.DataFrame(proba, columns=list(self.classes))

    def far_outside(self, rows) -> dict[str, int]:
        """Per feature, how many of ``rows`` lie far outside the training data: categories unseen in training,
        numbers beyond its range by more than the recorded margin (0.5) times its width (``coupler.drift``). Empty
        for a run without a recorded distribution."""
        import pandas as pd

        return self._far_outside(rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(rows))

    def predict_proba(self, rows, impute: bool = False):
        """A DataFrame of class probabilities for ``rows``, a column per class label (index: the rows'); None for
        a regressor or a model without probabilities."""
        import pandas as pd

        from coupler.components import gives_proba

        if not self.classes or not gives_proba(self.model, self.task):
            return None
        model = self.predictor()
        X = self.transform(rows, impute)
        proba = model.predict_proba(X)
        index = rows.index if isinstance(rows, pd.DataFrame) else None
        return None if proba is None else pd.DataFrame(proba, columns=list(self.classes), index=index)

    def _array_frame(self, path: Path):
        """An ``.npy`` array, or the array ``X`` of an ``.npz`` (rows, ...), flattened into the training columns."""
        import numpy as np
        import pandas as pd

        features = self.manifest["features"]
        others = [c for c, dtype in features["dtypes"].items() if not np.issubdtype(np.dtype(dtype), np.number)]
        if features.get("text") or features.get("input_format") == "files" or others:
            raise DataError(f"{str(path)!r}: an array holds numbers only, and this run reads "
                            f"{'text' if features.get('text') else 'files' if not others else f'the columns {others}'}; "
                            f"give a CSV or Parquet file with the training columns.")
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as archive:
                names = list(archive.files)
                if "X" not in names and len(names) != 1:
                    raise DataError(f"{str(path)!r} holds the arrays {names}; name the inputs X.")
                loaded = archive["X" if "X" in names else names[0]]
        else:
            loaded = np.load(path, allow_pickle=False)
        columns = self.preprocessor.columns
        array = loaded.reshape(len(loaded), -1) if loaded.ndim > 1 else loaded[:, None]
        if array.shape[1] != len(columns):
            shape = features.get("sequence")
            raise DataError(f"{str(path)!r} holds an array of shape {loaded.shape}: {array.shape[1]} values a row, and "
                            f"the run was trained on {len(columns)}"
                            f"{f' (sequences of {shape[0]} steps x {shape[1]} features)' if shape else ''}")
        return pd.DataFrame(array, columns=columns)

    def predict_file(self, input_path: Path, output_path: Path, impute: bool = False,
                     batch_rows: int | None = None) -> int:
        """Predict every row of ``input_path`` into ``output_path`` (CSV, or Parquet when it is named ``.parquet``):
        the input's columns, ``prediction``, and ``proba_CLASS`` columns for a classifier. Returns the row count.
        ``input_path``: a CSV or Parquet file, or a directory of Parquet files, read and written ``batch_rows`` rows
        at a time (``coupler.batch_predict``); an ``.npy``/``.npz`` array for a run on numeric features (sequences),
        read whole. A value that is not a number in a numeric training column is an error, unless ``impute``: then
        it is imputed as training imputed missing values. Infinity is an error either way."""
        from coupler.batch_predict import DEFAULT_BATCH_ROWS, predict_table_file

        input_path, output_path = Path(input_path), Path(output_path)
        if output_path.is_dir():
            raise DataError(f"output {str(output_path)!r} is a directory; give a file name (out.csv or out.parquet).")
        if input_path.suffix in (".npy", ".npz") and input_path.is_file():
            return self._predict_array_file(input_path, output_path, impute)
        return predict_table_file(self, input_path, output_path, impute, batch_rows or DEFAULT_BATCH_ROWS)

    def _predict_array_file(self, input_path: Path, output_path: Path, impute: bool) -> int:
        """``predict_file`` for an ``.npy``/``.npz`` array: read whole, written at once."""
        import pandas as pd

        frame = self.read_rows(input_path)
        if len(frame) == 0:
            raise DataError(f"input file {str(input_path)!r} has no rows.")
        X = self.transform(frame, impute)
        drift.log_far_outside(self.far_outside(frame), self.distribution)
        measured = measure(self.predictor(), X, None, [], len(self.classes))
        output = pd.concat([frame, predictions_frame(frame.index, measured, self.classes)], axis=1)
        if output_path.suffix == ".parquet":
            import io

            buffer = io.BytesIO()
            output.to_parquet(buffer, index=False)
            atomic_write_bytes(output_path, buffer.getvalue())
        else:
            atomic_write_text(output_path, output.to_csv(index=False))
        return len(frame)

    def read_rows(self, input_path: Path):
        """The rows of a CSV or Parquet file (an ``.npy``/``.npz`` array for a run on numbers only), read as the run
        read its training data; the first bytes tell Parquet from CSV, whatever the name."""
        import pandas as pd

        from coupler.builtin.datasets import read_csv_file, read_parquet_file

        label = f"input file {str(input_path)!r}"
        try:
            if input_path.suffix in (".npy", ".npz"):
                return self._array_frame(input_path)
            if input_path.suffix == ".parquet":
                return read_parquet_file(input_path, label=label,
                                         csv_fix=f"if it holds CSV text, name it {input_path.with_suffix('.csv').name}")
            options = dict(self.manifest.get("read_options") or {})
            return read_csv_file(input_path, options, label=label,
                                 parquet_fix=f"name it {input_path.with_suffix('.parquet').name}",
                                 encoding_fix=f"save it as {options.get('encoding', 'utf-8')} text, as the run's "
                                              f"training data were")
        except DataError:
            raise
        except pd.errors.EmptyDataError:
            raise DataError(f"input file {str(input_path)!r} is empty.") from None
        except Exception as exc:
            reason = (str(exc).strip().splitlines() or [""])[0]  # pandas' and pyarrow's may run to many lines
            raise DataError(f"cannot read {str(input_path)!r}: {type(exc).__name__}: {reason}") from None
