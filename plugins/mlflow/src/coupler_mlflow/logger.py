"""The background process that logs runs into MLflow (``tracking.mlflow.synchronous=false``, the default):
``python -P -m coupler_mlflow.logger``, started by ``coupler_mlflow.tracker.BackgroundLogger`` in the training
process, one per process.

It reads one JSON event per line from its stdin and applies each in the order sent
(``coupler_mlflow.recorder.Recorder``). It answers ``{"event": "flush", "token": N}`` with the line ``flushed N`` on
its stdout once every earlier event is logged; its first line there is ``pid N``, its process id once detached. It
ends when its stdin closes (the training process has ended) and every event is logged. It detaches from the
training process, runs at a lower priority (``_detach``), and imports MLflow only once the training process has
ended, or after ``HOLD_SECONDS`` (``_hold``). A thread reads stdin meanwhile, so the training process never waits
on the pipe. It has no terminal: what it has to say about a run (the store refused
it, a call failed) goes into the run's ``train.log``, as a line of the same format as the run's own; nothing is
written where the run directory is gone. Its stderr (a crash, MLflow's own warnings) is appended to the
``train.log`` of the run that started it.
"""

from __future__ import annotations

import json
import os
import queue
import sys
import threading
import time
from pathlib import Path


def main() -> None:
    _detach()
    answers = _answers()
    _answer(answers, f"pid {os.getpid()}")  # the detached logger's own
    lines: queue.SimpleQueue = queue.SimpleQueue()
    threading.Thread(target=_read, args=(sys.stdin.buffer, lines), daemon=True).start()
    held = _hold(lines)
    from coupler_mlflow.recorder import Recorder

    recorder = Recorder(warn=append_to_log)
    while (line := held.pop(0) if held else lines.get()) is not None:
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if event.get("event") == "metrics":
            event = _merged(event, held, lines)
        if event.get("event") == "flush":
            _answer(answers, f"flushed {event.get('token')}")
            continue
        try:
            recorder.apply(event)
        except Exception as exc:  # the store refused the run (StoreError), or a fault of this plugin's: its run's log
            directory = event.get("directory") or recorder.runs.pop(event.get("key"), {}).get("directory")
            append_to_log(directory, f"tracking=mlflow: {exc if event.get('event') == 'start' else repr(exc)}; "
                                     f"the run is not tracked")


#: seconds the logger holds the events before it imports MLflow, unless the training process ends (or flushes) first
HOLD_SECONDS = 10.0


def _hold(lines: queue.SimpleQueue) -> list:
    """The events that come within ``HOLD_SECONDS`` of the start, or until the training process has ended or asks
    for a flush: a short run (most runs of a search, a default run) ends before MLflow is even imported, so that its
    import and store (seconds of CPU) never compete with the training for a core; a long run appears in MLflow
    after ``HOLD_SECONDS``, and its events are logged as they come from then on."""
    held, deadline = [], time.monotonic() + HOLD_SECONDS
    while (left := deadline - time.monotonic()) > 0:
        try:
            line = lines.get(timeout=left)
        except queue.Empty:
            break
        held.append(line)
        if line is None or _is_flush(line):
            break
    return held


#: the most epochs' metrics events merged into one call (``_merged``)
MOST_MERGED = 500


def _merged(event: dict, held: list, lines: queue.SimpleQueue) -> dict:
    """``event`` (``metrics``) and the ``metrics`` events of the same run queued right after it, as one event: a run
    whose epochs take milliseconds sends them faster than one store call per epoch logs them. The first other line
    is put back in front."""
    entries = [event]
    while len(entries) < MOST_MERGED:
        try:
            line = held.pop(0) if held else lines.get_nowait()
        except queue.Empty:
            break
        try:
            following = json.loads(line) if line is not None else None
        except ValueError:
            continue
        if following is None or following.get("event") != "metrics" or following.get("key") != event["key"]:
            held.insert(0, line)
            break
        entries.append(following)
    return event if len(entries) == 1 else {"event": "metrics", "key": event["key"], "entries": entries}


def _is_flush(line: bytes) -> bool:
    try:
        return json.loads(line).get("event") == "flush"
    except (ValueError, AttributeError):
        return False


def _detach() -> None:
    """No child of the training process any more (where there is ``fork``): the process that was started exits at
    once and its child, adopted by init, logs; so a launcher that ends the training process's tree (joblib's, on
    an error or a Ctrl-C) does not end the logging of that run's end. The pipes are inherited. A lower priority
    (``nice`` 10): where the training wants every core, the logging waits."""
    if hasattr(os, "fork") and os.fork() > 0:
        os._exit(0)
    if hasattr(os, "nice"):
        os.nice(10)


def _answers():
    """The pipe ``flush`` answers go to, and nothing else: whatever MLflow prints to stdout goes nowhere (nobody reads
    it unless the training process flushes: it would fill the pipe and block the logger)."""
    answers = os.fdopen(os.dup(1), "w")
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.close(devnull)
    return answers


def _read(stream, lines: queue.SimpleQueue) -> None:
    try:
        for line in stream:
            lines.put(line)
    finally:
        lines.put(None)  # the training process has ended (or its pipe failed): log what came, then end


def _answer(answers, text: str) -> None:
    try:
        answers.write(text + "\n")
        answers.flush()
    except OSError:  # nobody reads any more (the training process has ended)
        pass


def append_to_log(directory: str | None, message: str) -> None:
    """One WARNING line in ``DIRECTORY/train.log``, where that log still exists."""
    log_file = Path(directory) / "train.log" if directory else None
    if log_file is None or not log_file.is_file():
        return
    now = time.time()
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(now)) + f",{int(now % 1 * 1000):03d}"
    try:
        with open(log_file, "a") as log:
            log.write(f"[{stamp}][coupler][WARNING] - {message}\n")
    except OSError:
        pass


if __name__ == "__main__":
    main()
