"""Exporting a run as one file that answers like ``coupler predict``: ONNX (every engine) and TorchScript (torch).

An export takes the **raw feature columns**, the run's preprocessing included, so that no consumer re-implements
``preprocessor.json``. The work is split where the knowledge lies:

- the core (this module) turns the fitted preprocessing (``coupler.preprocessing.Preprocessor``'s JSON state) into
  an ONNX graph (``preprocessing_graph``), joins it to the model's graph (``join``), maps class codes to the run's
  labels, runs the **parity check** on the run's test rows (``parity``), and writes the files, their metadata
  and the manifest record (``export_run``: at train time, ``exporters=[onnx]``; afterwards, ``coupler export``);
- the engine's plugin converts its model: a model declares ``export_formats`` (``coupler.components.Model``) and
  implements ``to_onnx(n_features)`` (a graph from input ``features``, float32 (rows, n_features), to ``label``,
  int64 class codes, and ``probabilities``, float32 (rows, classes); or ``prediction``, float32 (rows,), for
  regression) and, for TorchScript, ``to_torchscript(state)`` (``coupler_torch.export``).

The ONNX inputs: one per raw column, named as the column, shape (rows, 1): ``tensor(double)`` for a numeric column
(NaN: missing, imputed as training did), ``tensor(string)`` for a categorical one ("": missing, filled with the
training's most frequent value; a category unseen in training encodes as the run encodes it). Outputs: ``label``
(the run's class labels: strings, or int64 when every class is a whole number) and ``probabilities`` (float32, a
column per class in the order of the manifest's ``classes``); for regression ``prediction`` (float32).

**Parity.** Each export is run on the run's test rows (its validation rows when the test split is empty, else its
training rows) and compared with the reloaded model on the same raw rows (``FinishedRun.predict``'s path): labels
must agree on every row and probabilities within ``PROBA_TOLERANCE``; a regression's predictions within
``REGRESSION_RTOL`` relative to the largest predicted magnitude (float32 carries about 7 digits). The figures go
into ``exports/FORMAT.json`` and the manifest's ``exports``; an export that misses them is an error, and no file
is left.

**Failures.** What an export cannot carry of the data (categorical columns a model reads natively) is refused
before ``fit`` (``FormatExporter.check_data``); a converter's own exception (skl2onnx, onnxmltools, onnx, torch,
onnxruntime) is one ``CouplerError`` naming the model, the format and the library's first line (``converting``).
A ``coupler export`` killed before it resealed the manifest leaves a stale lock and unlisted files in ``exports/``;
the next ``coupler export`` takes the lock over and removes those files first (``remove_interrupted_export``).

ONNX, onnxruntime and the converters are imported only when an export runs.
"""

from __future__ import annotations

import json
import logging
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from coupler.components import CLASSIFICATION, Exporter
from coupler.errors import CouplerError

log = logging.getLogger("coupler")

#: the default domain's opset of every graph Coupler writes (onnxruntime >= 1.14 runs it)
OPSET = 17
#: the ai.onnx.ml opset (LabelEncoder with default values, TreeEnsemble*)
ML_OPSET = 3
#: the name of the tensor between the preprocessing graph and the model's graph
FEATURES = "features"
#: labels agree on every row; probabilities within this (absolute)
PROBA_TOLERANCE = 1e-5
#: a regression's predictions within this, relative to the largest |prediction| (float32 keeps ~7 digits)
REGRESSION_RTOL = 1e-5
#: where exports go in a run directory, and the file extension of each format
EXPORTS = "exports"
FILES = {"onnx": "model.onnx", "torchscript": "model.torchscript.pt"}


def require(*modules: str, install: str) -> None:
    """Import ``modules`` or refuse with the pip command that installs them (an export's libraries are extras)."""
    import importlib

    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError:
            raise CouplerError(f"exporting needs {module}, which is not installed: pip install '{install}'") from None


# --- the exporters ------------------------------------------------------------------------------------------


class FormatExporter(Exporter):
    """An exporter of one format that a model opts into by naming it in ``Model.export_formats``; the run checks
    it before any data is read (``coupler.capabilities``), so a model that cannot be exported is refused then."""

    format = ""

    @classmethod
    def supports(cls, model: Any, name: str) -> bool:
        return cls.format in (getattr(model, "export_formats", None) or ())

    def check_data(self, model: Any, model_name: str, categorical: list, input_format: str, registry=None) -> None:
        """Refuse, once the data are read and before ``fit`` (``coupler.capabilities.check_built``), what the
        export could not carry: categorical columns the model reads natively (frame input: XGBoost's category
        splits), which no converter turns into a graph. Otherwise the run would train fully and fail at export."""
        if input_format != "frame" or not categorical:
            return
        from coupler.capabilities import _choices, models_that
        from coupler.errors import ConfigError

        def reads_encoded(declared) -> bool:
            formats = tuple(getattr(declared, "input_formats", None) or (getattr(declared, "input_format", "matrix"),))
            first = next((f for f in formats if f in ("matrix", "frame")), None)
            return first == "matrix" and self.format in (getattr(declared, "export_formats", None) or ())

        fitting = models_that(registry, model_name, reads_encoded) if registry is not None else []
        shown = ", ".join(map(repr, categorical[:5])) + (" ..." if len(categorical) > 5 else "")
        raise ConfigError("exporters", self.format,
                          f"exporters without {self.format} for this run: model {model_name!r} reads the categorical "
                          f"column(s) {shown} natively (frame input), and its category splits have no {self.format} "
                          f"converter; remove {self.format} from exporters, leave the column(s) out "
                          f"(data.features=[...]), or choose a model that reads them encoded"
                          f"{f' ({_choices(fitting)})' if fitting else ''}")

    def export(self, model, run, directory: Path) -> list[Path]:
        from coupler.preprocessing import Preprocessor

        state = json.loads((run.directory / "preprocessor.json").read_text())
        rows = parity_rows(run.config, run.registry, run.task, run.classes, run.seed)
        return export_model(self.format, model, Preprocessor.from_state(state), run.task, run.classes, rows,
                            Path(directory), name=run.config["model"]["name"])


class OnnxExporter(FormatExporter):
    """``exporters=[onnx]``: ``exports/model.onnx``, the raw columns in, the run's answers out (module docstring)."""

    format = "onnx"


# --- the rows parity is measured on -------------------------------------------------------------------------


def parity_rows(config: dict, registry, task: str, classes: list, seed: int):
    """``(split name, raw feature rows)``: the run's test rows, read again from its data and split as it split them;
    its validation rows when it has no test rows or keeps them unread (``split.measure_test=false``, a search's
    trial), else its training rows."""
    from coupler.dataset import encode_target
    from coupler.splitting import split_rows

    dataset = registry.get("data", config["data"]["name"]).build("data", config["data"])
    y, _ = encode_target(dataset.y, task, classes)
    indices = split_rows(y, task, config["split"], seed, classes, ordered=dataset.ordered, gap=dataset.gap)
    unread = () if config["split"].get("measure_test", True) else ("test",)
    for name in ("test", "val", "train"):
        rows = getattr(indices, name) if name not in unread else []
        if len(rows):
            return name, dataset.X.iloc[rows]
    raise CouplerError("the run's data have no rows to check the export on")


# --- the preprocessing as an ONNX graph -------------------------------------------------------------------


def check_exportable(state: dict) -> None:
    """Refuse preprocessing that has no ONNX form: only tables (``matrix``, ``frame``) are exported."""
    if state.get("input_format", "matrix") not in ("matrix", "frame"):
        raise CouplerError(f"a run whose model reads {state['input_format']} cannot be exported: an export takes a "
                           f"table's raw columns (models that read matrix or frame input: model=logistic_regression, "
                           f"model=xgboost, model=mlp)")


def preprocessing_graph(state: dict):
    """The fitted preprocessing (``Preprocessor.state()``) as an ONNX graph: an input per raw column (module
    docstring), output ``features``, float32 (rows, columns the model reads), computed in double as
    ``Preprocessor.transform`` does and cast to float32 at the end (as every engine casts its input)."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    check_exportable(state)
    frame = state.get("input_format", "matrix") == "frame"
    nodes, inputs, initializers, blocks = [], [], [], []

    def constant(name: str, value) -> str:
        initializers.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    for index, column in enumerate(state["columns"]):
        tag = f"c{index}"
        if column in state["categorical"]:
            if frame:
                raise CouplerError(f"column {column!r} is categorical and the model reads it natively (frame input): "
                                   f"its category splits have no ONNX converter; export a model that reads a matrix "
                                   f"(one-hot or ordinal codes: model=random_forest, model=mlp), or leave the column "
                                   f"out (data.features=[...])")
            spec = state["categorical"][column]
            categories = list(spec["categories"])
            keys = categories + ([""] if "" not in categories else [])  # "": missing, filled as training filled it
            values = list(range(len(categories))) + ([categories.index(spec["fill"])] if "" not in categories else [])
            inputs.append(helper.make_tensor_value_info(column, TensorProto.STRING, [None, 1]))
            nodes.append(helper.make_node("LabelEncoder", [column], [f"{tag}_code"], domain="ai.onnx.ml",
                                          keys_strings=keys, values_int64s=values, default_int64=-1))
            if state["encode"] == "ordinal":
                nodes.append(helper.make_node("Cast", [f"{tag}_code"], [f"{tag}_out"], to=TensorProto.DOUBLE))
            else:
                positions = constant(f"{tag}_positions", np.arange(len(categories), dtype=np.int64))
                nodes.append(helper.make_node("Equal", [f"{tag}_code", positions], [f"{tag}_hot"]))
                nodes.append(helper.make_node("Cast", [f"{tag}_hot"], [f"{tag}_out"], to=TensorProto.DOUBLE))
        else:
            inputs.append(helper.make_tensor_value_info(column, TensorProto.DOUBLE, [None, 1]))
            if frame:  # the model imputes (XGBoost's missing branches): the numbers as they are
                nodes.append(helper.make_node("Identity", [column], [f"{tag}_out"]))
            else:
                spec = state["numeric"][column]
                nodes += [
                    helper.make_node("IsNaN", [column], [f"{tag}_nan"]),
                    helper.make_node("Where", [f"{tag}_nan", constant(f"{tag}_fill", [spec["fill"]]), column],
                                     [f"{tag}_filled"]),
                    helper.make_node("Sub", [f"{tag}_filled", constant(f"{tag}_offset", [spec["offset"]])],
                                     [f"{tag}_centred"]),
                    helper.make_node("Div", [f"{tag}_centred", constant(f"{tag}_scale", [spec["scale"]])],
                                     [f"{tag}_out"]),
                ]
        blocks.append(f"{tag}_out")
    nodes.append(helper.make_node("Concat", blocks, ["features_double"], axis=1))
    nodes.append(helper.make_node("Cast", ["features_double"], [FEATURES], to=TensorProto.FLOAT))
    graph = helper.make_graph(nodes, "coupler_preprocessing", inputs,
                              [helper.make_tensor_value_info(FEATURES, TensorProto.FLOAT, [None, None])], initializers)
    return _model(graph)


def _model(graph):
    from onnx import helper

    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET),
                                                    helper.make_opsetid("ai.onnx.ml", ML_OPSET)])
    model.ir_version = 8  # what opset 17 needs; onnxruntime reads it back to 1.14
    return model


def onnx_inputs(state: dict, rows) -> dict:
    """The feed of an exported graph for raw rows (a DataFrame with the training columns): each numeric column as
    double (text that is no number: missing), each categorical one as strings ("" where missing)."""
    import numpy as np
    import pandas as pd

    from coupler.preprocessing import category_text

    feed = {}
    for column in state["columns"]:
        values = rows[column]
        if column in state["categorical"]:
            text = category_text(values, state["categorical"][column]["categories"]).fillna("").astype(str)
            feed[column] = text.to_numpy(dtype=object).reshape(-1, 1)
        else:
            feed[column] = pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64).reshape(-1, 1)
    return feed


# --- joining the graphs ---------------------------------------------------------------------------------------


def join(preprocessing, model_graph, task: str, classes: list):
    """One graph: the preprocessing, the model's graph on its ``features``, and (classification) the class codes
    mapped to the run's labels. Outputs ``label`` and ``probabilities``, or ``prediction``."""
    import numpy as np
    import onnx
    from onnx import TensorProto, compose, helper

    model_graph = _aligned(model_graph)
    joined = compose.merge_models(preprocessing, model_graph, io_map=[(FEATURES, FEATURES)],
                                  prefix2="m_")
    graph = joined.graph
    outputs = {o.name: o for o in graph.output}
    if task in CLASSIFICATION:
        if "m_label" not in outputs:
            raise CouplerError(f"the model's ONNX graph has no output 'label' (it has {[n[2:] for n in outputs]}); its "
                               f"plugin's to_onnx must name its outputs label and probabilities")
        whole = all(isinstance(c, int) and not isinstance(c, bool) for c in classes)
        labels = dict(values_int64s=[int(c) for c in classes]) if whole else dict(values_strings=[str(c) for c in classes])
        graph.node.append(helper.make_node("Flatten", ["m_label"], ["m_label_column"], axis=1))
        graph.node.append(helper.make_node("Squeeze", ["m_label_column", "m_label_axis"], ["m_label_flat"]))
        graph.initializer.append(onnx.numpy_helper.from_array(np.array([1], dtype=np.int64), "m_label_axis"))
        graph.node.append(helper.make_node("Cast", ["m_label_flat"], ["m_label_code"], to=TensorProto.INT64))
        graph.node.append(helper.make_node("LabelEncoder", ["m_label_code"], ["label"], domain="ai.onnx.ml",
                                           keys_int64s=list(range(len(classes))), **labels,
                                           **({"default_int64": -1} if whole else {"default_string": ""})))
        del graph.output[:]
        graph.output.append(helper.make_tensor_value_info("label", TensorProto.INT64 if whole else TensorProto.STRING,
                                                          [None]))
        if "m_probabilities" in outputs:  # a classifier without probabilities (ridge) gives labels only
            graph.node.append(helper.make_node("Identity", ["m_probabilities"], ["probabilities"]))
            graph.output.append(helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [None, len(classes)]))
    else:
        if "m_prediction" not in outputs:
            raise CouplerError(f"the model's ONNX graph has no output 'prediction' (it has {[n[2:] for n in outputs]})")
        graph.node.append(helper.make_node("Reshape", ["m_prediction", "m_flat_shape"], ["prediction"]))
        graph.initializer.append(onnx.numpy_helper.from_array(np.array([-1], dtype=np.int64), "m_flat_shape"))
        del graph.output[:]
        graph.output.append(helper.make_tensor_value_info("prediction", TensorProto.FLOAT, [None]))
    onnx.checker.check_model(joined)
    return joined


def _aligned(model_graph):
    """The model's graph with the opsets and IR version of the preprocessing graph (``merge_models`` needs them
    equal): a converter's newer default opset is converted down, an older one up."""
    import onnx
    from onnx import version_converter

    default = next((o.version for o in model_graph.opset_import if o.domain in ("", "ai.onnx")), OPSET)
    if default != OPSET:
        model_graph = version_converter.convert_version(model_graph, OPSET)
    imports = {o.domain: o for o in model_graph.opset_import}
    if "ai.onnx.ml" in imports:
        imports["ai.onnx.ml"].version = max(imports["ai.onnx.ml"].version, ML_OPSET)
    else:
        model_graph.opset_import.append(onnx.helper.make_opsetid("ai.onnx.ml", ML_OPSET))
    for domain, opset in imports.items():
        if domain not in ("", "ai.onnx", "ai.onnx.ml"):
            raise CouplerError(f"the model's ONNX graph uses operators of domain {domain!r}; an export uses the "
                               f"standard ones only")
    model_graph.ir_version = 8
    return model_graph


# --- parity ------------------------------------------------------------------------------------------------------


def reference(model, preprocessor, task: str, rows):
    """What the reloaded run answers for ``rows``: class codes and probabilities, or predictions (float64)."""
    import numpy as np

    X = preprocessor.transform(rows, preprocessor.input_format)
    predicted = np.asarray(model.predict(X))
    proba = model.predict_proba(X) if task in CLASSIFICATION else None
    return predicted, None if proba is None else np.asarray(proba, dtype=np.float64)


def compare(task: str, classes: list, expected, got, split: str) -> dict:
    """The parity record of ``got`` (``(labels, probabilities)`` or ``(predictions, None)``, as the export answers)
    against ``expected`` (``reference``), raising ``CouplerError`` when it misses the tolerances."""
    import numpy as np

    codes, proba = expected
    answered, answered_proba = got
    record: dict[str, Any] = {"rows": int(len(codes)), "split": split}
    if task in CLASSIFICATION:
        labels = np.asarray(classes, dtype=object)[np.asarray(codes).astype(int)]
        agree = float(np.mean([str(a) == str(b) for a, b in zip(labels, answered)])) if len(labels) else 1.0
        record["label_agreement"] = agree
        if (proba is None) != (answered_proba is None):
            raise CouplerError(f"the export {'lacks' if answered_proba is None else 'adds'} the run's probabilities")
        # None: the model gives no probabilities (ridge), and the export none either
        delta = (float(np.max(np.abs(proba - answered_proba))) if len(proba) else 0.0) if proba is not None else None
        record.update(max_abs_proba_diff=delta, proba_tolerance=PROBA_TOLERANCE)
        passed = agree == 1.0 and (delta is None or delta <= PROBA_TOLERANCE)
    else:
        delta = np.abs(np.asarray(codes, dtype=np.float64) - np.asarray(answered, dtype=np.float64))
        scale = max(float(np.max(np.abs(codes))) if len(codes) else 0.0, 1e-12)
        worst = float(delta.max()) if len(delta) else 0.0
        record.update(max_abs_diff=worst, max_rel_diff=worst / scale, rtol=REGRESSION_RTOL)
        passed = worst <= REGRESSION_RTOL * scale
    record["passed"] = bool(passed)
    return record


def onnx_answers(graph: bytes, state: dict, rows, task: str):
    """What an exported graph (its bytes) answers for raw ``rows``, run by onnxruntime on the CPU."""
    import numpy as np
    import onnxruntime

    session = onnxruntime.InferenceSession(graph, providers=["CPUExecutionProvider"])
    outputs = session.run(None, onnx_inputs(state, rows))
    names = [o.name for o in session.get_outputs()]
    answered = dict(zip(names, outputs))
    if task in CLASSIFICATION:
        proba = answered.get("probabilities")
        return answered["label"], None if proba is None else np.asarray(proba, dtype=np.float64)
    return answered["prediction"], None


# --- writing an export -----------------------------------------------------------------------------------------


def export_model(fmt: str, model, preprocessor, task: str, classes: list, rows, directory: Path,
                 name: str = "") -> list[Path]:
    """Write ``directory/FILES[fmt]`` and its metadata ``directory/FMT.json`` (inputs, outputs, classes, parity,
    seconds), after checking parity on ``rows`` (``(split, frame)``). Refuses to replace an existing export.
    On any failure, nothing is left."""
    from coupler.run_directory import atomic_write_bytes, write_json

    directory = Path(directory)
    target, meta = directory / FILES[fmt], directory / f"{fmt}.json"
    for path in (target, meta):
        if path.exists():
            raise CouplerError(f"{path} exists: the run was exported as {fmt} already (its parity: "
                               f"{meta.relative_to(directory.parent)}); an export is never replaced: export a copy "
                               f"of the run trained again")
    if fmt not in getattr(model, "export_formats", ()):
        raise CouplerError(f"model {name!r} cannot be exported as {fmt}; it exports "
                           f"{', '.join(getattr(model, 'export_formats', ())) or 'no format'}")
    if fmt == "onnx":
        require("onnx", "onnxruntime", install="coupler[onnx]")
    state = preprocessor.state()
    check_exportable(state)
    split, frame = rows
    started = time.perf_counter()
    with converting(name, fmt):
        if fmt == "onnx":
            pre = preprocessing_graph(state)
            n_features = len(preprocessor.feature_names(preprocessor.input_format))
            data = join(pre, model.to_onnx(n_features), task, classes).SerializeToString()
        else:
            data = model.to_torchscript(state, task)
    seconds = time.perf_counter() - started
    # parity on the bytes about to be written, before anything is: a file that misses it is never left behind
    with converting(name, fmt):
        if fmt == "onnx":
            got = onnx_answers(data, state, frame, task)
        else:
            got = model.torchscript_answers(data, state, frame, task)
    if fmt != "onnx" and task in CLASSIFICATION:  # TorchScript answers class codes: positions in the run's classes
        import numpy as np

        got = (np.asarray(classes, dtype=object)[np.asarray(got[0]).astype(int)], got[1])
    record = compare(task, classes, reference(model, preprocessor, task, frame), got, split)
    if not record["passed"]:
        raise CouplerError(f"the {fmt} export does not answer like the run on its {split} rows: {_shown(record)}; "
                           f"nothing was written. Report it to the model's plugin.")
    written = []
    try:
        atomic_write_bytes(target, data)
        written.append(target)
        write_json(meta, export_metadata(fmt, state, task, classes, record, seconds))
        written.append(meta)
    except BaseException:
        for path in written:
            path.unlink(missing_ok=True)
        raise
    log.info("exported %s: %s (parity on %d %s rows: %s)", fmt, target, record["rows"], split, _shown(record))
    return written


@contextmanager
def converting(name: str, fmt: str):
    """Turn a converter's own failure (skl2onnx, onnxmltools, onnx's version converter or checker, torch.onnx,
    torch.jit, onnxruntime loading the graph) into one ``CouplerError`` naming the model, the format and the
    library's first message line: a user gets the cause, not a traceback from inside a library."""
    try:
        yield
    except CouplerError:
        raise
    except Exception as exc:
        lines = str(exc).strip().splitlines()
        first = f"{type(exc).__name__}: {lines[0].strip()}" if lines else type(exc).__name__
        raise CouplerError(f"exporting model {name or '?'!r} as {fmt} failed in {failing_library(exc)}: {first}; "
                           f"nothing was written. Remove {fmt} from exporters (or train a model that converts), and "
                           f"report it to the model's plugin") from exc


def failing_library(exc: BaseException) -> str:
    """The library the failure came from: the package of the first traceback frame outside Coupler and its
    plugins (``coupler``, ``coupler_*``) and the standard library's plumbing; the model's plugin when none."""
    import sys

    traceback = exc.__traceback__
    while traceback is not None:
        module = traceback.tb_frame.f_globals.get("__name__", "") or ""
        top = module.split(".", 1)[0]
        if top and top != "coupler" and not top.startswith("coupler_") and top not in sys.stdlib_module_names:
            return top
        traceback = traceback.tb_next
    return "the model's converter"


def _shown(record: dict) -> str:
    if "label_agreement" in record:
        delta = record["max_abs_proba_diff"]
        return (f"labels agree {record['label_agreement']:.2%}, " + ("no probabilities" if delta is None else
                f"max |dp| {delta:.2e} (tolerance {record['proba_tolerance']:.0e})"))
    return f"max |d| {record['max_abs_diff']:.3e}, relative {record['max_rel_diff']:.2e} (rtol {record['rtol']:.0e})"


def export_metadata(fmt: str, state: dict, task: str, classes: list, parity: dict, seconds: float) -> dict:
    from importlib import metadata

    def version(name):
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return None

    libraries = ("onnx", "onnxruntime") if fmt == "onnx" else ("torch",)
    inputs = [{"name": c, "type": "string" if c in state["categorical"] else "double", "shape": [None, 1]}
              for c in state["columns"]]
    if fmt == "torchscript":
        numeric = [c for c in state["columns"] if c not in state["categorical"]]
        categorical = [c for c in state["columns"] if c in state["categorical"]]
        inputs = [{"name": "numeric", "type": "float64", "shape": [None, len(numeric)], "columns": numeric,
                   "missing": "NaN"},
                  {"name": "categories", "type": "int64", "shape": [None, len(categorical)], "columns": categorical,
                   "codes": {c: state["categorical"][c]["categories"] for c in categorical},
                   "missing": "the code of the training's most frequent value; -1: unseen"}]
    outputs = ([{"name": "label", "values": classes}, {"name": "probabilities", "columns": classes}]
               if task in CLASSIFICATION else [{"name": "prediction"}])
    if fmt == "torchscript" and task in CLASSIFICATION:
        outputs[0] = {"name": "label", "values": "class codes: index into classes", "classes": classes}
    return {"format": fmt, "file": FILES[fmt], "task": task, "classes": classes, "inputs": inputs,
            "outputs": outputs, "parity": parity, "seconds": round(seconds, 3),
            **({"opset": OPSET, "ml_opset": ML_OPSET} if fmt == "onnx" else {}),
            "libraries": {n: version(n) for n in libraries}}


def export_records(run_dir: Path) -> dict:
    """``{format: metadata}`` of the exports in ``run_dir/exports`` (the manifest's ``exports``)."""
    records = {}
    for fmt in FILES:
        path = Path(run_dir) / EXPORTS / f"{fmt}.json"
        if path.is_file():
            records[fmt] = json.loads(path.read_text())
    return records


# --- ``coupler export RUN --format F``: a finished run, afterwards --------------------------------------------


def export_finished(run_dir: Path, fmt: str, manager=None) -> list[Path]:
    """Export the finished run ``run_dir`` as ``fmt`` and extend its manifest: the new files' checksums are added
    and the manifest resealed; no other file of the run is touched. Refuses a run that fails ``read_manifest``
    (a changed file, a foreign one), an export that exists, and a model that does not export ``fmt``."""
    from coupler.finished_run import FinishedRun, working_directory
    from coupler.run_directory import MANIFEST, RunLock, sha256, write_manifest

    if fmt not in FILES:
        raise CouplerError(f"--format {fmt}: choose one of {', '.join(FILES)}")
    remove_interrupted_export(Path(run_dir))
    run = FinishedRun(run_dir, manager)
    name = run.config["model"]["name"]
    formats = tuple(getattr(run.model, "export_formats", None) or ())
    if fmt not in formats:
        fitting = [f for f in FILES if f in formats]
        raise CouplerError(f"model {name!r} of run {str(run_dir)!r} cannot be exported as {fmt}"
                           f"{f'; it exports {chr(44).join(fitting)}: --format {fitting[0]}' if fitting else ' (it has no export format)'}")
    # one writer at a time; readers wait until it is released. A killed export's stale lock is taken over
    lock = RunLock.claim(Path(run_dir), finished=True)
    try:
        manifest = json.loads((Path(run_dir) / MANIFEST).read_text())
        if manifest != run.manifest:
            raise CouplerError(f"run {str(run_dir)!r} changed while it was read; try again")
        with working_directory(run.manifest.get("working_directory")):
            rows = parity_rows(run.config, run.manager.registry, run.task, run.classes, run.manifest["seed"])
        written = export_model(fmt, run.model, run.preprocessor, run.task, run.classes, rows,
                               Path(run_dir) / EXPORTS, name=name)
        try:
            files = dict(manifest["files"])
            for path in written:
                files[path.relative_to(run_dir).as_posix()] = sha256(path)
            exports = {**(manifest.get("exports") or {}), **{fmt: json.loads(written[-1].read_text())}}
            write_manifest(run_dir, {**manifest, "files": files, "exports": exports})
        except BaseException:
            for path in written:
                path.unlink(missing_ok=True)
            raise
    finally:
        lock.release()
    return written


def remove_interrupted_export(run_dir: Path) -> list[Path]:
    """Remove what a ``coupler export`` killed before it resealed the manifest left in ``exports/``: the export
    files (``FILES``, ``FMT.json``) and their temporaries (``.NAME.*.tmp``) that the sealed manifest does not list.
    Any of them makes every load refuse the run; the run as sealed is whole without them. Done under the run's
    lock (a live export's files are never touched); each removal is logged. Returns the removed paths."""
    from coupler.run_directory import MANIFEST, RunLock, seal

    def leftovers() -> list[Path]:
        try:
            manifest = json.loads((run_dir / MANIFEST).read_text())
            listed = set(manifest["files"]) if seal(manifest) == manifest.get("seal") else None
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            listed = None  # no sealed manifest: read_manifest says what is wrong, nothing is removed
        if listed is None or not (run_dir / EXPORTS).is_dir():
            return []
        own = set(FILES.values()) | {f"{fmt}.json" for fmt in FILES}
        return [path for path in sorted((run_dir / EXPORTS).iterdir())
                if path.is_file() and not path.is_symlink() and f"{EXPORTS}/{path.name}" not in listed
                and (path.name in own or any(path.name.startswith(f".{name}.") and path.name.endswith(".tmp")
                                             for name in own))]

    if not leftovers():
        return []
    lock = RunLock.claim(run_dir, finished=True)
    try:
        removed = leftovers()  # again, under the lock
        for path in removed:
            path.unlink(missing_ok=True)
            log.warning("removed %s, left by an interrupted coupler export (the manifest does not list it)", path)
    finally:
        lock.release()
    return removed
