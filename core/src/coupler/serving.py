"""``coupler serve RUN``: a finished run behind a REST API (FastAPI + uvicorn, the ``serve`` extra).

The run is loaded once, at start-up, through ``FinishedRun`` (its checksums verified: a tampered run is refused
before the server listens; nothing is unpickled), and every request predicts in memory.

* ``POST /predict``: JSON records (``[{"column": value, ...}, ...]``, ``Content-Type: application/json``) or a CSV
  table with a header (``Content-Type: text/csv``). Answers ``{"predictions": [...], "probabilities": [{class:
  p, ...}, ...] | null, "far_outside": {feature: rows}}``. Each record is validated against the run's feature
  schema (``feature_model``: numbers where the run trained on numbers, categories as strings; every training
  column present, ``null`` for a missing value): a missing or ill-typed field is a 422 naming the record and the
  field.
* ``GET /health``: ``{"status": "ok"}`` once the run is loaded.
* ``GET /metadata``: the feature schema, classes, task, metrics, versions, and the count of values far outside
  training seen since start-up, per feature (``coupler.drift``'s rule).

``--runtime onnx`` answers from the run's ONNX export (``RUN/exports/model.onnx``, written by ``coupler export RUN
--format onnx``) with onnxruntime, after the same validation. SIGTERM and Ctrl-C stop the server cleanly: uvicorn
finishes the requests in flight, and ``coupler serve`` exits 0.
"""


import logging
import signal
import threading
from pathlib import Path

from coupler.errors import CouplerError

log = logging.getLogger("coupler")

RUNTIMES = ("native", "onnx")
INSTALL_HINT = "pip install 'coupler[serve]' (FastAPI and uvicorn)"


def _require_server_libraries() -> None:
    try:
        import fastapi  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as exc:
        raise CouplerError(f"coupler serve needs {exc.name}, which is not installed: {INSTALL_HINT}") from None


def feature_model(manifest: dict):
    """The type of one input record, from the run's recorded columns and dtypes, for pydantic to validate: a
    numeric column is a finite number (or null: imputed as training imputed it), a categorical one a string (an integer
    or a number where the training column held those); every field required, others ignored. A ``TypedDict``:
    validated records are plain dicts, with no model object built per row."""
    from typing import Annotated

    import numpy as np
    from pydantic import Field
    from typing_extensions import TypedDict  # pydantic requires typing_extensions' TypedDict before Python 3.12

    number = Annotated[float, Field(allow_inf_nan=False)]  # infinity is no missing value: null is

    features = manifest["features"]
    fields = {}
    for column in features["columns"]:
        name = features["dtypes"].get(column)
        dtype = np.dtype(name) if _numpy_dtype(name) else np.dtype(object)
        if column not in features.get("categorical", []):
            kind = number
        elif np.issubdtype(dtype, np.bool_):
            kind = bool
        elif np.issubdtype(dtype, np.integer):
            kind = int
        elif np.issubdtype(dtype, np.floating):
            kind = float
        else:
            kind = str
        fields[column] = kind | None
    return TypedDict("Record", fields)


def _numpy_dtype(name: str | None) -> bool:
    import numpy as np

    try:
        np.dtype(name)
        return name is not None
    except TypeError:  # pandas' own dtypes (category, string, ...): strings here
        return False


class OnnxRuntime:
    """The run's ONNX export (``coupler export RUN --format onnx``: ``exports/model.onnx``) answering in place of its
    model: fed as ``coupler.onnx_export.onnx_inputs`` builds the graph's inputs from raw rows; outputs ``label``
    (the run's class labels) and ``probabilities``, or ``prediction`` for a regressor."""

    def __init__(self, run):
        path = run.directory / "exports" / "model.onnx"
        if not path.is_file():
            raise CouplerError(f"run {str(run.directory)!r} has no ONNX export; run coupler export "
                               f"{run.directory} --format onnx first, or serve it with --runtime native.")
        try:
            import onnxruntime
        except ImportError:
            raise CouplerError("--runtime onnx needs onnxruntime, which is not installed: pip install "
                               "'coupler[onnx]'") from None
        self.path = path
        self.session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        self.outputs = [o.name for o in self.session.get_outputs()]
        self.run = run

    def predictions(self, frame, validated: bool = True):
        import numpy as np
        import pandas as pd

        from coupler.onnx_export import onnx_inputs

        outputs = dict(zip(self.outputs, self.session.run(None, onnx_inputs(self.run.preprocessor.state(), frame))))
        labels = np.asarray(outputs["label" if "label" in outputs else "prediction"]).reshape(-1)
        proba = outputs.get("probabilities")
        if proba is not None and self.run.classes:
            proba = pd.DataFrame(np.asarray(proba), columns=list(self.run.classes))
        return labels, proba


class Server:
    """What the app holds: the loaded run, the record model, the runtime, and the counts /metadata reports."""

    def __init__(self, run_dir: Path | str, runtime: str = "native", manager=None):
        from coupler.finished_run import FinishedRun

        if runtime not in RUNTIMES:
            from coupler.errors import ConfigError

            raise ConfigError("--runtime", runtime, " or ".join(RUNTIMES))
        self.run = FinishedRun(run_dir, manager)
        if self.run.input_format not in ("matrix", "frame"):
            raise CouplerError(f"run {str(run_dir)!r} reads {self.run.input_format}; coupler serve serves runs on "
                               f"tabular features (columns of numbers and categories).")
        self.runtime_name = runtime
        self.runtime = OnnxRuntime(self.run) if runtime == "onnx" else self.run
        self.record = feature_model(self.run.manifest)
        from coupler.drift import FarOutside

        self.far = FarOutside(self.run.distribution)
        self.far_outside: dict[str, int] = {}
        self.requests = {"predict": 0, "rows": 0, "rejected": 0}
        import pandas as pd

        self._columns = pd.Index(self.run.preprocessor.columns)
        self._numbers_only = not set(self.run.manifest["features"].get("categorical") or ()) & set(self._columns)
        self._lock = threading.Lock()

    def count(self, rows: int, far: dict[str, int]) -> None:
        with self._lock:
            self.requests["predict"] += 1
            self.requests["rows"] += rows
            for feature, n in far.items():
                self.far_outside[feature] = self.far_outside.get(feature, 0) + n

    def reject(self) -> None:
        with self._lock:
            self.requests["rejected"] += 1

    def metadata(self) -> dict:
        import json
        import platform

        from coupler import __version__

        run, manifest = self.run, self.run.manifest
        features = manifest["features"]
        distribution = run.distribution or {"features": {}}
        schema = {}
        for column in features["columns"]:
            entry = {"dtype": features["dtypes"].get(column), "categorical": column in features.get("categorical", [])}
            spec = distribution["features"].get(column)
            if spec and spec["kind"] == "numeric":
                entry.update(training_min=spec["min"], training_max=spec["max"])
            elif spec:
                entry["categories"] = sorted(spec["frequencies"])
            schema[column] = entry
        with self._lock:
            far, requests = dict(self.far_outside), dict(self.requests)
        return {
            # names, not paths: where the run lies on the server is none of a client's business
            "run": run.directory.name, "task": run.task, "classes": run.classes, "target": features.get("target"),
            "features": schema, "model": manifest["components"]["model"],
            "metrics": json.loads((run.directory / "metrics.json").read_text()),
            "runtime": self.runtime_name,
            "onnx_file": _inside(self.runtime.path, run.directory) if self.runtime_name == "onnx" else None,
            "versions": {"coupler_server": __version__, "python": platform.python_version(),
                         "trained_with": {"coupler": manifest.get("coupler_version"), "python": manifest.get("python"),
                                          **(manifest.get("libraries") or {})}},
            "far_outside": far, "far_outside_rule": None if run.distribution is None else
            f"a category unseen in training, or a number beyond the training min/max by more than "
            f"{distribution.get('far_margin')} times the training range",
            "requests": requests, "record_schema": getattr(self, "record_schema", None),
        }

    def predict(self, records: list[dict]) -> dict:
        """The answer to validated ``records``: their predictions, probabilities and far-outside counts."""
        import numpy as np
        import pandas as pd

        from coupler import drift

        columns = self.run.preprocessor.columns
        if self._numbers_only:  # validated numbers or None: one float matrix, the column index built once
            frame = pd.DataFrame(np.array([[record[column] for column in columns] for record in records], dtype=float),
                                 columns=self._columns)
        else:
            frame = pd.DataFrame({column: [record[column] for record in records] for column in columns},
                                 columns=self._columns)
        labels, proba = self.runtime.predictions(frame, validated=True)
        far = self.far.records(records)
        if far:
            drift.log_far_outside(far, self.run.distribution)
        self.count(len(frame), far)
        classes = [str(c) for c in self.run.classes]  # plain strings: a pandas Index is slow to iterate per row
        return {"predictions": labels.tolist() if hasattr(labels, "tolist") else list(labels),
                "probabilities": None if proba is None else [dict(zip(classes, row)) for row in proba.to_numpy().tolist()],
                "far_outside": far}


def _inside(path: Path, directory: Path) -> str:
    """``path`` as a client may see it: relative to the run directory where it lies in it, else its name."""
    try:
        return Path(path).resolve().relative_to(Path(directory).resolve()).as_posix()
    except ValueError:
        return Path(path).name


def create_app(run_dir: Path | str, runtime: str = "native", manager=None):
    """The FastAPI application serving ``run_dir`` (loaded and verified here, once)."""
    _require_server_libraries()
    from fastapi import FastAPI, HTTPException, Request
    from pydantic import TypeAdapter, ValidationError

    server = Server(run_dir, runtime, manager)
    records = TypeAdapter(list[server.record])
    server.record_schema = records.json_schema()["$defs"]["Record"]
    app = FastAPI(title=f"coupler serve {Path(run_dir).name}",
                  description="POST /predict with JSON records or a CSV table; see GET /metadata for the schema.")
    app.state.server = server

    def refuse(detail) -> HTTPException:
        server.reject()
        return HTTPException(status_code=422, detail=detail)

    def validated(payload) -> list[dict]:
        """The records of ``payload`` (JSON bytes, or the records of a CSV body), validated."""
        try:
            rows = records.validate_json(payload) if isinstance(payload, bytes) else records.validate_python(payload)
        except ValidationError as exc:
            raise refuse([{"loc": ["body", *error["loc"]], "msg": error["msg"], "type": error["type"]}
                          for error in exc.errors()[:20]]) from None
        if not rows:
            raise refuse("the body is an empty list; send at least one record: [{\"column\": value, ...}, ...]")
        return rows

    @app.get("/health")
    def health() -> dict:
        return {"status": "ok"}

    @app.get("/metadata")
    def metadata() -> dict:
        return server.metadata()

    @app.post("/predict")
    async def predict(request: Request) -> dict:
        from coupler.errors import DataError

        kind = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
        body = await _body(request)
        if kind in ("text/csv", "application/csv"):
            payload = _csv_records(body)
            if isinstance(payload, str):
                raise refuse(payload)
        elif kind == "application/json":
            payload = body  # parsed and validated in one pass by pydantic
        else:
            raise HTTPException(status_code=415, detail=f"Content-Type {kind!r}: send application/json records "
                                                        f"or text/csv")
        try:  # validating a large body takes time too: off the event loop, which keeps answering /health
            return await _in_thread(lambda: server.predict(validated(payload)))
        except DataError as exc:
            raise refuse(str(exc)) from None

    return app


#: the largest request body ``/predict`` reads (bytes): a body past it is answered 413, unread
MAX_BODY_BYTES = 64 * 2**20


async def _body(request) -> bytes:
    """The request's body, refused past ``MAX_BODY_BYTES``: by its declared length, unread, or while it is read in
    chunks (a chunked body declares none)."""
    from fastapi import HTTPException

    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise HTTPException(status_code=413, detail=f"the body has {int(declared)} bytes; send at most "
                                                    f"{MAX_BODY_BYTES} a request (split the rows)")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise HTTPException(status_code=413, detail=f"the body has more than {MAX_BODY_BYTES} bytes; send at most "
                                                        f"that a request (split the rows)")
        chunks.append(chunk)
    return b"".join(chunks)


async def _in_thread(function, *args):
    """Run the prediction in the thread pool: the event loop keeps answering /health meanwhile."""
    from starlette.concurrency import run_in_threadpool

    return await run_in_threadpool(function, *args)


def _csv_records(body: bytes):
    """The records of a CSV body (header first), empty cells as null; or a message saying why it cannot be read."""
    import io

    import pandas as pd

    try:
        frame = pd.read_csv(io.BytesIO(body), dtype=str, keep_default_na=False)
    except Exception as exc:  # pandas' parser errors have no common public base
        return f"cannot read the CSV body: {type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc) else ''}"
    # pandas' text columns hold NaN for a value replaced by None: build the records' nulls here
    return [{key: (None if value == "" else value) for key, value in row.items()} for row in frame.to_dict("records")]


def _check_address(host: str, port: int) -> None:
    """Refuse an address the server cannot listen on (a port in use, a host not of this machine) in one line,
    before uvicorn reports it in its own words."""
    import socket

    try:
        with socket.create_server((host, port)):
            pass
    except OSError as exc:
        raise CouplerError(f"cannot listen on {host}:{port}: {exc.strerror or exc}; choose another --port (or "
                           f"--host)") from None


def serve(run_dir: Path | str, host: str = "127.0.0.1", port: int = 8000, runtime: str = "native") -> int:
    """Load the run, then serve it until SIGTERM or Ctrl-C (uvicorn's graceful shutdown); returns the exit status."""
    _require_server_libraries()
    import uvicorn

    app = create_app(run_dir, runtime)
    _check_address(host, port)
    log.info("serving run %s (%s runtime) on http://%s:%d: POST /predict, GET /health, GET /metadata",
             run_dir, runtime, host, port)
    stopped_by = []
    previous = {sig: signal.signal(sig, lambda number, frame: stopped_by.append(number))
                for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        # uvicorn stops gracefully on SIGTERM/SIGINT, then raises the signal again once its own handlers are
        # gone: the handlers above take it, so that a requested stop ends with status 0 (not killed, not an
        # "interrupted" error)
        uvicorn.run(app, host=host, port=port, log_level="warning")
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    requests = app.state.server.requests
    log.info("stopped%s after %d predict requests (%d rows, %d rejected)",
             f" by {signal.Signals(stopped_by[0]).name}" if stopped_by else "", requests["predict"],
             requests["rows"], requests["rejected"])
    return 0
