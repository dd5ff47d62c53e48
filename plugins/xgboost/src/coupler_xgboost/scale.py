"""XGBoost beyond one process's memory: on a Dask cluster (``model.cluster``) and from external memory
(``model.external_memory``). ``coupler_xgboost.model.XGBoostModel.fit`` calls ``train_on_dask`` or
``train_from_external_memory``; both return a plain ``xgboost.Booster``, saved, reloaded and used for predictions
exactly as a single-process run's. Dask and distributed are imported only here, when a run asks for a cluster.

**Dask** (``xgboost.dask``). The cluster is a ``distributed.LocalCluster`` this module starts (``cluster=local``:
``workers`` processes of ``threads_per_worker`` threads, no dashboard, closed when training ends, also on failure)
or a running scheduler (``cluster=tcp://HOST:PORT``, ``distributed.Client(address)``; its workers must be able to
import ``coupler`` and ``coupler_xgboost``). The rows reach the workers as dask arrays (a DataFrame: a dask
DataFrame, categorical columns kept) of one chunk per worker:

- rows in memory (the ``matrix`` or ``frame`` input formats) are cut into chunks and scattered to the workers;
- a ``coupler.streaming.RowStream`` (``stream``) is never read on the client: each ``Partition`` is pickled to a
  worker and read there (``dask.delayed`` → ``dask.array.from_delayed`` with the partition's known row count and
  the stream's ``n_features``), with its rows' labels and weights.

``xgboost.dask.train`` then trains with the run's parameters, rounds and validation set, on a
``DaskQuantileDMatrix`` (hist/approx) or ``DaskDMatrix``.

Per-round events on Dask: XGBoost pickles training callbacks to the workers and runs them there, where the run's
hooks cannot be called. So the callback on the workers (``_RoundRelay``) only relays: after each round the worker
of rank 0 puts the round's validation scores on a ``distributed.Queue`` and waits for the client's answer on a
second one; the client, in the main thread, calls ``run.epoch_end`` (history, progress, early stopping, every
hook) and answers whether to stop; rank 0 broadcasts the answer to the other workers (``xgboost.collective``), so
all stop at the same round. The cost is one round trip through the scheduler per round (a few milliseconds).

**External memory** (one process): an ``xgboost.DataIter`` over the training stream's partitions, one partition
in memory at a time, builds an ``xgboost.ExtMemQuantileDMatrix`` whose pages are cached in a temporary directory
(removed after training); the validation stream likewise, with the training matrix as its reference (its bins).
What stays in memory while boosting is XGBoost's own per-row state (``train_from_external_memory``): Coupler hands
back pyarrow's pool pages from the reads before the first round, and keeps a copy of the trained Booster without
its updater's buffers.
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
import threading

import numpy as np
import xgboost as xgb

from coupler.errors import CouplerError

#: how long the worker of rank 0 waits for the client's answer after a round before it gives up
ANSWER_TIMEOUT_S = 600
#: how long connecting to a running scheduler (model.cluster=tcp://...) may take
CONNECT_TIMEOUT = "10s"


# --- Dask -----------------------------------------------------------------------------------------------------

@contextlib.contextmanager
def dask_client(cluster: str, workers: int, threads_per_worker: int):
    """A ``distributed.Client`` of a LocalCluster started here (closed on leaving) or of a running scheduler."""
    import distributed

    with _quiet("distributed"), _client(distributed, cluster, workers, threads_per_worker) as client:
        yield client


@contextlib.contextmanager
def _quiet(name: str):
    """Distributed's INFO lines (each worker started, each connection closed) kept off the run's log."""
    logger = logging.getLogger(name)
    level = logger.level
    logger.setLevel(max(level, logging.WARNING))
    try:
        yield
    finally:
        logger.setLevel(level)


@contextlib.contextmanager
def _client(distributed, cluster: str, workers: int, threads_per_worker: int):
    if cluster == "local":
        with distributed.LocalCluster(n_workers=workers, threads_per_worker=threads_per_worker, processes=True,
                                      dashboard_address=None) as local, distributed.Client(local) as client:
            yield client
        return
    try:
        client = distributed.Client(cluster, timeout=CONNECT_TIMEOUT)
    except (OSError, TimeoutError) as exc:
        raise CouplerError(f"model.cluster={cluster}: no Dask scheduler answered at that address ({exc}); start "
                           "one (`dask scheduler`, with workers: `dask worker ADDRESS`) or fix the address, or use "
                           "model.cluster=local") from None
    with client:
        if not client.scheduler_info().get("workers"):
            client.wait_for_workers(1, timeout=60)
        yield client


def train_on_dask(client, params: dict, train, val, num_boost_round: int, run, loss: str) -> xgb.Booster:
    """Train on the cluster of ``client``; ``train``/``val``: ``Split``s (``val`` None without a validation set).
    Fires ``run.epoch_end`` per round on this process when there is a validation set; returns the Booster."""
    from xgboost import dask as dxgb

    n_workers = max(len(client.scheduler_info()["workers"]), 1)
    quantile = params.get("tree_method", "hist") in ("hist", "auto")
    kind = dxgb.DaskQuantileDMatrix if quantile else dxgb.DaskDMatrix

    def matrix(split, ref=None):
        X, y, weight = _to_dask(client, split, n_workers)
        extra = {"ref": ref, "max_bin": params.get("max_bin")} if quantile else {}
        return kind(client, X, y, weight=weight, enable_categorical=True, **extra)

    dtrain = matrix(train)
    evals = [(matrix(val, ref=dtrain if quantile else None), "val")] if val is not None else []
    if not evals:
        return dxgb.train(client, params, dtrain, num_boost_round=num_boost_round, verbose_eval=False)["booster"]
    import distributed

    scores, answers = distributed.Queue(client=client), distributed.Queue(client=client)
    relay = _RoundRelay(scores.name, answers.name)
    outcome: dict = {}

    def train_in_background():
        try:
            outcome["result"] = dxgb.train(client, params, dtrain, num_boost_round=num_boost_round, evals=evals,
                                           callbacks=[relay], verbose_eval=False)
        except BaseException as exc:  # re-raised in the calling thread
            outcome["error"] = exc
        finally:
            scores.put(None)  # no more rounds: the loop below ends

    worker = threading.Thread(target=train_in_background, name="coupler-xgboost-dask", daemon=True)
    worker.start()
    try:
        while (message := scores.get()) is not None:
            epoch, values = message
            stop = run.epoch_end(epoch, {"val_loss": values[loss], **{f"val_{k}": v for k, v in values.items()}})
            answers.put(bool(stop))
    except BaseException:
        answers.put(True)  # let the workers stop at this round instead of waiting for an answer
        worker.join(timeout=30)
        raise
    worker.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"]["booster"]


def _to_dask(client, split, n_workers: int):
    """``(X, y, weight)`` of a ``Split`` as dask collections with one chunk per piece of rows on the workers."""
    import dask
    import dask.array as da

    from coupler.streaming import RowStream

    if isinstance(split.X, RowStream):  # each partition read on a worker, never here
        parts = [p for p in split.X.partitions() if p.rows > 0]
        if not parts:
            raise CouplerError("a split of the data set has no rows: XGBoost cannot train on it")
        batches = [dask.delayed(_read, pure=False)(part) for part in parts]
        rows = [part.rows for part in parts]
        n_features, meta = split.X.n_features, None
        with_weight = _weighted(client, parts[0])
    else:
        cuts = np.array_split(np.arange(len(split.y)), min(n_workers, max(len(split.y), 1)))
        pieces = [_Piece(_rows(split.X, c), split.y[c], None if split.weight is None else split.weight[c])
                  for c in cuts if len(c)]
        batches = client.scatter(pieces)
        rows, n_features = [len(c) for c in cuts if len(c)], split.X.shape[1]
        meta = split.X.iloc[:0] if hasattr(split.X, "iloc") else None
        with_weight = split.weight is not None
    get = dask.delayed(getattr, pure=True)
    if meta is not None:
        import dask.dataframe as dd

        X = dd.from_delayed([get(b, "X") for b in batches], meta=meta, verify_meta=False)
    else:
        X = da.concatenate([da.from_delayed(get(b, "X"), shape=(n, n_features), dtype=np.float32)
                            for b, n in zip(batches, rows)])
    y = da.concatenate([da.from_delayed(get(b, "y"), shape=(n,), dtype=np.float64) for b, n in zip(batches, rows)])
    weight = (da.concatenate([da.from_delayed(get(b, "weight"), shape=(n,), dtype=np.float64)
                              for b, n in zip(batches, rows)]) if with_weight else None)
    # computed together, so that each partition is read once and its pieces stay on the worker that read it (a
    # DataFrame's pieces are already there: it is persisted apart, dask refusing to mix frames and arrays)
    together = [y] + ([weight] if weight is not None else [])
    if meta is not None:
        X, together = client.persist(X), client.persist(together)
    else:
        X, *together = client.persist([X, *together])
    return X, together[0], (together[1] if weight is not None else None)


class _Piece:
    """The rows of one chunk on a worker: ``X`` (float32 matrix or the DataFrame's rows), ``y``, ``weight``."""

    def __init__(self, X, y, weight):
        self.X = X if hasattr(X, "iloc") else np.asarray(X, dtype=np.float32)
        self.y = np.asarray(y, dtype=np.float64)
        self.weight = None if weight is None else np.asarray(weight, dtype=np.float64)


def _read(part) -> _Piece:
    """Read one stream partition (on a worker)."""
    batch = part.read()
    return _Piece(batch.X, batch.y, batch.weight)


def _weighted(client, part) -> bool:
    """Whether a stream's batches carry weights: a partition that knows says so (``Partition.weighted``); another
    is read once on a worker to tell (all partitions of a stream alike)."""
    if getattr(part, "weighted", None) is not None:
        return part.weighted
    return client.submit(_has_weight, part, pure=False).result()


def _has_weight(part) -> bool:
    return part.read().weight is not None


def _rows(X, index):
    return X.iloc[index] if hasattr(X, "iloc") else X[index]


class _RoundRelay(xgb.callback.TrainingCallback):
    """Runs on every worker: rank 0 sends each round's validation scores to the client and waits for its answer
    (stop or go on), then broadcasts it so that all workers stop at the same round."""

    def __init__(self, scores: str, answers: str):
        super().__init__()
        self.scores, self.answers = scores, answers
        self._queues = None

    def __getstate__(self):
        return {"scores": self.scores, "answers": self.answers, "_queues": None}

    def after_iteration(self, model, epoch: int, evals_log) -> bool:
        from xgboost import collective

        stop = False
        if collective.get_rank() == 0:
            import distributed

            if self._queues is None:
                self._queues = distributed.Queue(self.scores), distributed.Queue(self.answers)
            values = {name: float(history[-1]) for name, history in evals_log.get("val", {}).items()}
            self._queues[0].put((epoch, values))
            try:
                stop = self._queues[1].get(timeout=ANSWER_TIMEOUT_S)
            except TimeoutError:
                raise RuntimeError(f"the Coupler client gave no answer after round {epoch} within "
                                   f"{ANSWER_TIMEOUT_S} s; training stops") from None
        return bool(collective.broadcast(stop, 0))


# --- external memory ------------------------------------------------------------------------------------------

class _PartitionIter(xgb.DataIter):
    """XGBoost's external-memory data iterator over a stream's partitions: one partition in memory at a time."""

    def __init__(self, stream, cache_prefix: str):
        self._parts = [p for p in stream.partitions() if p.rows > 0]
        self._next = 0
        super().__init__(cache_prefix=cache_prefix, release_data=True)

    def next(self, input_data) -> bool:
        if self._next == len(self._parts):
            return False
        batch = self._parts[self._next].read()
        input_data(data=np.asarray(batch.X, dtype=np.float32), label=batch.y, weight=batch.weight)
        self._next += 1
        return True

    def reset(self) -> None:
        self._next = 0


def train_from_external_memory(params: dict, train, val, num_boost_round: int, callbacks: list) -> xgb.Booster:
    """``xgboost.train`` on ``ExtMemQuantileDMatrix``es built from the splits' streams; the pages live in a
    temporary directory for the training's duration. Returns a copy of the trained Booster (see below).

    Memory while boosting, beside the pages (on disk, read through mmap): XGBoost's own per-row state (labels,
    gradient pairs, prediction caches, the hist updater's row partitions), by structure and measured in
    ``benchmarks/README.md`` (``scale_memory.py``)."""
    with tempfile.TemporaryDirectory(prefix="coupler-xgboost-cache-") as cache:
        dtrain = _ext_matrix(train.X, f"{cache}/train", params)
        evals = [(_ext_matrix(val.X, f"{cache}/val", params, ref=dtrain), "val")] if val is not None else []
        _release_read_buffers()
        booster = xgb.train(params, dtrain, num_boost_round=num_boost_round, evals=evals,
                            callbacks=callbacks if evals else [], verbose_eval=False)
        del dtrain, evals  # the cache files are released before their directory goes
    # the trained Booster keeps its tree updater's per-row buffers (the row partitions: about 24 bytes per
    # training row) as long as it lives, through the evaluation and the predictions that follow; its copy is the
    # same model (trees and configuration, serialized and read back) without them
    return booster.copy()


def _release_read_buffers() -> None:
    """Hand back to the system the pages pyarrow's memory pool kept from reading the row groups (a
    ``coupler.parquet`` stream is read through it): the pool (mimalloc) keeps freed pages for its next
    allocation, 50 to 80 MiB after the matrices' passes over row groups of 128 K rows, and boosting reads no more rows.
    Nothing to do when pyarrow was never imported (rows from memory)."""
    import sys

    pyarrow = sys.modules.get("pyarrow")
    if pyarrow is not None:
        pyarrow.default_memory_pool().release_unused()


def _ext_matrix(stream, prefix: str, params: dict, ref=None):
    it = _PartitionIter(stream, prefix)
    if not it._parts:
        raise CouplerError("a split of the data set has no rows: XGBoost cannot train on it")
    return xgb.ExtMemQuantileDMatrix(it, max_bin=params.get("max_bin"), ref=ref)
