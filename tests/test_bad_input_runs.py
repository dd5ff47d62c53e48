"""The bad-input corpus, run directories: a manifest that protects itself, nothing of the user's destroyed,
every interruption and fault one line with no half-written run (issue #13, points 2 to 4)."""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from coupler.testing import CliResult, cli_in_a_forked_process
from tests.corpus import refused, untouched


@pytest.fixture
def run(iris_run, tmp_path) -> Path:
    """A copy of the shared iris run, to tamper with."""
    return Path(shutil.copytree(iris_run, tmp_path / "copy"))


# the names of the code under test are imported where they are used, so that the corpus also runs (and
# counts its outcomes) against a Coupler without them
LOCK = ".coupler.lock"


def edit_manifest(run: Path, change, reseal: bool) -> None:
    manifest = json.loads((run / "manifest.json").read_text())
    change(manifest)
    if reseal and "seal" in manifest:  # as someone tampering on purpose would
        from coupler.run_directory import seal

        manifest["seal"] = seal(manifest)
    (run / "manifest.json").write_text(json.dumps(manifest))


@pytest.fixture
def rows(tmp_path) -> Path:
    path = tmp_path / "rows.csv"
    path.write_text("sepal length (cm),sepal width (cm),petal length (cm),petal width (cm)\n5.1,3.5,1.4,0.2\n")
    return path


# --- 2. the manifest protects itself -----------------------------------------------------------------------

@pytest.mark.parametrize("command", ["evaluate", "predict"])
def test_reordered_classes_are_refused(run, coupler_cli, rows, tmp_path, command):
    edit_manifest(run, lambda m: m["classes"].reverse(), reseal=False)
    args = [str(run)] if command == "evaluate" else [str(run), str(rows), str(tmp_path / "out.csv")]
    with untouched(run, rows):
        refused(coupler_cli(command, *args), "manifest.json was edited since the run finished", "Train the run again")
    assert not (tmp_path / "out.csv").exists()


def test_an_emptied_file_list_is_refused_even_when_resealed(run, coupler_cli):
    edit_manifest(run, lambda m: m.update(files={}), reseal=True)
    with untouched(run):
        refused(coupler_cli("evaluate", str(run)), "its manifest lists no config.yaml", "Train the run again")


def test_a_file_the_run_did_not_write_is_refused(run, coupler_cli):
    (run / "model" / "pytorch_model.bin").write_bytes(b"planted")
    with untouched(run):
        refused(coupler_cli("evaluate", str(run)), "holds files the run did not write: model/pytorch_model.bin",
                "Move them out")


def test_a_listed_path_outside_the_run_is_refused(run, coupler_cli, tmp_path):
    (tmp_path / "outside").write_text("x")
    edit_manifest(run, lambda m: m["files"].update({"../outside": "0" * 64}), reseal=True)
    with untouched(run):
        refused(coupler_cli("evaluate", str(run)), "lists '../outside', which is not a file of the run")


def test_a_linked_file_is_refused(run, coupler_cli):
    target = run.parent / "elsewhere.json"
    shutil.move(run / "preprocessor.json", target)
    (run / "preprocessor.json").symlink_to(target)
    refused(coupler_cli("evaluate", str(run)), "preprocessor.json is a link")


@pytest.mark.parametrize("text, fragment", [
    ("{not json", "manifest.json is not valid JSON"),
    ("[1, 2]", "is not a Coupler manifest"),
], ids=["garbage", "not-an-object"])
def test_a_manifest_that_is_not_one_is_refused(run, coupler_cli, text, fragment):
    (run / "manifest.json").write_text(text)
    refused(coupler_cli("evaluate", str(run)), fragment)


def test_a_run_sealed_before_the_manifest_sealed_itself_is_refused(run, coupler_cli):
    edit_manifest(run, lambda m: (m.update(format=1), m.pop("seal")), reseal=False)
    refused(coupler_cli("evaluate", str(run)), "has format 1", "train them again")


# --- 3. nothing of the user's is destroyed -----------------------------------------------------------------

def test_predict_refuses_an_output_that_exists_unless_told(iris_run, coupler_cli, rows, tmp_path):
    out = tmp_path / "mine.csv"
    out.write_text("precious\n")
    with untouched(out, rows):
        refused(coupler_cli("predict", str(iris_run), str(rows), str(out)), "exists", "--overwrite")
    assert coupler_cli("predict", str(iris_run), str(rows), str(out), "--overwrite").rc == 0
    assert "prediction" in out.read_text()


def test_predict_never_writes_over_its_input(iris_run, coupler_cli, rows):
    with untouched(rows):
        refused(coupler_cli("predict", str(iris_run), str(rows), str(rows), "--overwrite"), "is the input file")


def test_predict_never_writes_inside_a_run(run, coupler_cli, rows):
    with untouched(run):
        refused(coupler_cli("predict", str(run), str(rows), str(run / "model" / "out.csv")),
                "lies inside the run directory", "outside it")


def test_predict_into_a_missing_directory(iris_run, coupler_cli, rows, tmp_path):
    refused(coupler_cli("predict", str(iris_run), str(rows), str(tmp_path / "nowhere" / "out.csv")),
            "does not exist; create it first")
    assert not (tmp_path / "nowhere").exists()


def interrupted_run(directory: Path, *extra: str) -> Path:
    """A directory as an interrupted torch run leaves it (its lock unlocked, its overrides, a checkpoint)."""
    (directory / "checkpoints").mkdir(parents=True)
    (directory / "checkpoints" / "last.ckpt").write_bytes(b"checkpoint")
    (directory / "overrides.yaml").write_text("".join(f"- {o}\n" for o in ["model=cnn", *extra]))
    (directory / LOCK).write_text(json.dumps({"pid": 1, "host": "h", "started": 0}))
    return directory


def test_resume_refuses_a_directory_holding_other_files(coupler_cli, tmp_path):
    directory = interrupted_run(tmp_path / "mine")
    (directory / "thesis.txt").write_text("precious")
    with untouched(directory):
        refused(coupler_cli("train", f"resume={directory}"), "holds thesis.txt, which a Coupler run does not write",
                "left as it is")
    assert sorted(p.name for p in directory.iterdir()) == sorted([LOCK, "checkpoints", "overrides.yaml", "thesis.txt"])


def test_resume_replays_no_hydra_setting_from_the_run_directory(coupler_cli, tmp_path):
    directory = interrupted_run(tmp_path / "run", "+hydra.callbacks.x._target_=os.getpid")
    with untouched(directory):
        refused(coupler_cli("train", f"resume={directory}"), "overrides.yaml sets +hydra.callbacks.x._target_",
                "never Hydra's")


def test_a_run_still_training_is_locked(run, coupler_cli, tmp_path):
    from coupler.run_directory import RunLock, RunLockedError

    directory = interrupted_run(tmp_path / "live")
    (directory / LOCK).unlink()
    lock = RunLock.claim(directory)  # this process trains it
    try:
        with pytest.raises(RunLockedError, match="is being trained by process"):
            RunLock.claim(directory)
        with untouched(directory):
            refused(coupler_cli("train", f"resume={directory}"), "the run is still training (process")
            refused(coupler_cli("train", f"hydra.run.dir={directory}"), "is being trained by process")
        held = RunLock.claim(run)  # a run being sealed: manifest written, lock still held
        refused(coupler_cli("evaluate", str(run)), "is still being written by process", "wait until it finishes")
        held.release()
        assert coupler_cli("evaluate", str(run)).rc == 0, "a released lock no longer refuses"
    finally:
        lock.release()


def test_a_lock_left_by_a_killed_process_is_stale(coupler_cli, tmp_path):
    from coupler.run_directory import RunLock

    directory = tmp_path / "killed"
    directory.mkdir()
    code = "import sys, time; from coupler.run_directory import RunLock; RunLock.claim(sys.argv[1]); print('held', flush=True); time.sleep(60)"
    process = subprocess.Popen([sys.executable, "-c", code, str(directory)], stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "held"
    refused(coupler_cli("train", f"hydra.run.dir={directory}"), "is being trained by process")
    process.kill()
    process.wait()
    refused(coupler_cli("train", f"hydra.run.dir={directory}"), "holds an interrupted run", "resume=")
    RunLock.claim(directory, resume=True).release()  # a resume takes the stale lock over


@pytest.mark.slow
def test_two_runs_started_at_once_in_one_directory(coupler_cli, tmp_path):
    errors = [tmp_path / f"errors{i}.txt" for i in range(2)]
    processes = [cli_in_a_forked_process("train", "hydra.run.dir=run", cwd=tmp_path, output=tmp_path / f"out{i}.txt",
                                         errors=errors[i]) for i in range(2)]
    outcomes = sorted((p.wait(timeout=180), e.read_text()) for p, e in zip(processes, errors))
    assert [rc for rc, _ in outcomes] == [0, 2], outcomes
    assert ("is being trained by process" in outcomes[1][1] or "already holds a finished run" in outcomes[1][1])
    evaluated = coupler_cli("evaluate", "run")
    assert evaluated.rc == 0, evaluated.err
    assert "data iris" in (tmp_path / "run" / "train.log").read_text(), "the winner's log is kept"


def test_a_temporary_file_left_by_a_killed_predict_is_removed_and_named(iris_run, rows, coupler_cli, tmp_path):
    out = tmp_path / "out.csv"
    # a predict that stops forever just before its output replaces the temporary file, then is killed
    code = ("import os, sys, time; os.replace = lambda *a: time.sleep(60); from coupler.cli import main; "
            "main(sys.argv[1:])")
    process = subprocess.Popen([sys.executable, "-c", code, "predict", str(iris_run), str(rows), str(out)],
                               stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not list(tmp_path.glob(".out.csv.*.tmp")) and time.monotonic() < deadline:
        time.sleep(0.1)
    process.send_signal(signal.SIGKILL)
    process.wait()
    [left] = tmp_path.glob(".out.csv.*.tmp")
    result = coupler_cli("predict", str(iris_run), str(rows), str(out))
    assert result.rc == 0, result.err
    assert f"removed {left}, a temporary file left by an interrupted write" in result.err
    assert not left.exists() and out.is_file()


# --- 4. interruptions and faults: one line, no half-written run -------------------------------------------

def interrupt(directory: Path, overrides: list[str], ready) -> CliResult:
    """Start ``coupler train OVERRIDES hydra.run.dir=run`` in ``directory`` (a process forked from this one, which
    hears Ctrl-C as on a terminal), press Ctrl-C (SIGINT) once ``ready(run_dir)`` holds, and return what the
    command printed."""
    out, err = directory / "out.txt", directory / "err.txt"
    process = cli_in_a_forked_process("train", *overrides, "hydra.run.dir=run", cwd=directory, output=out, errors=err)
    deadline = time.monotonic() + 120
    while not ready(directory / "run") and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.1)
    process.send_signal(signal.SIGINT)
    process.wait(timeout=60)
    return CliResult(process.returncode, out.read_text(), err.read_text())


def fitting_for(seconds: float, line: str = "split train="):
    """A ``ready`` that holds once the run has been fitting for ``seconds`` (from the log's ``line``: the split's, or
    the torch engine's line when training starts)."""
    since = []

    def ready(run_dir: Path) -> bool:
        log = run_dir / "train.log"
        if not since and log.is_file() and line in log.read_text():
            since.append(time.monotonic())
        return bool(since) and time.monotonic() - since[0] > seconds

    return ready


@pytest.mark.parametrize("overrides", [
    ["data=breast_cancer", "model=random_forest", "model.params.n_estimators=100000"],
    ["data=breast_cancer", "model=xgboost", "model.num_boost_round=100000", "model.params.eta=0.0001"],
    # no checkpoint: Lightning's own Ctrl-C handling used to end the process with exit 1 and no word
    ["data=digits", "model=cnn", "model.width=8", "trainer.max_epochs=1000", "trainer.resumable=false"],
], ids=["sklearn", "xgboost", "cnn-before-its-first-checkpoint"])
@pytest.mark.slow
def test_ctrl_c_during_training(tmp_path, overrides):
    ready = fitting_for(0.5, "training CNN: epoch 1") if "model=cnn" in overrides else fitting_for(1.0)
    refused(interrupt(tmp_path, overrides, ready), "interrupted (Ctrl-C)",
            "half-written run directory", "was removed", rc=130)
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_ctrl_c_after_a_checkpoint_keeps_the_run_to_resume(tmp_path):
    overrides = ["data=digits", "model=cnn", "model.width=8", "trainer.max_epochs=1000", "trainer.resume_interval=0"]
    result = interrupt(tmp_path, overrides, lambda run_dir: (run_dir / "checkpoints" / "last.ckpt").is_file())
    refused(result, "interrupted (Ctrl-C)", "the run was kept; continue it with: coupler train resume=", rc=130)
    assert (tmp_path / "run" / "checkpoints" / "last.ckpt").is_file() and (tmp_path / "run" / LOCK).is_file()


def failing_fsync(after: int):
    """``os.fsync`` that fails with a full disk from its ``after``-th call on."""
    calls = []
    real = os.fsync

    def fsync(fd):
        calls.append(fd)
        if len(calls) >= after:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(fd)

    return fsync


def test_a_full_disk_during_training(coupler_cli, monkeypatch, tmp_path):
    monkeypatch.setattr(os, "fsync", failing_fsync(after=3))
    refused(coupler_cli("train", "hydra.run.dir=run"), "No space left on device", "free some space",
            "half-written run directory", "was removed", rc=1)
    assert not (tmp_path / "run").exists()


def test_a_full_disk_during_predict(iris_run, coupler_cli, rows, monkeypatch, tmp_path):
    monkeypatch.setattr(os, "fsync", failing_fsync(after=1))
    refused(coupler_cli("predict", str(iris_run), str(rows), str(tmp_path / "out.csv")), "No space left on device",
            rc=1)
    assert not list(tmp_path.glob("*out.csv*")), "no output and no temporary file"


def test_a_read_only_output_directory(iris_run, coupler_cli, rows, monkeypatch, tmp_path):
    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(tmp_path))

    monkeypatch.setattr("tempfile.mkstemp", read_only)
    refused(coupler_cli("predict", str(iris_run), str(rows), str(tmp_path / "out.csv")), "Read-only file system",
            "write somewhere else", rc=1)


def test_a_read_only_parent_of_the_run_directory(coupler_cli, monkeypatch, tmp_path):
    monkeypatch.setattr("coupler.hydra_callbacks.os.access", lambda path, mode: False)
    refused(coupler_cli("train", "hydra.run.dir=runs/new"), "hydra.run.dir=runs/new", "is read-only")
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("key", ["hydra.run.dir", "hydra.sweep.dir"])
def test_the_run_directory_under_a_file(coupler_cli, tmp_path, key):
    (tmp_path / "afile").write_text("precious")
    with untouched(tmp_path / "afile"):
        refused(coupler_cli("train", *(["-m"] if "sweep" in key else []), f"{key}=afile/run"),
                "afile is a file, not a directory", f"Choose another {key}")


def test_an_unexpected_error_is_one_line_with_its_traceback_kept_in_the_log(coupler_cli, monkeypatch, tmp_path):
    def broken_save(*args, **kwargs):
        raise ValueError("a bug in saving")

    monkeypatch.setattr("coupler.training._save", broken_save)
    refused(coupler_cli("train", "hydra.run.dir=run"), "ValueError: a bug in saving", "unexpected",
            "the traceback is in", "COUPLER_DEBUG=1", rc=1)
    assert [p.name for p in (tmp_path / "run").iterdir()] == ["train.log"], "only the log stays"
    log = (tmp_path / "run" / "train.log").read_text()
    assert "Traceback (most recent call last)" in log and "a bug in saving" in log
