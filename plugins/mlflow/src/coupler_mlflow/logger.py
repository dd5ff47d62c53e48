"""The background process that logs runs into MLflow (``tracking.mlflow.synchronous=false``, the default):
``python -P -m coupler_mlflow.logger``, started by ``coupler_mlflow.tracker.BackgroundLogger`` in the training
process, one per process.

It reads one JSON event per line from its stdin, applies each in the order sent (``coupler_mlflow.recorder.Recorder``),
answers ``{"event": "flush", "token": N}`` with the line ``flushed N`` on its stdout once every earlier event is
logged, and ends when its stdin closes (the training process has ended) and every event is logged. It runs at a
lower priority (``nice`` 10): where the training process wants every core, the logging waits. A thread reads
stdin while MLflow is imported, so the training process never waits on the pipe. It has no terminal: what it has
to say about a run (the store refused it, a call failed) goes into the run's ``train.log``, as a line of the same
format as the run's own; nothing is written where the run directory is gone.
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
    if hasattr(os, "nice"):
        os.nice(10)  # the training process comes first where both want a core
    lines: queue.SimpleQueue = queue.SimpleQueue()
    threading.Thread(target=_read, args=(sys.stdin.buffer, lines), daemon=True).start()
    from coupler_mlflow.recorder import Recorder

    recorder = Recorder(warn=append_to_log)
    while (line := lines.get()) is not None:
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if event.get("event") == "flush":
            _answer(f"flushed {event.get('token')}")
            continue
        try:
            recorder.apply(event)
        except Exception as exc:  # the store refused the run (StoreError), or a fault of this plugin's: its run's log
            directory = event.get("directory") or recorder.runs.pop(event.get("key"), {}).get("directory")
            append_to_log(directory, f"tracking=mlflow: {exc if event.get('event') == 'start' else repr(exc)}; "
                                     f"the run is not tracked")


def _read(stream, lines: queue.SimpleQueue) -> None:
    for line in stream:
        lines.put(line)
    lines.put(None)


def _answer(text: str) -> None:
    try:
        sys.stdout.write(text + "\n")
        sys.stdout.flush()
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
