"""Naming the plugin whose code failed during a run, in one line; the traceback goes to a file.

A model's ``fit``, ``predict`` and ``predict_proba``, and every lifecycle hook implementation (a plugin's, or
one of the run's callbacks'), are plugin code. An exception they raise becomes a ``PluginCodeError`` whose
message names the component or plugin, its distribution and version, the step, and the error::

    model 'random_forest' (plugin sklearn, coupler-sklearn 0.1.0) failed in fit: ValueError: ...; the traceback is in RUN/train.log
    plugin 'audit' (coupler-audit 1.2) failed in on_run_end: KeyError: 'user'; the traceback is in RUN/train.log

The CLI prints it as its one ``coupler: error:`` line. The full traceback goes where the user can read it
later without it flooding the terminal: during ``coupler train``, the run's log file (Hydra's job log
handler, ``RUN/train.log``); elsewhere (``coupler evaluate`` / ``predict``, whose run directory is not theirs
to write into, or an in-process run without a log file), a new ``coupler-traceback-*.log`` in the temporary
directory. The original exception stays chained (``__cause__``) for a program that catches the error.

Left alone: a ``CouplerError`` raised by plugin code is the plugin's own explanation and passes through
untouched; ``KeyboardInterrupt`` and ``SystemExit`` are never caught. The ``PluginCodeError`` carries the
original traceback too, so that a tool reading its innermost frame (the conformance kit's "at FILE:LINE")
still finds the plugin's own line.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import tempfile
import traceback
from pathlib import Path
from typing import Any

from coupler.errors import CouplerError, PluginError

log = logging.getLogger("coupler")

#: the longest error text kept in the one line (an exception may print a whole array)
MAX_ERROR_TEXT = 400


class PluginCodeError(PluginError):
    """Plugin code raised during a run; ``traceback_file`` holds the traceback the message points at."""

    exit_status = 1  # a fault of the plugin's code, not of the user's input

    def __init__(self, message: str, traceback_file: Path | None = None):
        super().__init__(message)
        self.traceback_file = traceback_file


def plugin_label(info) -> str:
    """``plugin 'NAME' (DISTRIBUTION VERSION)`` for a ``PluginInfo``."""
    return f"plugin {info.name!r} ({info.distribution} {info.version})"


def component_label(manager, kind: str, name: str) -> str:
    """``KIND 'NAME' (plugin PLUGIN, DISTRIBUTION VERSION)`` for a registered component."""
    info = manager.component_plugin(kind, name)
    return f"{kind} {name!r} (plugin {info.name}, {info.distribution} {info.version})"


def error_text(exc: BaseException) -> str:
    """The exception as one line: ``Type: message``, newlines folded, cut at ``MAX_ERROR_TEXT``."""
    text = traceback.format_exception_only(type(exc), exc)[0]
    text = " ".join(line.strip() for line in text.splitlines() if line.strip())
    return text if len(text) <= MAX_ERROR_TEXT else text[:MAX_ERROR_TEXT] + " ..."


def _log_files(run_dir: Path | None) -> list[logging.FileHandler]:
    """The file handlers the ``coupler`` logger's records reach that write inside ``run_dir`` (Hydra's job
    log). A handler elsewhere (a previous in-process run's) is not this run's log."""
    if run_dir is None:
        return []
    inside = Path(run_dir).resolve()
    handlers, logger = [], log
    while logger is not None:
        handlers += [h for h in logger.handlers if isinstance(h, logging.FileHandler)]
        logger = logger.parent if logger.propagate else None
    return [h for h in handlers if Path(h.baseFilename).resolve().is_relative_to(inside)]


def record_traceback(exc: BaseException, headline: str, run_dir: Path | None = None) -> Path:
    """Write ``headline`` and ``exc``'s traceback to the run's log file, or to a new temporary file; return
    the file."""
    handlers = _log_files(run_dir)
    if handlers:
        record = log.makeRecord(log.name, logging.ERROR, __file__, 0, "%s", (headline,),
                                (type(exc), exc, exc.__traceback__))
        for handler in handlers:
            handler.handle(record)
        return Path(handlers[0].baseFilename)
    with tempfile.NamedTemporaryFile("w", prefix="coupler-traceback-", suffix=".log", delete=False) as file:
        file.write(f"{headline}\n{''.join(traceback.format_exception(type(exc), exc, exc.__traceback__))}")
    return Path(file.name)


def fault(label: str, step: str, exc: BaseException, run_dir: Path | None = None) -> PluginCodeError:
    """The ``PluginCodeError`` for ``exc``, raised by ``label``'s code in ``step``; records the traceback."""
    headline = f"{label} failed in {step}: {error_text(exc)}"
    where = record_traceback(exc, headline, run_dir)
    return PluginCodeError(f"{headline}; the traceback is in {where}", where)


@contextlib.contextmanager
def blamed(label: str, step: str, run_dir: Path | None = None):
    """Run plugin code: an exception (not a ``CouplerError``) becomes a ``PluginCodeError`` naming ``label``."""
    try:
        yield
    except CouplerError:
        raise
    except Exception as exc:
        raise fault(label, step, exc, run_dir).with_traceback(exc.__traceback__) from exc


class BlamedModel:
    """A model as the core's measuring code sees it: ``predict`` and ``predict_proba`` are blamed on its
    component; everything else is the model's own. (Plugins are handed the model itself.)"""

    def __init__(self, model: Any, label: str, run_dir: Path | None = None):
        self._model, self._label, self._run_dir = model, label, run_dir

    def __getattr__(self, name: str) -> Any:
        return getattr(self._model, name)

    def predict(self, X):
        with blamed(self._label, "predict", self._run_dir):
            return self._model.predict(X)

    def predict_proba(self, X):
        with blamed(self._label, "predict_proba", self._run_dir):
            return self._model.predict_proba(X)


def _codes(function) -> set:
    """The code objects a call of ``function`` runs: its own, and the wrapped function's (a decorated one)."""
    codes = {getattr(function, "__code__", None)}
    with contextlib.suppress(Exception):
        codes.add(getattr(inspect.unwrap(function), "__code__", None))
    return codes - {None}


def raising_implementation(exc: BaseException, implementations) -> Any | None:
    """The hook implementation (pluggy ``HookImpl``) whose code raised ``exc``: the innermost frame of the
    traceback that runs one of their functions (matched by code object). None if no frame does."""
    owners: dict[Any, list] = {}
    for impl in implementations:
        for code in _codes(impl.function):
            owners.setdefault(code, []).append(impl)
    culprit, frame = None, exc.__traceback__
    while frame is not None:
        candidates = owners.get(frame.tb_frame.f_code, [])
        if len(candidates) == 1:  # one code shared by several implementations (a decorator's) names no one
            culprit = candidates[0]
        frame = frame.tb_next
    return culprit


class BlamedHooks:
    """``run.hooks``: the plugin manager's hook relay, where an exception from a hook implementation becomes
    a ``PluginCodeError`` naming the plugin, or the callback component, whose implementation raised.

    ``callbacks`` maps ``id(callback object)`` to its label (``component_label``): callbacks are registered
    with pluggy under generated names, so the plugin behind them is known only to the run."""

    def __init__(self, manager, run_dir: Path | None = None, callbacks: dict[int, str] | None = None):
        self._manager, self._run_dir, self._callbacks = manager, run_dir, dict(callbacks or {})

    def __getattr__(self, hook: str) -> _BlamedHook:
        return _BlamedHook(self, hook, getattr(self._manager.hooks.hook, hook))

    def label(self, impl, implementations) -> str:
        if impl is None:
            names = sorted({i.plugin_name for i in implementations if i.plugin_name in self._manager.plugins})
            return f"one of the plugins {', '.join(names) or '(none)'}"
        if id(impl.plugin) in self._callbacks:
            return self._callbacks[id(impl.plugin)]
        info = self._manager.plugins.get(impl.plugin_name)
        return plugin_label(info) if info is not None else f"plugin {impl.plugin_name!r}"


class _BlamedHook:
    """One hook of ``BlamedHooks``: called like pluggy's ``HookCaller``; its other attributes are the caller's."""

    def __init__(self, hooks: BlamedHooks, name: str, caller):
        self._hooks, self._name, self._caller = hooks, name, caller

    def __getattr__(self, attribute: str) -> Any:
        return getattr(self._caller, attribute)

    def __call__(self, **kwargs):
        try:
            return self._caller(**kwargs)
        except CouplerError:
            raise
        except Exception as exc:
            implementations = self._caller.get_hookimpls()
            label = self._hooks.label(raising_implementation(exc, implementations), implementations)
            raise fault(label, self._name, exc, self._hooks._run_dir).with_traceback(exc.__traceback__) from exc
