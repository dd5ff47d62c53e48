"""Test helpers for plugins on the torch engine: a run killed mid-training must resume to the same numbers; and the
conformance rules of the engine's kinds, which the core's kit runs (``check_plugin``) for every optimizer and
scheduler a plugin registers (the ``torch`` plugin declares them with its kinds: ``register_kinds(..., checks=)``).

    from coupler_torch.testing import epoch_at_least, kill_and_resume

    def test_my_model_resumes(tmp_path):
        checkpoint = kill_and_resume(tmp_path, ["data=wine", "model=my_model", "trainer.max_epochs=10",
                                                "trainer.resume_interval=0"], killable=epoch_at_least(3))
        assert 3 <= checkpoint["epoch"] < 9

``ddp_side_by_side`` trains a data-parallel run, an interrupted and resumed one, and a one-process run at once.
"""

from __future__ import annotations

import contextlib
import math
import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from coupler.conformance import RuleBroken
from coupler.testing import read_history, read_metrics


@contextlib.contextmanager
def _step(doing: str, fix: str) -> Iterator[None]:
    """An exception raised while ``doing`` breaks the rule, with ``fix``."""
    try:
        yield
    except RuleBroken:
        raise
    except Exception as exc:
        raise RuleBroken(f"{doing} raised {type(exc).__name__}: {exc}", fix) from exc


def check_optimizer(make) -> None:
    """The ``optimizer`` kind's rule: ``make(parameters)`` returns a ``torch.optim.Optimizer`` that moves the weights
    of a quadratic downhill, and whose ``state_dict`` loads into a fresh one (a resumed run needs it)."""
    import torch

    if not callable(make):
        raise RuleBroken(f"the factory returned {type(make).__name__}", "return a callable make(parameters)")
    weight = torch.nn.Parameter(torch.tensor([1.0, -2.0, 3.0]))
    with _step("make([weight])", "make(parameters) must build an optimizer over the parameters it is given"):
        optimizer = make([weight])
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise RuleBroken(f"make(parameters) returned {type(optimizer).__name__}", "return a torch.optim.Optimizer")
    before = float((weight.detach() ** 2).sum())
    for _ in range(3):
        optimizer.zero_grad()
        (weight ** 2).sum().backward()
        with _step("optimizer.step()", "step() must update the parameters from their gradients"):
            optimizer.step()
    after = float((weight.detach() ** 2).sum())
    if not after < before:
        raise RuleBroken(f"three steps on sum(w**2) went from {before:.4g} to {after:.4g}",
                         "step against the gradient (check the sign and that the learning rate is used)")
    with _step("loading the optimizer's state_dict into a fresh one",
               "state_dict() / load_state_dict() must round-trip (torch.optim.Optimizer's do)"):
        make([torch.nn.Parameter(weight.detach().clone())]).load_state_dict(optimizer.state_dict())


def check_scheduler(make) -> None:
    """The ``scheduler`` kind's rule: ``make(optimizer, epochs=, steps_per_epoch=)`` returns ``None`` or Lightning's
    scheduler dict, which steps and round-trips its ``state_dict``."""
    import torch

    if not callable(make):
        raise RuleBroken(f"the factory returned {type(make).__name__}",
                         "return a callable make(optimizer, epochs=, steps_per_epoch=)")
    weight = torch.nn.Parameter(torch.ones(2))
    optimizer = torch.optim.SGD([weight], lr=0.1)
    with _step("make(optimizer, epochs=10, steps_per_epoch=5)", "accept the optimizer and the keyword "
                                                                "arguments epochs and steps_per_epoch"):
        made = make(optimizer, epochs=10, steps_per_epoch=5)
    if made is None:
        return
    if not isinstance(made, dict) or "scheduler" not in made:
        raise RuleBroken(f"make returned {type(made).__name__}",
                         "return None (a constant rate) or {'scheduler': ..., 'interval': 'epoch' or 'step'}")
    if made.get("interval", "epoch") not in ("epoch", "step"):
        raise RuleBroken(f"interval={made['interval']!r}", "set 'interval' to 'epoch' or 'step'")
    scheduler = made["scheduler"]
    for _ in range(3):
        optimizer.step()
        with _step("scheduler.step()", "the scheduler must step (a monitored one with a metric value)"):
            scheduler.step(1.0) if "monitor" in made else scheduler.step()
    rate = optimizer.param_groups[0]["lr"]
    if not (isinstance(rate, float) and math.isfinite(rate) and rate >= 0):
        raise RuleBroken(f"after three steps the learning rate is {rate!r}", "keep the rate a finite number >= 0")
    with _step("the scheduler's state_dict round trip", "state_dict() / load_state_dict() must round-trip"):
        scheduler.load_state_dict(scheduler.state_dict())


def coupler_train(*args: str, log: Path):
    """``coupler train ARGS`` in a new process (forked from this one: ``coupler.testing.cli_in_a_forked_process``)
    writing stdout and stderr to the file ``log``, with one torch thread: the helper trains two runs side by side,
    and their thread pools would otherwise fight over a small machine's cores (every run of a comparison gets the
    same setting, so the numbers agree). Returns the process (``pid``, ``poll``, ``wait``, ``kill``)."""
    from coupler.testing import cli_in_a_forked_process

    return cli_in_a_forked_process("train", *args, output=log, env={"OMP_NUM_THREADS": "1"})


def epoch_at_least(epoch: int) -> Callable[[Path], bool]:
    """A ``killable`` test: ``last.ckpt`` exists and holds epoch ``epoch`` or later."""
    import torch

    return lambda last: last.exists() and torch.load(last, weights_only=True)["epoch"] >= epoch


def kill_and_resume(directory: Path, settings: list[str], killable: Callable[[Path], bool],
                    timeout: float = 600) -> dict:
    """Train ``settings`` into ``directory/killed`` in a new process until ``killable(path of killed's
    last.ckpt)`` holds, and SIGKILL that process; meanwhile the uninterrupted run trains into ``directory/whole`` in
    this process. Then continue the killed run with ``coupler train resume=DIR``, in this process too (as
    ``coupler_cli`` runs a command): what the resume knows comes from the run directory alone, as in a new
    process, and an interpreter importing torch and Lightning costs more than the training. Every run computes on
    one torch thread (the number of threads may change a sum's order, so the numbers). Asserts that the resumed run
    ends with the whole run's metrics.json and history.csv, drops its checkpoints and records the resume in
    config.yaml. Returns the checkpoint it resumed from (loaded with ``weights_only=True``: whole, never half
    written, and plain containers only). The killed process's output is in ``directory/killed.log``."""
    import threading

    import torch

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    log = directory / "killed.log"
    last = directory / "killed" / "checkpoints" / "last.ckpt"
    killed = coupler_train(*settings, f"hydra.run.dir={directory / 'killed'}", log=log)
    outcome: list[str] = []  # why the watcher stopped, when it did not kill

    def kill_when_killable() -> None:
        deadline = time.monotonic() + timeout
        while not killable(last):
            if killed.poll() is not None:
                outcome.append("the run ended before it could be killed; give it more epochs")
                return
            if time.monotonic() > deadline:
                outcome.append(f"killable never held within {timeout} s")
                return
            time.sleep(0.02)
        os.kill(killed.pid, signal.SIGKILL)

    watcher = threading.Thread(target=kill_when_killable, daemon=True)
    watcher.start()
    try:
        _train_in_this_process(directory, settings, name="whole")
        watcher.join(timeout)
    finally:
        if killed.poll() is None:
            killed.kill()
        killed.wait()
    assert not outcome, f"{outcome[0]}\n{log.read_text()[-4000:]}"
    checkpoint = torch.load(last, weights_only=True)
    assert not (directory / "killed" / "manifest.json").exists(), "a killed run must not look finished"
    assert _resume_in_this_process(directory / "killed") == 0, \
        (directory / "killed" / "train.log").read_text()[-4000:]
    assert read_metrics(directory / "killed") == read_metrics(directory / "whole")
    assert read_history(directory / "killed") == read_history(directory / "whole")  # all but the seconds
    assert not (directory / "killed" / "checkpoints").exists(), "the in-progress checkpoint goes when the run ends"
    assert f"resume: {directory / 'killed'}" in (directory / "killed" / "config.yaml").read_text()
    return checkpoint


#: two CPU processes of one data-parallel job (gloo)
DDP_ON_TWO_CPUS = ("trainer.strategy=ddp", "trainer.devices=2", "trainer.accelerator=cpu")


def ddp_side_by_side(directory: Path, settings: list[str] | tuple[str, ...], ddp=DDP_ON_TWO_CPUS,
                     timeout: float = 900) -> dict:
    """Train ``settings`` three ways at once, each process on one torch thread: ``ddp`` (``settings`` plus ``ddp``,
    in a new process group), ``resumed`` (the same, interrupted with Ctrl-C, SIGINT to its process group, once its
    first epoch's ``last.ckpt`` exists, then ``coupler train resume=DIR``), and ``single`` (``settings`` in this
    process). Returns ``{"dir", "codes": {name: exit status, "interrupted" too}, "logs": {name: path},
    "checkpoint": the checkpoint the resume started from}``; a process past ``timeout`` seconds is killed and fails
    the test. The runs are directories ``ddp``, ``resumed`` and ``single`` of ``directory``."""
    import subprocess

    import pytest
    import torch

    from coupler.testing import cli_in_a_forked_process

    def train(*args: str, log: Path):  # a forked child: it imports nothing again; Lightning starts the second rank
        return cli_in_a_forked_process("train", *args, output=log, env={"OMP_NUM_THREADS": "1"}, new_session=True)

    def wait(name: str) -> int:
        try:
            return processes[name].wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(processes[name].pid, signal.SIGKILL)
            processes[name].wait()
            pytest.fail(f"{logs[name].name} ran past {timeout} s\n{logs[name].read_text()[-4000:]}")

    directory = Path(directory)
    logs = {name: directory / f"{name}.log" for name in ("ddp", "interrupted", "resumed")}
    last = directory / "resumed" / "checkpoints" / "last.ckpt"
    processes = {"ddp": train(*settings, *ddp, f"hydra.run.dir={directory / 'ddp'}", log=logs["ddp"]),
                 "interrupted": train(*settings, *ddp, f"hydra.run.dir={directory / 'resumed'}",
                                      log=logs["interrupted"])}
    try:
        deadline = time.monotonic() + timeout
        while not last.exists():
            output = logs["interrupted"].read_text()[-4000:] if logs["interrupted"].exists() else ""
            assert processes["interrupted"].poll() is None, f"the run ended before its first checkpoint\n{output}"
            assert time.monotonic() < deadline, f"no checkpoint within {timeout} s\n{output}"
            time.sleep(0.02)
        os.killpg(processes["interrupted"].pid, signal.SIGINT)
        codes = {"interrupted": wait("interrupted")}
        checkpoint = torch.load(last, weights_only=True)
        processes["resumed"] = train(f"resume={directory / 'resumed'}", log=logs["resumed"])
        codes["single"] = _cli_on_one_thread("train", *settings, f"hydra.run.dir={directory / 'single'}")
        codes.update({name: wait(name) for name in ("ddp", "resumed")})
    finally:
        for process in processes.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
    return {"dir": directory, "codes": codes, "logs": logs, "checkpoint": checkpoint}


def _cli_on_one_thread(*args: str) -> int:
    """``coupler ARGS`` in this process on one torch thread, as ``coupler_train``'s processes run; its exit status."""
    import torch

    from coupler.testing import cli_in_this_process

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return cli_in_this_process(*args)
    finally:
        torch.set_num_threads(threads)


def _resume_in_this_process(run_dir: Path) -> int:
    """``coupler train resume=RUN_DIR`` in this process on one torch thread; its exit status."""
    return _cli_on_one_thread("train", f"resume={run_dir}")


def _train_in_this_process(directory: Path, settings: list[str], name: str) -> None:
    """``train_run(directory, *settings, name=name)`` on one torch thread, as ``coupler_train`` runs (the number of
    threads may change a sum's order, so the numbers), then torch's threads as they were."""
    import torch

    from coupler.testing import train_run

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        train_run(directory, *settings, name=name)
    finally:
        torch.set_num_threads(threads)
