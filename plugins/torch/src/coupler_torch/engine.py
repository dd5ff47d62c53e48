"""``TorchModel``: the torch engine behind Coupler's ``Model`` contract, with Lightning underneath.

A neural plugin subclasses ``TorchModel`` and implements ``build_network(n_inputs, n_outputs)`` (and
``architecture()``, the keyword arguments that rebuild it). The engine does the rest:

- **Data feeding.** In-memory splits become tensors once; an epoch takes one seeded permutation and then
  slices contiguous batches (``TensorBatches``): no per-sample fetch, no collation. A split whose ``X`` is a
  ``coupler.streaming.RowStream`` (input format ``stream``: data larger than memory) is read in batches each epoch
  (``StreamBatches``, an ``IterableDataset`` in a ``DataLoader`` with ``batch_size=None``), shuffled within
  ``trainer.shuffle_buffer`` rows; its validation split is scored a partition at a time (``stream_metrics``).
- **Data parallelism** (``trainer.strategy=ddp trainer.devices=N``): the global batch stays ``model.batch_size``
  and an epoch has as many optimizer steps as in one process. Every process takes the same seeded order and,
  of each global batch, its own contiguous share (rows ``rank*n//N`` to ``(rank+1)*n//N``); DDP averages the
  gradients. A last batch with fewer rows than processes is taken whole by every process (the average of N equal
  gradients is that batch's gradient), so every process runs the same number of steps, as DDP requires. A model
  whose ``training_batches`` is a ``DataLoader`` (an image folder) gets the same treatment through a batch sampler;
  any other iterable is refused under a distributed strategy, since the engine cannot share it. From a stream, each
  process reads its own share of the rows in batches of ``batch_size // N`` rows (``StreamBatches``). Rank 0 scores the
  validation split, fires ``run.epoch_end`` (so each plugin's ``on_epoch_end`` runs once per epoch, not once per
  process) and decides early stopping and checkpoint writes; every process follows its decision (each
  ``Trainer.save_checkpoint`` is collective; Lightning writes on rank 0 only). Batch norm normalizes each
  process's share (no ``SyncBatchNorm``) and dropout / augmentation draw from a per-process stream, so the
  numbers are close to one process's, not equal.
- **Optimizer and scheduler** come from the ``optimizer`` / ``scheduler`` components the run selected, or the
  model's ``default_optimizer`` / ``default_scheduler`` (recorded in the run's ``config.yaml``), built from the
  registry when ``fit`` starts (``coupler_torch.optimizers.for_run``).
- **Epoch events.** After each training epoch the validation split is scored in one pass, and
  ``run.epoch_end`` fires with ``train_loss``, ``val_loss`` and ``val_accuracy`` (classification) or
  ``val_rmse`` (regression); an early-stopping observer stops training, and the best epoch's weights are kept.
- **Checkpoints** are written atomically (temporary file, then rename). While the run is in progress
  (``trainer.resumable``), ``checkpoints/last.ckpt`` is written after the first epoch and then after each epoch
  that ends ``trainer.resume_interval`` seconds (default 30; 0: every epoch) after the previous write, so its
  cost stays small however short the epochs are; ``best.ckpt`` / a kept ``last.ckpt`` (written every epoch)
  with ``callbacks=[checkpoint]``. ``coupler train resume=RUN_DIR`` continues from ``RUN_DIR/checkpoints/last.ckpt``
  (``run.config["resume"]``; the plugin's ``resume_point`` hook tells the core it is there); each epoch's
  random streams (order, dropout, augmentation) are seeded from (seed, epoch), so a resumed run ends with the
  same numbers as an uninterrupted one.
- **Artifacts:** ``weights.safetensors`` and ``network.json`` (the architecture and the target scaling),
  never a pickled module.
- **Nothing from a run directory runs.** A run directory may come from someone else. ``network.json`` is plain data,
  checked field by field, and names no code; the network is first built on PyTorch's ``meta`` device (no memory)
  and its tensor shapes compared with the header of ``weights.safetensors``, so a tampered size cannot allocate
  absurdly; ``last.ckpt`` loads with ``torch.load(weights_only=True)`` whatever the environment says
  (``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD``), so a pickled object in it is refused, never called.
- **Ctrl-C.** Lightning catches ``KeyboardInterrupt`` in ``trainer.fit``, tears down and calls ``sys.exit(1)``; the
  engine turns that back into ``KeyboardInterrupt`` (and restores the SIGINT handler Lightning leaves ignored), so
  the caller tells an interruption from a failure.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import pickle
import signal
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from coupler.components import Split
from coupler.errors import ConfigError, CouplerError
from coupler.schema import check_node, defaults
from coupler.streaming import RowStream
from coupler_torch.contract import TorchContract
from coupler_torch.optimizers import AdamSchema, CosineSchema
from coupler_torch.plugin import TrainerSchema

log = logging.getLogger("coupler")

WEIGHTS = "weights.safetensors"
NETWORK = "network.json"
CHECKPOINTS = "checkpoints"
#: the optimizer and scheduler a run gets when it names none (recorded in the run's config.yaml);
#: scheduler=none keeps the rate constant. Both at their schemas' defaults (adam: lr 0.001; cosine: min_lr 0)
DEFAULT_OPTIMIZER = {"name": "adam", **defaults(AdamSchema)}
DEFAULT_SCHEDULER = {"name": "cosine", **defaults(CosineSchema)}

for _name in ("lightning.pytorch", "lightning.fabric"):  # "GPU available: False ..." is not news on every run
    logging.getLogger(_name).setLevel(logging.WARNING)
# Lightning 2.6 calls a torch.utils._pytree API that torch 2.13 deprecates; nothing a user can act on
warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)", category=Warning)


class TensorBatches:
    """Batches of in-memory tensors by slicing: per epoch one seeded permutation, then contiguous slices.

    ``epoch()`` gives the current epoch, so the order of epoch N is the same in a resumed run. ``share()`` gives
    ``(rank, world_size)``: under a distributed strategy each process yields its share of every batch
    (``_share_of``); the engine sets it once the trainer exists, and it is read when an epoch starts.
    """

    def __init__(self, X: torch.Tensor, y: torch.Tensor, batch_size: int, *, shuffle: bool, seed: int = 0,
                 epoch=lambda: 0, share=lambda: (0, 1), weight: torch.Tensor | None = None):
        self.X, self.y, self.batch_size, self.shuffle, self.seed, self.epoch = X, y, batch_size, shuffle, seed, epoch
        self.share = share
        self.weight = weight  # one per row (Split.weight): batches are then (x, y, weight)

    def __len__(self) -> int:
        return math.ceil(len(self.y) / self.batch_size)

    def __iter__(self):
        tensors = (self.X, self.y) if self.weight is None else (self.X, self.y, self.weight)
        rank, world = self.share()
        if self.shuffle:
            generator = torch.Generator().manual_seed(_epoch_seed(self.seed, self.epoch()))
            order = torch.randperm(len(self.y), generator=generator)
            tensors = tuple(t[order] for t in tensors)
        for start in range(0, len(self.y), self.batch_size):
            low, high = _share_of(min(self.batch_size, len(self.y) - start), rank, world)
            yield tuple(t[start + low:start + high] for t in tensors)


class StreamBatches(torch.utils.data.IterableDataset):
    """Training batches read from a ``coupler.streaming.RowStream`` (``data=parquet``): never the whole split.

    Each epoch asks ``stream.batches`` for batches of ``batch_size`` rows in a (seed, ``epoch()``) order: the
    partitions shuffled and the rows shuffled within a buffer of ``buffer_rows`` rows (at least one partition's);
    memory holds one partition plus the buffer, whatever the split's size. ``share()`` gives ``(rank, world)``:
    under a distributed strategy each process reads its own share of the rows (``RowStream.batches`` gives every
    process the same number of batches, so none waits for another's last) in batches of ``batch_size // world`` rows, so
    that the global batch, and the steps of an epoch, stay about those of one process. The batches are tensors
    already: the engine hands this to a ``DataLoader`` with ``batch_size=None`` (no per-row fetch, no collation).
    ``targets`` turns a batch's ``y`` into the loss's targets (``TorchModel._targets``). The engine sets ``share``
    to its trainer's rank and world size; by default they are torch.distributed's when it is initialised.
    """

    def __init__(self, stream, batch_size: int, *, targets, shuffle: bool = True, seed: int = 0, buffer_rows: int = 0,
                 epoch=lambda: 0, share=None):
        super().__init__()
        self.stream, self.batch_size, self.targets, self.shuffle = stream, batch_size, targets, shuffle
        self.seed, self.buffer_rows, self.epoch, self.share = seed, buffer_rows, epoch, share or _process_share

    def rows_per_batch(self, world: int) -> int:
        """Rows of each process's batch: the global batch ``batch_size`` split between ``world`` processes."""
        return max(self.batch_size // max(world, 1), 1)

    def __len__(self) -> int:
        """Batches in an epoch of one process, exact: in one process every row once; under a distributed strategy
        each process's equal share of the rows (``RowStream.batches``) in whole batches."""
        world = self.share()[1]
        rows = len(self.stream)
        if world <= 1:
            return math.ceil(rows / self.batch_size)
        return (rows // world) // self.rows_per_batch(world)

    def __iter__(self):
        rank, world = self.share()
        seed = _epoch_seed(self.seed, self.epoch()) if self.shuffle else None
        for batch in self.stream.batches(self.rows_per_batch(world), seed=seed, buffer_rows=self.buffer_rows,
                                         rank=rank, world=world, drop_last=False):
            x = torch.from_numpy(np.ascontiguousarray(batch.X, dtype=np.float32))
            y = self.targets(batch.y)
            if batch.weight is None:
                yield x, y
            else:
                yield x, y, torch.from_numpy(np.ascontiguousarray(batch.weight, dtype=np.float32))


def _process_share() -> tuple[int, int]:
    """``(rank, world_size)`` of this process in torch.distributed's default group; ``(0, 1)`` outside one."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _stream_moments(stream: RowStream) -> tuple[float, float]:
    """The mean and standard deviation of a stream's ``y`` (a regression target, standardized for training): one
    pass over its partitions, one at a time, merged as Chan et al. merge partial moments (no sum of squares that
    loses its digits)."""
    count, mean, m2 = 0, 0.0, 0.0
    for part in stream.partitions():
        y = np.asarray(part.read().y, dtype=np.float64)
        if not len(y):
            continue
        n, m = len(y), float(y.mean())
        delta, total = m - mean, count + n
        mean += delta * n / total
        m2 += float(((y - m) ** 2).sum()) + delta * delta * count * n / total
        count = total
    return mean, math.sqrt(m2 / count) if count else 0.0


def _share_of(rows: int, rank: int, world: int) -> tuple[int, int]:
    """The rows ``[low, high)`` of a global batch of ``rows`` that process ``rank`` of ``world`` trains on: a
    contiguous, balanced share; the whole batch when it has fewer rows than processes (no process gets an
    empty batch, and the gradient DDP averages is then exactly that batch's)."""
    if world <= 1 or rows < world:
        return 0, rows
    return rank * rows // world, (rank + 1) * rows // world


class _SharedBatches(torch.utils.data.Sampler):
    """A ``DataLoader``'s batches of indices, shared between processes like ``TensorBatches``: the loader's sampler
    gives the epoch's order, cut into global batches of ``batch_size``; each process takes its share of each."""

    def __init__(self, sampler, batch_size: int, drop_last: bool, share):
        self.sampler, self.batch_size, self.drop_last, self.share = sampler, batch_size, drop_last, share

    def __len__(self) -> int:
        whole, rest = divmod(len(self.sampler), self.batch_size)
        return whole + (1 if rest and not self.drop_last else 0)

    def __iter__(self):
        rank, world = self.share()
        order = list(self.sampler)
        for start in range(0, len(order), self.batch_size):
            batch = order[start:start + self.batch_size]
            if len(batch) < self.batch_size and self.drop_last:
                return
            low, high = _share_of(len(batch), rank, world)
            yield batch[low:high]


def _shared_batches(batches, share, world: int, model_name: str, strategy: str):
    """``batches`` (what ``training_batches`` returned) made to give each of ``world`` processes its share of every
    global batch. ``TensorBatches`` and ``StreamBatches`` (in its ``DataLoader``) read ``share`` themselves; another
    ``DataLoader`` is rebuilt around a ``_SharedBatches`` batch sampler (Lightning's own ``DistributedSampler`` would
    make the global batch ``world`` times larger and the epoch shorter); anything else cannot be shared and is
    refused."""
    from torch.utils.data import DataLoader, IterableDataset

    if isinstance(batches, TensorBatches):
        batches.share = share
        return batches
    if isinstance(batches, DataLoader) and isinstance(batches.dataset, StreamBatches):
        batches.dataset.share = share  # each process reads its own share of the rows (RowStream.batches)
        return batches
    if world <= 1:
        return batches
    fix = (f"train on one device (trainer.devices=1), or make {model_name}.training_batches return a DataLoader "
           f"over a map-style dataset with a batch_size, or the engine's TensorBatches")
    if not isinstance(batches, DataLoader):
        raise ConfigError("trainer.strategy", strategy, f"only one process for model {model_name}, whose training "
                          f"batches come from a {type(batches).__name__} that the engine cannot share between "
                          f"{world} processes: {fix}")
    if isinstance(batches.dataset, IterableDataset) or batches.batch_size is None:
        raise ConfigError("trainer.strategy", strategy, f"only one process for model {model_name}, whose DataLoader "
                          f"reads an iterable dataset or makes batches of its own, which the engine cannot share "
                          f"between {world} processes: {fix}")
    return DataLoader(
        batches.dataset, batch_sampler=_SharedBatches(batches.sampler, batches.batch_size, batches.drop_last, share),
        num_workers=batches.num_workers, collate_fn=batches.collate_fn, pin_memory=batches.pin_memory,
        timeout=batches.timeout, worker_init_fn=batches.worker_init_fn,
        multiprocessing_context=batches.multiprocessing_context, generator=batches.generator,
        prefetch_factor=batches.prefetch_factor, persistent_workers=batches.persistent_workers,
        pin_memory_device=batches.pin_memory_device)


def _epoch_seed(seed: int, epoch: int) -> int:
    return (seed * 1_000_003 + epoch * 7919 + 17) % (2**63 - 1)


class AtomicCheckpointIO(TorchCheckpointIO):
    """Checkpoints written to a temporary file in the same directory, flushed, then renamed into place."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options=None) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(handle, "wb") as file:
                torch.save(checkpoint, file)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, path)
        finally:
            if os.path.exists(temporary):
                os.unlink(temporary)

    def load_checkpoint(self, path, map_location=None, weights_only=None) -> dict[str, Any]:
        """Plain data only (``weights_only=True``, whatever Lightning or the environment asks): a checkpoint in a run
        directory may come from someone else, and a pickled object's ``__reduce__`` would run code."""
        return load_checkpoint(path, map_location=map_location or _on_the_cpu)


def _on_the_cpu(storage, location):
    """Lightning's default ``map_location``: tensors stay where torch.load put them (the CPU) until Lightning moves
    them to the module's device."""
    return storage


def load_checkpoint(path, map_location=None) -> dict[str, Any]:
    """``torch.load(path, weights_only=True)``, with a ``CouplerError`` naming the file for anything that is not a
    checkpoint of plain data."""
    path = Path(path)
    fix = (f"resume only a run that Coupler interrupted, or start it again without resume= (delete "
           f"{path.parent.parent}/)")
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:  # weights_only refused a global: the file names code to run
        found = str(exc).split("Unsupported global: GLOBAL ", 1)[-1].split(" ", 1)[0] if "GLOBAL" in str(exc) else None
        raise CouplerError(f"{path} holds a Python object that is not plain data"
                           f"{f' ({found})' if found else ''}; refusing to load it, since unpickling it would run "
                           f"code: {fix}.") from None
    except FileNotFoundError:
        raise CouplerError(f"{path} does not exist: {fix}.") from None
    except Exception as exc:  # not a torch file, truncated, damaged
        raise CouplerError(f"{path} is not a checkpoint torch can read ({type(exc).__name__}: "
                           f"{_first_line(exc)}): {fix}.") from None
    if not isinstance(checkpoint, dict) or not {"state_dict", "epoch"} <= set(checkpoint):
        raise CouplerError(f"{path} is not a Lightning checkpoint written by Coupler (no state_dict and epoch): {fix}.")
    return checkpoint


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [""])[0][:300]


class TorchModel(TorchContract):
    """Subclass with ``build_network`` and ``architecture``; see the module docstring for what the engine does."""

    input_format = "matrix"
    #: a run killed mid-training continues with ``resume=RUN_DIR`` from its last checkpoint
    resumable = True
    default_optimizer = DEFAULT_OPTIMIZER
    default_scheduler = DEFAULT_SCHEDULER

    def __init__(self, task: str, seed: int, batch_size: int = 64):
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
            raise ConfigError("model.batch_size", batch_size, "a whole number of at least 1")
        self.task, self.seed, self.batch_size = task, seed, batch_size
        self.network: torch.nn.Module | None = None
        self.n_inputs = self.n_outputs = 0
        self.target_scale = (0.0, 1.0)  # regression targets are standardized for training
        self._cache: tuple[Any, np.ndarray] | None = None

    # --- what a subclass provides ----------------------------------------------------------------------

    def build_network(self, n_inputs: int, n_outputs: int) -> torch.nn.Module:
        """The network: takes a float tensor (batch, n_inputs), returns (batch, n_outputs)."""
        raise NotImplementedError

    def architecture(self) -> dict:
        """The keyword arguments that define the network (saved in ``network.json``)."""
        return {}

    def augment(self, x: torch.Tensor) -> torch.Tensor:
        """Augment a training batch (train split only); the default leaves it as it is."""
        return x

    # --- data feeding: in-memory tensors by default; a model that reads files overrides these ------------

    def input_size(self, X) -> int:
        """The width of one input row (``n_inputs`` of ``build_network``)."""
        if isinstance(X, RowStream):
            return int(X.n_features)
        return int(X.shape[1])

    def training_batches(self, split: Split, epoch):
        """An iterable of ``(x, y)`` training batches, re-iterated each epoch in a (seed, ``epoch()``) order."""
        X = torch.as_tensor(np.asarray(split.X, dtype=np.float32))
        return TensorBatches(X, self._targets(split.y), self.batch_size, shuffle=True, seed=self.seed, epoch=epoch,
                             weight=self.row_weights(split))

    @staticmethod
    def row_weights(split: Split) -> torch.Tensor | None:
        """The train split's row weights (``Split.weight``, from ``train.class_weight``) as a tensor, or None: a
        model that builds its own ``TensorBatches`` passes them as ``weight=``."""
        return None if split.weight is None else torch.as_tensor(np.asarray(split.weight, dtype=np.float32))

    def stream_batches(self, split: Split, epoch, buffer_rows: int):
        """Training batches of a split whose ``X`` is a ``RowStream`` (a model that lists ``"stream"`` in its
        ``input_formats``): a ``DataLoader`` with ``batch_size=None`` over ``StreamBatches``, re-iterated each epoch
        in a (seed, ``epoch()``) order, rows shuffled within ``buffer_rows`` (``trainer.shuffle_buffer``)."""
        from torch.utils.data import DataLoader

        dataset = StreamBatches(split.X, self.batch_size, targets=self._targets, shuffle=True, seed=self.seed,
                                buffer_rows=buffer_rows, epoch=epoch)
        return DataLoader(dataset, batch_size=None)

    def input_batches(self, X):
        """Batches of inputs for scoring, in row order."""
        X = X if isinstance(X, torch.Tensor) else torch.as_tensor(np.asarray(X, dtype=np.float32))
        for start in range(0, len(X), 4096):
            yield X[start:start + 4096]

    # --- training --------------------------------------------------------------------------------------

    def fit(self, train: Split, val: Split | None, run) -> None:
        from coupler_torch.optimizers import for_run

        trainer_config = _trainer_config(run.config.get("trainer") or {})
        optimizer, scheduler = for_run(run, self)  # before any work: a bad optimizer value is one line
        classification = self.task != "regression"
        streaming = isinstance(train.X, RowStream)  # train.y of a stream is not read: its batches carry y
        self.n_inputs = self.input_size(train.X)
        self.n_outputs = len(run.classes) if classification else 1
        if not classification:
            mean, std = ((getattr(train.X, "target_moments", None) or _stream_moments(train.X)) if streaming
                         else (float(np.mean(train.y)), float(np.std(train.y))))
            self.target_scale = (mean, std if std > 0 else 1.0)
        torch.manual_seed(self.seed)
        self.network = self.build_network(self.n_inputs, self.n_outputs)

        epochs = trainer_config["max_epochs"]
        events = _RunEvents(self, run, val, trainer_config["resumable"], trainer_config["resume_interval"])
        progress = getattr(run, "progress", None)
        if progress is not None:  # the core's per-epoch lines count to max_epochs; Lightning's bar is the only bar
            progress.total, progress.engine_bar = epochs, bool(trainer_config["progress_bar"])
        trainer = pl.Trainer(
            max_epochs=epochs, accelerator=trainer_config["accelerator"], devices=trainer_config["devices"],
            precision=trainer_config["precision"], deterministic=trainer_config["deterministic"],
            gradient_clip_val=trainer_config["gradient_clip_val"], strategy=trainer_config["strategy"],
            num_nodes=trainer_config.get("num_nodes", 1),
            enable_progress_bar=trainer_config["progress_bar"], logger=False, enable_checkpointing=False,
            enable_model_summary=False, num_sanity_val_steps=0, limit_val_batches=0, log_every_n_steps=1,
            plugins=[AtomicCheckpointIO()], default_root_dir=str(run.directory), callbacks=[events],
            use_distributed_sampler=False,  # the engine shares the batches itself (_shared_batches)
        )
        # rank and world size are read when an epoch starts: Lightning sets them up when it launches the processes
        epoch = lambda: trainer.current_epoch  # noqa: E731
        batches = self.stream_batches(train, epoch, trainer_config["shuffle_buffer"]) if streaming \
            else self.training_batches(train, epoch=epoch)
        batches = _shared_batches(batches, share=lambda: (trainer.global_rank, trainer.world_size),
                                  world=trainer.world_size, model_name=type(self).__name__,
                                  strategy=trainer_config["strategy"])
        # Lightning cannot clip the gradients of an optimizer that unscales them itself (a fused one) under
        # mixed precision
        clips_mixed = trainer_config["gradient_clip_val"] is not None and trainer_config["precision"].endswith("-mixed")
        module = _Module(self, run, epochs=epochs, steps_per_epoch=len(batches), fused_allowed=not clips_mixed,
                         optimizer=optimizer, scheduler=scheduler)
        resume = _resume_checkpoint(run)
        module.weighted = train.weight is not None
        with _interruptible(), warnings.catch_warnings():
            if streaming:  # the stream is read in this process (num_workers=0): Lightning's hints are not for it
                warnings.filterwarnings("ignore", message=r".*does not have many workers")
                warnings.filterwarnings("ignore", message=r"Your `IterableDataset` has `__len__` defined")
            trainer.fit(module, train_dataloaders=batches, ckpt_path=str(resume) if resume else None,
                        weights_only=True)
        if run.best_epoch is not None and events.best_state is not None:
            self.network.load_state_dict(events.best_state)
        self.network.cpu().eval()
        self._cache = None
        events.finish()

    def _targets(self, y) -> torch.Tensor:
        if self.task == "regression":
            mean, std = self.target_scale
            return torch.as_tensor((np.asarray(y, dtype=np.float64) - mean) / std, dtype=torch.float32)
        return torch.as_tensor(np.asarray(y), dtype=torch.long)

    def loss(self, outputs: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if self.task == "regression":
            return torch.nn.functional.mse_loss(outputs.squeeze(-1), y)
        return torch.nn.functional.cross_entropy(outputs, y)

    def weighted_loss(self, outputs: torch.Tensor, y: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        """The loss with each row counted ``weight`` times (``Split.weight``): the weighted mean of the rows'
        losses, as scikit-learn's ``sample_weight`` and XGBoost's weights count them."""
        if self.task == "regression":
            rows = (outputs.squeeze(-1) - y) ** 2
        else:
            rows = torch.nn.functional.cross_entropy(outputs, y, reduction="none")
        weight = weight.to(rows.dtype)
        return (rows * weight).sum() / weight.sum().clamp_min(torch.finfo(rows.dtype).tiny)

    def outputs(self, X, device=None, context=None) -> torch.Tensor:
        """The network's outputs for every row of ``X``, in batches, without gradients (float32, on the CPU)."""
        network = self.network
        was_training = network.training
        network.eval()
        # under a *-true precision (64-true, bf16-true) the weights are not float32: floating inputs follow them
        dtype = next((p.dtype for p in network.parameters() if p.is_floating_point()), torch.float32)
        chunks = []
        with torch.no_grad():
            for batch in self.input_batches(X):
                if device is not None:
                    batch = batch.to(device)
                if batch.is_floating_point() and batch.dtype != dtype:
                    batch = batch.to(dtype)
                if context is not None:
                    with context():
                        chunks.append(network(batch).float().cpu())
                else:
                    chunks.append(network(batch).float().cpu())
        network.train(was_training)
        return torch.cat(chunks) if chunks else torch.empty((0, self.n_outputs))

    def epoch_metrics(self, X, y: torch.Tensor, device=None, context=None) -> dict[str, float]:
        """``val_loss`` and ``val_accuracy`` (classification) or ``val_rmse`` (regression, in target units) for
        inputs ``X`` and targets ``y`` (as ``_targets`` makes them)."""
        outputs = self.outputs(X, device, context)
        metrics = {"val_loss": float(self.loss(outputs, y))}
        if self.task == "regression":
            metrics["val_rmse"] = float(torch.sqrt(torch.mean((outputs.squeeze(-1) - y) ** 2))) * self.target_scale[1]
        else:
            metrics["val_accuracy"] = float((outputs.argmax(dim=1) == y).float().mean())
        return metrics

    def stream_metrics(self, stream: RowStream, device=None, context=None) -> dict[str, float]:
        """``epoch_metrics`` of a validation split that is a ``RowStream``: one partition at a time, in order, the
        sums of the loss (the mean loss times the rows), of the right answers or the squared errors; never the
        whole split's outputs at once."""
        loss = right = squares = 0.0
        rows = 0
        for part in stream.partitions():
            batch = part.read()
            if not len(batch):
                continue
            outputs, y = self.outputs(batch.X, device, context), self._targets(batch.y)
            loss += float(self.loss(outputs, y)) * len(y)
            if self.task == "regression":
                squares += float(torch.sum((outputs.squeeze(-1) - y) ** 2))
            else:
                right += float((outputs.argmax(dim=1) == y).sum())
            rows += len(y)
        rows = max(rows, 1)
        metrics = {"val_loss": loss / rows}
        if self.task == "regression":
            metrics["val_rmse"] = math.sqrt(squares / rows) * self.target_scale[1]
        else:
            metrics["val_accuracy"] = right / rows
        return metrics

    # --- prediction ------------------------------------------------------------------------------------

    def _predictions(self, X) -> np.ndarray:
        if self._cache is None or self._cache[0] is not X:
            outputs = self.outputs(X)
            if self.task == "regression":
                mean, std = self.target_scale
                values = outputs.squeeze(-1).double().numpy() * std + mean
            else:
                values = torch.softmax(outputs.double(), dim=1).numpy()
            self._cache = (X, values)
        return self._cache[1]

    def predict(self, X) -> np.ndarray:
        values = self._predictions(X)
        return values if self.task == "regression" else values.argmax(axis=1)

    @property
    def supports_proba(self) -> bool:
        return self.task != "regression"

    def predict_proba(self, X):
        return None if self.task == "regression" else self._predictions(X)

    # --- exports (for a model that reads a matrix and declares export_formats: coupler_torch.export) ---------

    def to_onnx(self, n_features: int):
        from coupler_torch.export import to_onnx

        return to_onnx(self, n_features)

    def to_torchscript(self, state: dict, task: str) -> bytes:
        from coupler_torch.export import to_torchscript

        return to_torchscript(self, state, task)

    def torchscript_answers(self, data: bytes, state: dict, rows, task: str):
        from coupler_torch.export import torchscript_answers

        return torchscript_answers(data, state, rows, task)

    # --- artifacts -------------------------------------------------------------------------------------

    def save(self, directory: Path) -> None:
        from safetensors.torch import save_file

        state = {k: v.detach().cpu().contiguous() for k, v in self.network.state_dict().items()}
        save_file(state, str(Path(directory) / WEIGHTS))
        (Path(directory) / NETWORK).write_text(json.dumps({
            "format": 1, "model": type(self).__name__, "architecture": self.architecture(),
            "n_inputs": self.n_inputs, "n_outputs": self.n_outputs, "task": self.task,
            "target_scale": list(self.target_scale),
        }, indent=2))

    def load(self, directory: Path) -> None:
        from safetensors.torch import load_file

        saved = read_network(directory)
        if saved["architecture"] != self.architecture():
            raise CouplerError(f"{directory}: the saved network was built with {saved['architecture']}, "
                               f"but the run's config builds {self.architecture()}; the config was changed.")
        self.n_inputs, self.n_outputs = saved["n_inputs"], saved["n_outputs"]
        self.target_scale = tuple(saved["target_scale"])
        self._check_weight_shapes(Path(directory) / WEIGHTS)
        self.network = self.build_network(self.n_inputs, self.n_outputs)
        weights = load_file(str(Path(directory) / WEIGHTS))
        # weights trained under a *-true precision (bf16-true, 64-true) keep their dtype, so that the reloaded
        # network computes what the run measured
        parameters = {name for name, _ in self.network.named_parameters()}
        dtype = next((t.dtype for k, t in weights.items() if k in parameters and t.is_floating_point()), torch.float32)
        if dtype != torch.float32:
            self.network.to(dtype)
        self.network.load_state_dict(weights)
        self.network.eval()
        self._cache = None

    def _check_weight_shapes(self, path: Path) -> None:
        """Build the network on the ``meta`` device (shapes, no memory) and compare its tensors with the header of
        the weights file, before anything is allocated: a tampered size in ``network.json`` is refused here."""
        expected = _weight_shapes(path)
        try:
            with torch.device("meta"):
                skeleton = self.build_network(self.n_inputs, self.n_outputs)
        except CouplerError:
            raise
        except Exception as exc:
            raise CouplerError(f"{path.parent / NETWORK}: the network it describes cannot be built "
                               f"({type(exc).__name__}: {_first_line(exc)}); the file was changed: retrain the run "
                               f"(coupler train).") from None
        built = {name: tuple(tensor.shape) for name, tensor in skeleton.state_dict().items()}
        differ = sorted(set(built) ^ set(expected)) or sorted(k for k in built if built[k] != expected[k])
        if differ:
            name = differ[0]
            raise CouplerError(f"{path.parent}: {NETWORK} describes a network whose tensor {name} is "
                               f"{list(built[name]) if name in built else 'absent'}, and {WEIGHTS} holds "
                               f"{list(expected[name]) if name in expected else 'no such tensor'}; the files do not "
                               f"belong together (changed or damaged): retrain the run (coupler train).")


def _weight_shapes(path: Path) -> dict[str, tuple[int, ...]]:
    """The shape of every tensor in a safetensors file, read from its header (no tensor is loaded)."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as weights:
            return {name: tuple(weights.get_slice(name).get_shape()) for name in weights.keys()}
    except FileNotFoundError:
        raise CouplerError(f"{path} is missing: the run is incomplete; retrain it (coupler train).") from None
    except Exception as exc:  # safetensors' own error for a file that is not one
        raise CouplerError(f"{path} is not a safetensors file ({type(exc).__name__}: {_first_line(exc)}); the "
                           f"file was changed or damaged: retrain the run (coupler train).") from None


def _is_whole(value, low: int = 0) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= low


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def read_network(directory: Path) -> dict:
    """``network.json``, checked: a JSON object of plain data with the fields the engine reads (it names no code:
    the network is rebuilt by the run's own model). Anything else is a ``CouplerError`` naming the file."""
    path = Path(directory) / NETWORK
    fix = "the file was changed or damaged: retrain the run (coupler train)"
    try:
        saved = json.loads(path.read_text())
    except FileNotFoundError:
        raise CouplerError(f"{path} is missing: the run is incomplete; retrain it (coupler train).") from None
    except (UnicodeDecodeError, ValueError) as exc:
        raise CouplerError(f"{path} is not JSON ({_first_line(exc)}); {fix}.") from None
    problems = [] if isinstance(saved, dict) else ["it is not a JSON object"]
    if not problems:
        checks = {"format": lambda v: v == 1, "architecture": lambda v: isinstance(v, dict),
                  "n_inputs": _is_whole, "n_outputs": lambda v: _is_whole(v, 1),
                  "target_scale": lambda v: isinstance(v, list) and len(v) == 2 and all(map(_is_number, v))}
        problems = [f"{key}={json.dumps(saved.get(key))}" for key, valid in checks.items() if not valid(saved.get(key))]
    if problems:
        raise CouplerError(f"{path} is not a network description Coupler wrote ({'; '.join(problems)}); {fix}.")
    return saved


@contextlib.contextmanager
def _interruptible():
    """Give the caller of ``trainer.fit`` a Ctrl-C as ``KeyboardInterrupt``: Lightning catches it, ignores SIGINT
    for its teardown and calls ``sys.exit(1)``, which would make an interruption look like a failure (exit 1, no
    word). The SIGINT handler the process had is restored."""
    main = threading.current_thread() is threading.main_thread()
    handler = signal.getsignal(signal.SIGINT) if main else None
    try:
        yield
    except SystemExit as exc:
        if isinstance(exc.__context__, KeyboardInterrupt):
            raise KeyboardInterrupt("training interrupted") from None
        raise
    finally:
        if handler is not None and signal.getsignal(signal.SIGINT) is not handler:
            signal.signal(signal.SIGINT, handler)


def _resume_checkpoint(run) -> Path | None:
    """``resume=RUN_DIR``: the checkpoint to continue from, ``RUN_DIR/checkpoints/last.ckpt``; a checkpoint being
    written when the run was killed (a temporary file beside it) is removed first, by the process that writes."""
    from coupler.distributed import secondary_process

    resume = run.config.get("resume")
    if not resume:
        return None
    checkpoint = Path(resume) / CHECKPOINTS / "last.ckpt"
    if not secondary_process():
        for stale in checkpoint.parent.glob(".*.tmp"):
            stale.unlink(missing_ok=True)
    return checkpoint


def _trainer_config(node: dict) -> dict:
    """The ``trainer`` settings over the schema's defaults (``coupler_torch.plugin.TrainerSchema``), checked against
    it: a run Coupler composed was checked before its data was read; a config that reaches ``fit`` another way is
    checked here. ``progress_bar`` and ``precision`` are resolved to what Lightning takes."""
    check_node(node, TrainerSchema, "trainer", what="the trainer group")
    config = {**defaults(TrainerSchema), **node}
    if config["progress_bar"] == "auto":
        config["progress_bar"] = sys.stderr.isatty()
    config["precision"] = str(config["precision"])
    return config


class _Module(pl.LightningModule):
    """The Lightning side of a ``TorchModel``: loss, training step, optimizer and scheduler."""

    def __init__(self, model: TorchModel, run, epochs: int, steps_per_epoch: int, fused_allowed: bool = True,
                 optimizer=None, scheduler=None):
        super().__init__()
        self.network = model.network
        self.model, self.run, self.epochs, self.steps_per_epoch = model, run, epochs, steps_per_epoch
        self.fused_allowed = fused_allowed
        self.make_optimizer, self.make_scheduler = optimizer, scheduler
        self.loss_sum = torch.zeros(())
        self.batches = 0

    # Lightning sets _current_fx_name around each of the ~45 hook calls of a training step; torch's
    # Module.__setattr__ (isinstance checks against Parameter, Module and buffers) made that a few percent of a
    # small network's epoch. These names never hold a parameter, module or buffer.
    _PLAIN_ATTRIBUTES = frozenset({"_current_fx_name", "loss_sum", "batches"})

    def __setattr__(self, name, value):
        if name in self._PLAIN_ATTRIBUTES:
            object.__setattr__(self, name, value)
        else:
            super().__setattr__(name, value)

    def forward(self, x):
        return self.network(x)

    weighted = False  # the train split has row weights (Split.weight): batches are (x, y, weight)

    def training_step(self, batch, batch_index):
        x, y, *weight = batch
        outputs = self.network(self.model.augment(x))
        if self.weighted and not weight:
            raise ConfigError("train.class_weight", self.run.config["train"]["class_weight"],
                              f"null for model {type(self.model).__name__}: its training batches carry no row weights")
        loss = self.model.weighted_loss(outputs, y, weight[0]) if weight else self.model.loss(outputs, y)
        self.loss_sum = self.loss_sum.to(loss.device) + loss.detach()  # no .item(): no sync on every step
        self.batches += 1
        return loss

    def configure_optimizers(self):
        from coupler_torch.optimizers import OptimizerFactory

        make_optimizer, name = self.make_optimizer, self.run.config["optimizer"]["name"]
        if not self.fused_allowed and isinstance(make_optimizer, OptimizerFactory):
            make_optimizer = make_optimizer.unfused()
        optimizer = make_optimizer(self.parameters())
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise CouplerError(f"optimizer {name!r}: its factory's callable returned "
                               f"{type(optimizer).__name__}, not a torch.optim.Optimizer")
        if not self.fused_allowed and getattr(optimizer, "_step_supports_amp_scaling", False):
            raise ConfigError("trainer.gradient_clip_val", self.trainer.gradient_clip_val,
                              f"null with a fused optimizer under precision={self.trainer.precision}: Lightning cannot "
                              f"clip the gradients it unscales itself (or set optimizer.fused=false)")
        make_scheduler = self.make_scheduler
        scheduler = make_scheduler(optimizer, epochs=self.epochs, steps_per_epoch=self.steps_per_epoch) \
            if make_scheduler is not None else None
        return optimizer if scheduler is None else {"optimizer": optimizer, "lr_scheduler": scheduler}


class _RunEvents(pl.Callback):
    """Seeds each epoch, scores the validation split, fires ``run.epoch_end``, keeps the best weights,
    writes checkpoints, and carries the run's progress inside them for a resume."""

    def __init__(self, model: TorchModel, run, val: Split | None, resumable: bool, resume_interval: float = 0):
        from coupler_torch.callbacks import Checkpoint, LearningRateMonitor

        self.model, self.run, self.val = model, run, val
        callbacks = list((getattr(run, "callbacks", None) or {}).values())
        self.checkpoint = next((c for c in callbacks if isinstance(c, Checkpoint)), None)
        self.lr_monitor = any(isinstance(c, LearningRateMonitor) for c in callbacks)
        self.directory = Path(run.directory) / CHECKPOINTS
        self.resumable, self.resume_interval = resumable, resume_interval
        self.last_written: float | None = None  # time.monotonic() of the last write of last.ckpt
        self.best_state: dict | None = None
        self.val_stream = val is not None and isinstance(val.X, RowStream)  # scored a partition at a time
        if val is not None and not self.val_stream:  # converted once, scored every epoch (paths stay as they are)
            self.val_X = val.X
            if isinstance(val.X, np.ndarray):  # integers (token ids) stay exact; anything else is float32
                self.val_X = torch.as_tensor(val.X, dtype=torch.int64 if np.issubdtype(val.X.dtype, np.integer)
                                             else torch.float32)
            self.val_y = model._targets(val.y)

    def on_train_start(self, trainer, module):
        if trainer.is_global_zero:  # the log says when the work starts (importing torch and Lightning takes seconds)
            log.info("training %s: epoch %d of at most %d, %d batches an epoch", type(self.model).__name__,
                     trainer.current_epoch + 1, trainer.max_epochs, trainer.num_training_batches)
        if trainer.world_size > 1 and trainer.is_global_zero:
            log.info("data parallel over %d processes (trainer.strategy=%s): each trains on its share of every "
                     "batch of %d rows", trainer.world_size, type(trainer.strategy).__name__, self.model.batch_size)

    def on_train_epoch_start(self, trainer, module):
        # dropout, augmentation: one stream per process (the shares of a batch get different draws)
        torch.manual_seed(_epoch_seed(self.model.seed, trainer.current_epoch) + trainer.global_rank)
        module.loss_sum, module.batches = torch.zeros(()), 0
        # the rate the epoch starts with (Lightning steps an epoch scheduler before on_train_epoch_end)
        self.rates = [float(group["lr"]) for group in trainer.optimizers[0].param_groups]

    def on_train_epoch_end(self, trainer, module):
        metrics = {"train_loss": float(module.loss_sum) / max(module.batches, 1)}
        if trainer.world_size > 1:  # every process trained on its share: the mean over processes (collective)
            share = (module.loss_sum / max(module.batches, 1)).to(module.device)
            metrics["train_loss"] = float(trainer.strategy.reduce(share, reduce_op="mean"))
        decision = self._decide(trainer, module, metrics) if trainer.is_global_zero else None
        if trainer.world_size > 1:
            # rank 0 decides for all: every process stops together and takes part in each checkpoint write (a
            # collective: one that skipped it would leave the others waiting)
            decision = trainer.strategy.broadcast(decision, src=0)
        metrics, stop, save_best, save_last = decision
        # Lightning's log only feeds the progress bar and a plateau scheduler's monitor (in every process); its
        # first call is slow
        if trainer.progress_bar_callback is not None or any(c.monitor for c in trainer.lr_scheduler_configs):
            for key, value in metrics.items():
                module.log(key, value, prog_bar=True, logger=False)  # the bar shows every monitored metric
        if stop:
            trainer.should_stop = True
        if save_best:
            trainer.save_checkpoint(self.directory / "best.ckpt")
        if save_last:
            trainer.save_checkpoint(self.directory / "last.ckpt")
            self.last_written = time.monotonic()

    def _decide(self, trainer, module, metrics: dict) -> tuple[dict, bool, bool, bool]:
        """The epoch's end in rank 0 (or the only process): score the validation split, fire ``run.epoch_end``
        (once per epoch, not once per process), keep the best weights. Returns the epoch's metrics and whether
        training stops, ``best.ckpt`` and ``last.ckpt`` are written."""
        epoch = trainer.current_epoch
        if self.val_stream:
            metrics.update(self.model.stream_metrics(self.val.X, module.device, trainer.precision_plugin.forward_context))
        elif self.val is not None:
            metrics.update(self.model.epoch_metrics(self.val_X, self.val_y, module.device,
                                                    trainer.precision_plugin.forward_context))
        if self.lr_monitor:
            metrics.update({"lr" if i == 0 else f"lr_{i}": rate for i, rate in enumerate(self.rates)})
        for scheduler in trainer.lr_scheduler_configs:  # plateau's monitor: a metric the run reports, named by key
            if scheduler.monitor and scheduler.monitor not in metrics:
                raise ConfigError("scheduler.monitor", scheduler.monitor,
                                  f"one of the epoch metrics: {', '.join(sorted(metrics))}")
        stop = self.run.epoch_end(epoch, metrics)
        if self.run.best_epoch == epoch:
            self.best_state = {k: v.detach().cpu().clone() for k, v in module.network.state_dict().items()}
        checkpoint, save_best = self.checkpoint, False
        if checkpoint is not None and checkpoint.save_best:
            if checkpoint.monitor not in metrics:
                raise ConfigError("callbacks.checkpoint.monitor", checkpoint.monitor,
                                  f"one of the epoch metrics: {', '.join(sorted(metrics))}")
            if checkpoint.improved(metrics[checkpoint.monitor]):
                checkpoint.best, save_best = metrics[checkpoint.monitor], True
        return metrics, bool(stop), save_best, self._last_due()

    def _last_due(self) -> bool:
        """Whether this epoch writes last.ckpt: every epoch when callbacks.checkpoint keeps it; for a resume, the
        first epoch and then once trainer.resume_interval seconds have passed since the previous write."""
        if self.checkpoint is not None and self.checkpoint.save_last:
            return True
        return self.resumable and (self.last_written is None
                                   or time.monotonic() - self.last_written >= self.resume_interval)

    def finish(self) -> None:
        """After training: the in-progress ``last.ckpt`` goes unless ``callbacks.checkpoint.save_last`` keeps it."""
        if not (self.checkpoint and self.checkpoint.save_last):
            (self.directory / "last.ckpt").unlink(missing_ok=True)
            if self.directory.is_dir() and not any(self.directory.iterdir()):
                self.directory.rmdir()

    # Lightning stores this in every checkpoint and hands it back on resume.
    def state_dict(self) -> dict:
        run = self.run
        return {"history": run.history, "best_epoch": run.best_epoch, "best_score": run.best_score,
                "best_state": self.best_state,
                "callbacks": {key: callback.state_dict() for key, callback in (run.callbacks or {}).items()
                              if hasattr(callback, "state_dict")}}

    def load_state_dict(self, state: dict) -> None:
        run = self.run
        run.history[:] = state["history"]
        run.best_epoch, run.best_score, self.best_state = state["best_epoch"], state["best_score"], state["best_state"]
        for key, callback_state in state["callbacks"].items():
            callback = (run.callbacks or {}).get(key)
            if callback is not None and hasattr(callback, "load_state_dict"):
                callback.load_state_dict(callback_state)
