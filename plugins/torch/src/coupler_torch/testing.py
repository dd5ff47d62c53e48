"""Test helpers for plugins on the torch engine: a run killed mid-training must resume to the same numbers.

    from coupler_torch.testing import epoch_at_least, kill_and_resume

    def test_my_model_resumes(tmp_path):
        checkpoint = kill_and_resume(tmp_path, ["data=wine", "model=my_model", "trainer.max_epochs=10",
                                                "trainer.resume_interval=0"], killable=epoch_at_least(3))
        assert 3 <= checkpoint["epoch"] < 9
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from coupler.testing import read_metrics


def coupler_train(*args: str, log: Path) -> subprocess.Popen:
    """``coupler train ARGS`` in a new process writing stdout and stderr to the file ``log`` (a pipe nobody
    reads would stall a chatty run), with one torch thread: the helper trains two runs side by side, and their
    thread pools would otherwise fight over a small machine's cores (every run of a comparison gets the same
    setting, so the numbers agree)."""
    with open(log, "w") as output:
        return subprocess.Popen([sys.executable, "-m", "coupler.cli", "train", *args], stdout=output,
                                stderr=subprocess.STDOUT, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})


def epoch_at_least(epoch: int) -> Callable[[Path], bool]:
    """A ``killable`` test: ``last.ckpt`` exists and holds epoch ``epoch`` or later."""
    import torch

    return lambda last: last.exists() and torch.load(last, weights_only=True)["epoch"] >= epoch


def kill_and_resume(directory: Path, settings: list[str], killable: Callable[[Path], bool],
                    timeout: float = 600) -> dict:
    """Train ``settings`` into ``directory/whole`` and, beside it, into ``directory/killed`` until
    ``killable(path of killed's last.ckpt)`` holds; SIGKILL that one and continue it with ``coupler train
    resume=DIR``. Asserts that the resumed run ends with the whole run's metrics.json and history.csv, drops its
    checkpoints and records the resume in config.yaml. Returns the checkpoint it resumed from (loaded with
    ``weights_only=True``: whole, never half written, and plain containers only). Each process's output is in
    ``directory/NAME.log``."""
    import torch

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    logs = {name: directory / f"{name}.log" for name in ("whole", "killed", "resumed")}

    def output(name: str) -> str:
        return logs[name].read_text()[-4000:]

    last = directory / "killed" / "checkpoints" / "last.ckpt"
    processes = []
    try:
        whole = coupler_train(*settings, f"hydra.run.dir={directory / 'whole'}", log=logs["whole"])
        killed = coupler_train(*settings, f"hydra.run.dir={directory / 'killed'}", log=logs["killed"])
        processes += [whole, killed]
        deadline = time.monotonic() + timeout
        while not killable(last):
            assert killed.poll() is None, f"the run ended before it could be killed; give it more epochs\n{output('killed')}"
            assert time.monotonic() < deadline, f"killable never held within {timeout} s\n{output('killed')}"
            time.sleep(0.02)
        os.kill(killed.pid, signal.SIGKILL)
        killed.wait()
        assert whole.wait(timeout=timeout) == 0, output("whole")
        checkpoint = torch.load(last, weights_only=True)
        assert not (directory / "killed" / "manifest.json").exists(), "a killed run must not look finished"

        resumed = coupler_train(f"resume={directory / 'killed'}", log=logs["resumed"])
        processes.append(resumed)
        assert resumed.wait(timeout=timeout) == 0, output("resumed")
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
    assert read_metrics(directory / "killed") == read_metrics(directory / "whole")
    assert (directory / "killed" / "history.csv").read_text() == (directory / "whole" / "history.csv").read_text()
    assert not (directory / "killed" / "checkpoints").exists(), "the in-progress checkpoint goes when the run ends"
    assert f"resume: {directory / 'killed'}" in (directory / "killed" / "config.yaml").read_text()
    return checkpoint
