"""A training run: resolve components, load and split data, cross-validate (``cv.folds``, ``coupler.cross_validation``),
preprocess, fit, measure, save, export."""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import platform
import shutil
import tempfile
import time
from functools import lru_cache, partial
from importlib import metadata
from pathlib import Path

from coupler import cross_validation, drift, parquet
from coupler.callback import observes
from coupler.capabilities import check_before_data, check_built, check_kinds_used, check_setting_groups
from coupler.class_weight import class_weight_per_class, row_weights
from coupler.components import CLASSIFICATION, Model, Split
from coupler.config import check_settings
from coupler.context import RunContext
from coupler.dataset import Dataset, encode_target, infer_task
from coupler.distributed import secondary_process
from coupler.errors import ConfigError, CouplerError, DataError
from coupler.evaluation import measure, measure_stream, predictions_frame, select_metrics
from coupler.onnx_export import export_records
from coupler.parquet import ParquetDataset
from coupler.plots import draw_run
from coupler.plugin_faults import BlamedHooks, BlamedModel, blamed, component_label
from coupler.plugin_manager import PluginManager
from coupler.preprocessing import Preprocessor
from coupler.progress import LOG_EVERY, EpochProgress
from coupler.run_directory import MANIFEST, atomic_write_text, checksums, write_csv, write_json, write_manifest
from coupler.splitting import split_rows

log = logging.getLogger("coupler")


def distribution_versions(distribution: str) -> dict[str, str]:
    """The version of ``distribution`` and of each library it requires (what the artifacts depend on)."""
    return dict(_installed_versions(distribution))


@lru_cache(maxsize=None)
def _installed_versions(distribution: str) -> tuple[tuple[str, str], ...]:
    """Read once per process (10 ms of package metadata a run: each trial of a search paid it): what a run records
    is the code this process runs, which is what it imported, whatever is installed afterwards."""
    import re

    versions = {}
    try:
        versions[distribution] = metadata.version(distribution)
        requirements = metadata.requires(distribution) or []
    except metadata.PackageNotFoundError:
        return tuple(versions.items())
    for requirement in requirements:
        if "extra ==" in requirement:
            continue
        name = re.split(r"[\s<>=!~;\[(]", requirement, maxsplit=1)[0]
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return tuple(versions.items())


def component_record(manager: PluginManager, kind: str, name: str) -> dict:
    plugin = manager.component_plugin(kind, name)
    return {"name": name, "plugin": plugin.name, "distribution": plugin.distribution, "version": plugin.version}


def train(config: dict, run_dir: Path, manager: PluginManager) -> dict:
    """Run ``config`` (plain containers) into ``run_dir`` and return ``{"val": {...}, "test": {...}}``.

    Raises ``CouplerError`` for anything the user can fix; the caller removes the half-written directory.
    """
    run_dir = Path(run_dir)
    check_settings(config, manager.registry)
    if (run_dir / MANIFEST).exists():
        raise CouplerError(f"{run_dir} already holds a finished run; choose another directory.")
    run_dir.mkdir(parents=True, exist_ok=True)  # on_run_start promises it exists (Hydra makes it for the CLI)
    with manager.disabled_for_run(config["plugins"].get("disable") or []):
        return _resolve_and_run(config, run_dir, manager)


def _resolve_and_run(config: dict, run_dir: Path, manager: PluginManager) -> dict:
    registry = manager.registry
    seed = config["seed"]

    # Resolve every component by name before any work, so that a typo fails in milliseconds.
    data_component = registry.get("data", config["data"]["name"])
    model_component = registry.get("model", config["model"]["name"])
    for kind in registry.kinds.values():  # the single groups plugins declared (an engine builds them itself)
        node = config.get(kind.group)
        if kind.plugin != "coupler" and not kind.many and isinstance(node, dict) and node.get("name"):
            registry.get(kind.name, node["name"])
    callback_nodes = config.get("callbacks") or {}
    exporter_nodes = config.get("exporters") or {}
    callbacks = [registry.get("callback", n.get("name", k)).build(f"callbacks.{k}", n) for k, n in callback_nodes.items()]
    exporters = {k: registry.get("exporter", n.get("name", k)).build(f"exporters.{k}", n) for k, n in exporter_nodes.items()}
    # what the model cannot honour is refused before any data is read (coupler.capabilities)
    check_before_data(config, registry, model_component.name, model_component.factory,
                      by_name(callback_nodes, callbacks), by_name(exporter_nodes, exporters.values()),
                      partial(_group_default, manager))

    # hooks that raise are named: a plugin by its name, a callback by its component
    labels = {id(callback): component_label(manager, "callback", node.get("name", key))
              for (key, node), callback in zip(callback_nodes.items(), callbacks)}
    trackers = _trackers(config, manager, labels)
    progress = EpochProgress(config["train"].get("log_every", LOG_EVERY))
    run = RunContext(config=config, directory=run_dir, hooks=BlamedHooks(manager, run_dir, labels), seed=seed,
                     callbacks=dict(zip(callback_nodes, callbacks)), registry=registry, progress=progress)
    registered = []
    try:
        for callback in (progress, *callbacks, *trackers):
            registered.append(manager.hooks.register(callback))
        epoch_watchers = [key for key, callback in zip(callback_nodes, callbacks) if observes(callback, "on_epoch_end")]
        cross_validation.check_settings(cross_validation.settings(config))
        try:  # an observer that fails in on_run_start fails the run: those that started before it hear of it
            run.hooks.on_run_start(run=run)
            return _run(run, config, manager, data_component, model_component, exporters, epoch_watchers)
        except BaseException as error:
            _report_failure(run, error)
            raise
    finally:
        progress.close()
        for name in registered:
            manager.hooks.unregister(name=name)


def _report_failure(run: RunContext, error: BaseException) -> None:
    """``on_run_failed``: the observers hear of the failure; one that raises is logged and never hides ``error``."""
    try:
        run.hooks.on_run_failed(run=run, error=error)
    except Exception as hook_error:  # a plugin's, already named by BlamedHooks
        log.warning("on_run_failed: %s", hook_error)


def _trackers(config: dict, manager: PluginManager, labels: dict) -> list:
    """``tracking=[mlflow,tensorboard]``: the trackers, built as callbacks are (each node checked against its schema)
    and observing the run as callbacks do; a hook of theirs that raises is named by its tracker (``labels``)."""
    trackers = []
    for key, node in (config.get("tracking") or {}).items():
        name = (node or {}).get("name", key)
        trackers.append(manager.registry.get("tracker", name).build(f"tracking.{key}", node or {}))
        labels[id(trackers[-1])] = component_label(manager, "tracker", name)
    return trackers


def _run(run: RunContext, config: dict, manager: PluginManager, data_component, model_component, exporters,
         epoch_watchers: list[str]) -> dict:
    registry, run_dir = manager.registry, run.directory
    started = time.perf_counter()
    cv = cross_validation.settings(config)
    data = _load(config, data_component)
    model = None
    if isinstance(data, ParquetDataset):  # a directory: streamed to a model that takes a stream, else read whole
        found = _scan(run, config, data)
        model = _build_model(run, config, manager, model_component, exporters, data)
        if choose_input_format(model, data, model_component.name) == "stream":
            return _run_streamed(run, config, manager, data, found, model, model_component, exporters,
                                 epoch_watchers, started)
        dataset, y, indices = _materialize(run, config, data)
        fingerprint = data.fingerprint()
    else:
        dataset, y, indices = _split(run, config, data)
        fingerprint = None
    dataset, groups = cross_validation.take_group(dataset, cv)
    run.data_fingerprint = fingerprint or dataset.fingerprint()  # the manifest's (an ensemble's members compare it)
    model = model or _build_model(run, config, manager, model_component, exporters, dataset)
    metrics = select_metrics(config.get("metrics"), run.task, model, registry)
    log.info("data %s: %d rows, %d features, task %s; split train=%d val=%d test=%d", dataset.name,
             len(y), dataset.X.shape[1], run.task, len(indices.train), len(indices.val), len(indices.test))
    folds = _cross_validate(run, config, manager, dataset, y, indices, model_component, metrics, groups)
    indices = cross_validation.final_indices(indices, cv["refit"]) if folds else indices
    measured = _measured_rows(config, indices)
    preprocessor, splits = _preprocess(run, config, dataset, y, measured, model, model_component.name)

    model_label = component_label(manager, "model", model_component.name)
    fit_seconds = _fit(run, model, model_label, model_component.name, splits, epoch_watchers)
    if fit_seconds is None:  # a rank other than 0 of a distributed fit: rank 0 measures, saves and seals
        return {}

    evaluated: dict = {}  # each split's predictions and probabilities, which the plots draw
    results = _evaluate(run, BlamedModel(model, model_label, run_dir), splits, metrics, dataset, measured, evaluated)
    if folds:
        results["cv"] = cross_validation.summary(folds[1])
        write_csv(run_dir / cross_validation.FOLDS_FILE, cross_validation.folds_frame(*folds))
    timing = {"fit_seconds": round(fit_seconds, 3), "total_seconds": round(time.perf_counter() - started, 3)}
    _save(run, config, model, preprocessor, results, timing)
    drift.record(run_dir, dataset.X.iloc[measured.train], dataset.categorical, run.input_format)  # coupler drift
    for key, exporter in exporters.items():
        paths = exporter.export(model, run, run_dir / "exports")
        run.hooks.on_export(run=run, exporter=key, paths=paths)
    draw_run(run, config.get("plots"), splits, evaluated)  # before the seal: its checksums cover RUN/plots/
    _seal(run, config, manager, _features_record(dataset, run.input_format), dataset.read_options, run.data_fingerprint,
          {name: len(getattr(indices, name)) for name in ("train", "val", "test")}, model_component)
    run.hooks.on_run_end(run=run, metrics=results)
    return results


def _fit(run: RunContext, model, model_label: str, model_name: str, splits: dict, epoch_watchers: list[str]
         ) -> float | None:
    """``on_fit_start``, ``model.fit`` (a plugin's exception named), ``on_fit_end``: the fit's seconds, or None in a
    rank other than 0 of a distributed fit (it stops there)."""
    run.hooks.on_fit_start(run=run, model=model)
    started = time.perf_counter()
    with blamed(model_label, "fit", run.directory):
        model.fit(splits["train"], splits["val"] if len(splits["val"]) else None, run)
    seconds = time.perf_counter() - started
    if secondary_process():
        return None
    run.hooks.on_fit_end(run=run, model=model)
    if epoch_watchers and not run.history:
        log.warning("callbacks %s watch epochs, but model %r reported none (it trains in one step%s): they had "
                    "no effect", epoch_watchers, model_name, "" if len(splits["val"]) else ", or split.val=0")
    return seconds


def _measured_rows(config: dict, indices):
    """The rows the run preprocesses and measures. With ``split.measure_test=false`` (each trial of a search) the
    test rows stay held out and unread: no test metrics, predictions or baseline (``metrics.json``'s ``test`` is
    empty); the manifest still counts them, and ``coupler evaluate RUN`` measures them later."""
    if config["split"].get("measure_test", True):
        return indices
    import dataclasses

    return dataclasses.replace(indices, test=indices.test[:0])


def _cross_validate(run: RunContext, config: dict, manager: PluginManager, dataset: Dataset, y, indices,
                    model_component, metrics, groups) -> tuple[list, list[dict]] | None:
    """``cv.folds=K``: each fold's metrics (``coupler.cross_validation``) with a fresh preprocessor and model, the
    run's callbacks reset; ``(folds, metrics)``, or None without cross-validation."""
    cv = cross_validation.settings(config)
    if not cv["folds"]:
        return None
    cross_validation.check_refit(cv, run.callbacks)
    folds = cross_validation.plan(cv, run.task, dataset.ordered, dataset.gap, y, indices, run.seed, run.classes,
                                  groups)
    reset = cross_validation.CallbackReset(run.callbacks.values())
    fit_fold = partial(_fit_fold, run, config, dataset, y, model_component, metrics,
                       component_label(manager, "model", model_component.name))
    try:
        return folds, cross_validation.run_folds(folds, fit_fold, cv["n_jobs"], reset)
    finally:
        reset.reset()  # the final model's fit starts from the callbacks as built


def _fit_fold(run: RunContext, config: dict, dataset: Dataset, y, model_component, metrics, model_label: str,
              fold) -> dict:
    """One fold: a fresh model from the factory, preprocessing fitted on the fold's training rows, ``fit`` with
    the fold's validation rows (in a temporary directory), and the metrics on those rows."""
    with tempfile.TemporaryDirectory(prefix="coupler-cv-") as directory:
        fold_run = cross_validation.fold_context(run, Path(directory), fold)
        model = model_component.build("model", fold_run.config["model"], task=run.task, seed=run.seed)
        _, splits = _preprocess(fold_run, config, dataset, y, fold.indices, model, model_component.name)
        progress = run.progress  # a fold fires no fit hooks: its first and last epoch are logged all the same
        if progress is not None:
            progress.start()
        try:
            with blamed(model_label, "fit", run.directory):
                model.fit(splits["train"], splits["val"], fold_run)
        finally:
            if progress is not None:
                progress.close()
        measured = measure(BlamedModel(model, model_label, run.directory), splits["val"].X, splits["val"].y,
                           metrics, len(run.classes), run.task)
    return measured.scalars


def _load(config: dict, data_component):
    """What the data loader returns: a ``Dataset`` in memory, or a ``ParquetDataset`` (a directory, lazily)."""
    dataset = data_component.build("data", config["data"])
    if not isinstance(dataset, (Dataset, ParquetDataset)):
        raise CouplerError(f"data loader {data_component.name!r} returned {type(dataset).__name__}, not a Dataset")
    return dataset


def _split(run: RunContext, config: dict, dataset: Dataset):
    """The data set, its encoded target (setting ``run.task`` and ``run.classes``) and the split's row indices."""
    task = run.task = infer_task(dataset.y, config["task"])
    y, run.classes = encode_target(dataset.y, task)
    indices = split_rows(y, task, config["split"], run.seed, run.classes, ordered=dataset.ordered, gap=dataset.gap)
    return dataset, y, indices


def _build_model(run: RunContext, config: dict, manager: PluginManager, model_component, exporters: dict,
                 dataset: Dataset):
    """The model for the data's task, checked against what the run asks of it (capabilities, engine settings, and
    what its exporters can carry of the data: ``Exporter.check_data``)."""
    registry = manager.registry
    model = model_component.build("model", config["model"], task=run.task, seed=run.seed)
    if not isinstance(model, Model) and not all(hasattr(model, m) for m in ("fit", "predict", "save", "load")):
        raise CouplerError(f"model {model_component.name!r}: its factory returned {type(model).__name__}, "
                           f"which lacks fit / predict / save / load")
    check_built(model, model_component.name, config, registry, by_name(config.get("callbacks"), run.callbacks.values()),
                by_name(config.get("exporters"), exporters.values()), run.task, dataset.categorical,
                choose_input_format(model, dataset, model_component.name) if exporters else None)
    _check_engine_settings(config, model, model_component.name, registry)
    check_setting_groups(config, registry, model, model_component.name, partial(_group_default, manager))
    return model


def _group_default(manager: PluginManager, group) -> dict | None:
    """The node of a settings group's default option (``trainer=default``), or None when it cannot be told."""
    from coupler.config import default_node

    return default_node(manager, group.name, group.default) if group.default else None


def _preprocess(run: RunContext, config: dict, dataset: Dataset, y, indices, model, model_name: str):
    """Fit the preprocessing on the training rows, in the input format the model takes, and apply it to each split;
    the training split carries ``train.class_weight``'s row weights. Sets what ``fit`` reads from ``run``."""
    input_format = run.input_format = choose_input_format(model, dataset, model_name)
    if input_format == "text" and dataset.tokenizer:
        _warn_unused_tokenizer(dataset.tokenizer, model_name)
    rows_of = {name: dataset.X.iloc[rows] for name, rows in (("train", indices.train), ("val", indices.val),
                                                              ("test", indices.test))}  # each copied once
    preprocessor = Preprocessor(**(config.get("preprocess") or {})).fit(rows_of["train"], dataset.categorical,
                                                                       input_format, dataset.tokenizer)
    splits = {name: Split(preprocessor.transform(X, input_format), y[getattr(indices, name)])
              for name, X in rows_of.items()}
    if run.task in CLASSIFICATION:  # train.class_weight: per-row weights the model honours (Model.sample_weights)
        splits["train"].weight = row_weights(config["train"].get("class_weight"), splits["train"].y, run.classes)
    run.feature_names = preprocessor.feature_names(input_format)
    if input_format == "tokens":
        run.sequence_shape, run.vocab_size = (preprocessor.vocabulary.length,), preprocessor.vocabulary.size
    else:
        run.sequence_shape = dataset.sequence
    return preprocessor, splits


def _scan(run: RunContext, config: dict, data: ParquetDataset) -> parquet.Scan:
    """A directory's one streaming pass (``coupler.parquet.scan``), setting ``run.task`` and ``run.classes``."""
    found = parquet.scan(data, run.seed, config["split"]["val"], config["split"]["test"])
    run.task = infer_task(parquet.target_values(data, found), config["task"])
    if run.task != "regression" and found.many:
        raise DataError(f"{data.label}: the target {data.target!r} has more than {parquet.DISTINCT_TRACKED} distinct "
                        f"values, too many classes; set task=regression if it holds numbers.")
    run.classes = [] if run.task == "regression" else sorted(found.labels, key=lambda v: (str(type(v)), v))
    return found


def _materialize(run: RunContext, config: dict, data: ParquetDataset):
    """A directory read whole, for a model that takes no stream: the same rows in each split as a stream's."""
    import numpy as np

    from coupler.splitting import SplitIndices

    dataset, codes = data.materialize(run.seed, config["split"]["val"], config["split"]["test"])
    y, _ = encode_target(dataset.y, run.task, run.classes or None)
    return dataset, y, SplitIndices(*(np.flatnonzero(codes == k) for k in range(3)))


def _run_streamed(run: RunContext, config: dict, manager: PluginManager, data: ParquetDataset, found, model,
                  model_component, exporters: dict, epoch_watchers: list[str], started: float) -> dict:
    """A run whose model takes the ``stream`` input format: each split a ``coupler.parquet.ParquetStream``, the
    preprocessing fitted in the scan, the val and test splits measured partition by partition."""
    if cross_validation.settings(config)["folds"]:
        raise ConfigError("cv.folds", config["cv"]["folds"], f"0 for a streamed data set ({data.label}, model "
                          f"{model_component.name!r}): cross-validation reads the rows in memory")
    if exporters:
        raise ConfigError("exporters", sorted(exporters), "none for a streamed data set; export the finished run "
                          "with coupler export RUN")
    run.data_fingerprint = data.fingerprint()
    metrics = select_metrics(config.get("metrics"), run.task, model, manager.registry)
    preprocessor = parquet.fit_preprocessor(data, found, config.get("preprocess") or {})
    class_weights = None
    if run.task in CLASSIFICATION and config["train"].get("class_weight") is not None:
        counts = [found.class_counts.get(label, 0) for label in run.classes]
        class_weights = class_weight_per_class(config["train"]["class_weight"], counts, run.classes).tolist()
    val, test = config["split"]["val"], config["split"]["test"]
    streams = parquet.streams(data, found, preprocessor, run.seed, val, test, run.task, run.classes, class_weights)
    if not config["split"].get("measure_test", True):
        streams["test"] = parquet.ParquetStream([], streams["test"].n_features)
    splits = {name: Split(stream, None) for name, stream in streams.items()}
    run.input_format, run.sequence_shape = "stream", None
    run.feature_names = preprocessor.feature_names("matrix")
    log.info("data %s: %d rows in %d row groups, %d features, task %s; split train=%d val=%d test=%d", data.name,
             sum(map(sum, found.rows)), len(data.fragments), len(data.features), run.task, len(splits["train"]),
             len(splits["val"]), len(splits["test"]))

    model_label = component_label(manager, "model", model_component.name)
    fit_seconds = _fit(run, model, model_label, model_component.name, splits, epoch_watchers)
    if fit_seconds is None:
        return {}
    evaluated: dict = {}
    results = _evaluate_streams(run, BlamedModel(model, model_label, run.directory), splits, metrics, evaluated)
    timing = {"fit_seconds": round(fit_seconds, 3), "total_seconds": round(time.perf_counter() - started, 3)}
    run.input_format = "matrix"  # what the saved run predicts from: matrices (coupler predict, serve, export)
    _save(run, config, model, preprocessor, results, timing)
    if found.sample is not None:
        drift.record(run.directory, found.sample, data.categorical, "matrix")
    draw_run(run, config.get("plots"), splits, evaluated)
    features = {"columns": list(data.features), "dtypes": {c: str(t) for c, t in data.dtypes.items()},
                "categorical": data.categorical, "target": data.target, "model_input": run.feature_names,
                "input_format": "matrix", "streamed": True, "sequence": None, "text": None, "ordered": False, "gap": 0}
    _seal(run, config, manager, features, {}, run.data_fingerprint,
          {name: found.split_rows(name) for name in parquet.SPLITS}, model_component)
    run.hooks.on_run_end(run=run, metrics=results)
    return results


def _evaluate_streams(run: RunContext, model, splits: dict, metrics, kept: dict) -> dict:
    """``_evaluate`` for streamed splits: each measured partition by partition; the test predictions numbered
    within the test split, in the data set's order (``test_row``). Sets each measured split's ``y``."""
    import pandas as pd

    results: dict[str, dict] = {}
    for name in ("val", "test"):
        results[name] = {}
        if not len(splits[name]):
            continue
        measured, splits[name].y = measure_stream(model, splits[name].X, metrics, len(run.classes), run.task,
                                                  rows=len(splits[name].X))
        results[name], kept[name] = measured.scalars, measured
        _write_arrays(run, name, measured)
        if name == "test":
            write_csv(run.directory / "predictions_test.csv",
                      predictions_frame(pd.RangeIndex(len(splits[name]), name="test_row"), measured, run.classes,
                                        splits[name].y))
        run.hooks.on_evaluate_end(run=run, split=name, metrics=measured.scalars)
    return results


def _warn_unused_tokenizer(tokenizer: dict, model_name: str) -> None:
    from coupler.tokenizer import check_settings

    defaults = check_settings({})
    unused = {k: v for k, v in tokenizer.items() if defaults.get(k) != v}
    if unused:
        log.warning("model %r reads the raw text with its own tokenizer: the data set's tokenizer settings %s "
                    "are not used", model_name, ", ".join(f"{k}={v}" for k, v in unused.items()))


def _evaluate(run: RunContext, model, splits: dict, metrics, dataset: Dataset, indices,
              kept: dict | None = None) -> dict:
    """Measure the val and test splits (writing array metrics, test predictions and the data set's baseline) and
    return ``{"val": {...}, "test": {...}}``; each split's ``Measured`` goes into ``kept`` (the plots')."""

    results: dict[str, dict] = {}
    for name in ("val", "test"):
        results[name] = {}
        if not len(splits[name]):
            continue
        measured = measure(model, splits[name].X, splits[name].y, metrics, len(run.classes), run.task)
        results[name] = measured.scalars
        if kept is not None:
            kept[name] = measured
        _write_arrays(run, name, measured)
        if name == "test":
            rows = dataset.X.index[indices.test]
            write_csv(run.directory / "predictions_test.csv",
                      predictions_frame(rows, measured, run.classes, splits[name].y))
        run.hooks.on_evaluate_end(run=run, split=name, metrics=measured.scalars)
    if dataset.baseline is not None:
        write_json(run.directory / "baseline.json",
                   measure_baseline(dataset, indices, run.task, run.classes, metrics))
    return results


def _write_arrays(run: RunContext, split: str, measured) -> None:
    """Array metrics (a confusion matrix) as ``NAME_SPLIT.csv``."""
    import pandas as pd

    for metric_name, array in measured.arrays.items():
        labels = run.classes or list(range(len(array)))
        frame = pd.DataFrame(array, index=[f"true_{c}" for c in labels], columns=[f"pred_{c}" for c in labels])
        write_csv(run.directory / f"{metric_name}_{split}.csv", frame)


def by_name(nodes: dict | None, built) -> dict:
    """Components built from a list group's ``nodes`` (``{key: node}``), by component name, for the checks."""
    return {(node or {}).get("name", key): component for (key, node), component in zip((nodes or {}).items(), built)}


def choose_input_format(model, dataset: Dataset, model_name: str) -> str:
    """What the model receives: the first of its ``input_formats`` that the data set can give.

    Paths of files (``Dataset.files``) give ``files``; text (``Dataset.text``) gives ``tokens`` or ``text``;
    any other table gives ``matrix`` or ``frame``. A model that takes none of them is refused by name."""
    formats = tuple(getattr(model, "input_formats", None) or (getattr(model, "input_format", "matrix"),))
    if getattr(model, "reads_files", False) and "files" not in formats:
        formats += ("files",)
    if isinstance(dataset, ParquetDataset):
        offered, what, example = ("stream", "matrix", "frame"), "a table of features", "model=logistic_regression"
    elif dataset.files:
        offered, what, example = ("files",), "paths of files", "model=cnn"
    elif dataset.text is not None:
        offered, what, example = ("tokens", "text"), "text", "model=transformer"
    else:
        offered, what, example = ("matrix", "frame"), "a table of features", "model=logistic_regression"
    chosen = next((f for f in formats if f in offered), None)
    if chosen is None:
        raise ConfigError("model", model_name, f"a model that reads {what} (e.g. {example}): data {dataset.name!r} "
                          f"holds {what}, and {model_name!r} reads {' or '.join(formats)}")
    return chosen


def measure_baseline(dataset: Dataset, indices, task: str, classes: list, metrics) -> dict:
    """The run's metrics (those that need no probabilities) for the data set's reference predictions."""
    from coupler.evaluation import score

    measured = {"name": dataset.baseline_name}
    chosen = [m for m in metrics if not m.needs_proba]
    for name, rows in (("val", indices.val), ("test", indices.test)):
        if not len(rows):
            measured[name] = {}
            continue
        y, _ = encode_target(dataset.y.iloc[rows], task, classes)
        predicted, _ = encode_target(dataset.baseline.iloc[rows], task, classes)
        measured[name] = score(y, predicted, None, chosen, len(classes)).scalars
    return measured


def _check_engine_settings(config: dict, model, model_name: str, registry) -> None:
    """Before anything trains: a group of a plugin's kind that only some models use (``Kind.used_by``, e.g. the
    torch engine's ``optimizer``) given to another model, and ``resume=`` for a model that cannot continue a run
    (``Model.resumable``), are errors naming the fix."""
    check_kinds_used(config, registry, model, model_name)
    if config.get("resume") and not getattr(model, "resumable", False):
        raise ConfigError("resume", config["resume"], f"a run of a model that can continue an interrupted run: model "
                                                      f"{model_name!r} cannot resume; start a new run instead")


def _save(run: RunContext, config: dict, model: Model, preprocessor: Preprocessor, results: dict,
          timing: dict) -> None:
    """The run's files; ``metrics.json`` holds the results and, under ``timing``, the final fit's seconds and the
    run's (from reading the data to the measured results, cross-validation included; saving excluded)."""
    import pandas as pd
    from omegaconf import OmegaConf

    run_dir = run.directory
    atomic_write_text(run_dir / "config.yaml", OmegaConf.to_yaml(OmegaConf.create(config)))
    write_json(run_dir / "metrics.json", {**results, "timing": timing})
    write_json(run_dir / "preprocessor.json", preprocessor.state())
    if run.history:
        write_csv(run_dir / "history.csv", pd.DataFrame(run.history).set_index("epoch"))
    importances = model.feature_importances() if hasattr(model, "feature_importances") else None
    if importances:
        frame = pd.Series(importances, name="importance").sort_values(ascending=False).rename_axis("feature")
        write_csv(run_dir / "feature_importances.csv", frame.to_frame())
    # The model writes into a fresh directory that becomes model/ in one rename: never half there.
    staging = Path(tempfile.mkdtemp(prefix=".model-", dir=run_dir))
    try:
        model.save(staging)
        staging.chmod(0o755)
        shutil.rmtree(run_dir / "model", ignore_errors=True)
        staging.rename(run_dir / "model")
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _features_record(dataset: Dataset, input_format: str) -> dict:
    """The manifest's ``features``: what a reload and ``coupler predict`` check the input against."""
    return {
        "columns": list(dataset.X.columns),
        "dtypes": {c: str(t) for c, t in dataset.X.dtypes.items()},
        "categorical": dataset.categorical,
        "target": str(dataset.y.name),
        "model_input": None,  # set by _seal
        "input_format": input_format,
        "sequence": list(dataset.sequence) if dataset.sequence else None,
        "text": dataset.text,
        "ordered": dataset.ordered,
        "gap": dataset.gap,
    }


def _seal(run, config, manager, features: dict, read_options: dict, fingerprint: str, rows: dict, model_component):
    from coupler import __version__

    model_plugin = manager.component_plugin("model", model_component.name)
    libraries = distribution_versions("coupler")
    libraries.update(distribution_versions(model_plugin.distribution))
    manifest = {
        "coupler_version": __version__,
        "finished": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "task": run.task,
        "classes": run.classes,
        "seed": run.seed,
        "components": {
            "data": component_record(manager, "data", config["data"]["name"]),
            "model": component_record(manager, "model", model_component.name),
        },
        "features": {**features, "model_input": run.feature_names},
        "read_options": read_options,
        "working_directory": os.getcwd(),
        "data_fingerprint": fingerprint,
        "rows": rows,
        "best_epoch": run.best_epoch,
        "libraries": libraries,
        "files": checksums(run.directory),
    }
    exports = export_records(run.directory)  # each export's parity on the test rows (coupler.onnx_export)
    if exports:
        manifest["exports"] = exports
    write_manifest(run.directory, json.loads(json.dumps(manifest, default=str)))


