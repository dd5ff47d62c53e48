"""The run directory: its layout, files written atomically, and the manifest that seals a finished run.

Layout::

    RUN_DIR/
      config.yaml          the resolved config
      overrides.yaml       the command-line overrides that composed it
      metrics.json         {"val": {name: number}, "test": {name: number}, "timing": {fit_seconds, total_seconds}}
                           (and "cv": {name: {mean, std, folds}}; "test" is {} under split.measure_test=false)
      folds.csv            with cv.folds: a row per fold (repeat, fold, rows, each metric)
      history.csv          per-epoch metrics and seconds, for iterative engines
      confusion_matrix_{val,test}.csv, predictions_test.csv
      preprocessor.json    the fitted preprocessing (plain JSON)
      feature_distribution.json  each feature's training distribution (``coupler.drift``; tabular runs)
      model/               the model's own files (Model.save)
      exports/             exporters' output
      train.log            the log
      .coupler.lock        the run's lock while it trains (``RunLock``); an interrupted run keeps it, unlocked
      manifest.json        written last: components, versions, feature schema, checksums, and its own seal

A directory without ``manifest.json`` is not a finished run. ``coupler evaluate`` and ``coupler predict``
refuse it (``read_manifest``), and refuse a run whose manifest or files changed since, that lacks a file a
run needs, or that holds a file the run did not write.

What the manifest protects against: a run changed *by accident or by a careless hand* (a file edited, a class
list reordered, a file added or deleted, the manifest edited): every byte that changes a prediction is
covered by the manifest's checksums, and the manifest by its own seal (``seal``, the sha256 of the rest of
it). What it does not protect against: someone who rewrites the run *on purpose* and recomputes the
checksums and the seal. The manifest is integrity, not authenticity: that the run is the one a person
trained takes a signature or a trusted store. That is why no loader runs code from a run directory
whatever its manifest says: every plugin's ``Model.load`` reads data formats only (skops with exact
trusted types, UBJSON, safetensors), never a pickle.
"""

from __future__ import annotations

import contextlib
import errno
import glob
import hashlib
import json
import logging
import os
import socket
import tempfile
import time
from pathlib import Path
from typing import Any

from coupler.errors import CouplerError

log = logging.getLogger("coupler")

MANIFEST = "manifest.json"
LOCK = ".coupler.lock"
#: files that change after the run finished (or that only a run in progress has): not checksummed
UNSEALED = {MANIFEST, "train.log", LOCK}
#: the manifest's format: 2 seals the manifest itself; 1 (Coupler before the seal) is refused
MANIFEST_FORMAT = 2
#: files every finished run has, besides at least one file under model/
REQUIRED = ("config.yaml", "preprocessor.json", "metrics.json")


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that a reader sees the old file or the whole new one, never a part."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(path) as handle:
        handle.write(data)


@contextlib.contextmanager
def atomic_output(path: Path):
    """A binary file to write ``path``'s new content into, a piece at a time (``coupler predict``'s batches): a
    temporary file beside ``path``, synced and renamed to ``path`` when the block ends, removed when it fails. A
    reader sees the old file or the whole new one, never a part."""
    path = Path(path)
    # the writer's process id in the name: a file left by a killed writer is known as such (remove_stale_temporaries)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp")
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the user's usual mode
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def write_json(path: Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=False, allow_nan=False) + "\n")


def write_csv(path: Path, frame) -> None:
    atomic_write_text(path, frame.to_csv(index=True))


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def checksums(run_dir: Path) -> dict[str, str]:
    """sha256 of every file of the run, by path relative to it (``UNSEALED`` excluded)."""
    return {relative: sha256(Path(run_dir) / relative) for relative in checksums_paths(run_dir)}


def seal(manifest: dict) -> str:
    """The sha256 of the manifest without its ``seal``, in a canonical JSON form."""
    body = {key: value for key, value in manifest.items() if key != "seal"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()).hexdigest()


def write_manifest(run_dir: Path, manifest: dict) -> None:
    """Write ``manifest`` (plain JSON values) with its format and its seal: the run is finished from here on."""
    manifest = {"format": MANIFEST_FORMAT, **{k: v for k, v in manifest.items() if k != "seal"}}
    manifest["seal"] = seal(manifest)
    write_json(Path(run_dir) / MANIFEST, manifest)


def read_manifest(run_dir: Path) -> dict:
    """The manifest of a finished run, after checking the run: no process holds it, the manifest is sealed and
    unchanged, it lists every file a run needs, every listed file is unchanged, and nothing else is there."""
    run_dir = Path(run_dir)
    shown = repr(str(run_dir))
    if not run_dir.is_dir():
        raise CouplerError(f"run directory {shown} does not exist.")
    manifest_path = run_dir / MANIFEST
    holder = lock_holder(run_dir)
    if holder:
        raise CouplerError(f"run {shown} is still being written by {holder}; wait until it finishes.")
    if not manifest_path.is_file():
        raise CouplerError(
            f"{shown} is not a finished run: it has no {MANIFEST}. Give the directory of a run that "
            f"`coupler train` completed."
        )
    manifest = _parse_manifest(manifest_path, shown)
    files = manifest["files"]
    missing = [name for name in REQUIRED if name not in files]
    if missing or not any(name.startswith("model/") for name in files):
        what = missing[0] if missing else "any file under model/"
        raise CouplerError(f"run {shown}: its manifest lists no {what}, which every run has; the manifest is "
                           f"damaged. Train the run again.")
    for relative, expected in files.items():
        path = run_dir / relative
        if path.is_symlink():
            raise CouplerError(f"run {shown}: {relative} is a link; a run's files are its own. Refusing to load it.")
        if not path.is_file():
            raise CouplerError(f"run {shown} is incomplete: {relative} is missing.")
        if sha256(path) != expected:
            raise CouplerError(
                f"run {shown}: {relative} changed since the run finished (checksum mismatch); "
                f"refusing to load it."
            )
    extra = sorted(set(checksums_paths(run_dir)) - set(files))
    if extra:
        exports = all(name.startswith("exports/") for name in extra)  # an interrupted `coupler export` left them
        raise CouplerError(f"run {shown} holds files the run did not write: {', '.join(extra[:5])}"
                           f"{' ...' if len(extra) > 5 else ''}; refusing to load it. "
                           + ("An interrupted `coupler export` left them: run it again (it removes them first), or "
                              "delete them." if exports else "Move them out of the run directory."))
    return manifest


def _parse_manifest(path: Path, shown: str) -> dict:
    """The manifest's JSON, its format, its seal and the shape of its file list, checked."""
    try:
        manifest = json.loads(path.read_bytes())
    except (ValueError, UnicodeDecodeError) as exc:
        raise CouplerError(f"run {shown}: {MANIFEST} is not valid JSON ({exc}); the run is damaged. Train it "
                           f"again.") from None
    if not isinstance(manifest, dict):
        raise CouplerError(f"run {shown}: {MANIFEST} is not a Coupler manifest (a JSON object).")
    if manifest.get("format") != MANIFEST_FORMAT or not isinstance(manifest.get("seal"), str):
        raise CouplerError(
            f"run {shown}: {MANIFEST} has format {manifest.get('format')!r} and this Coupler reads format "
            f"{MANIFEST_FORMAT}, whose manifest is sealed (runs sealed before Coupler 0.1.1 are not: train them "
            f"again)."
        )
    if seal(manifest) != manifest["seal"]:
        raise CouplerError(f"run {shown}: {MANIFEST} was edited since the run finished (its seal does not match "
                           f"its content); refusing to load it. Train the run again.")
    files = manifest.get("files")
    if not isinstance(files, dict) or not all(isinstance(v, str) for v in files.values()):
        raise CouplerError(f"run {shown}: {MANIFEST}'s files are not a mapping of paths to checksums.")
    for relative in files:
        parts = Path(relative).parts
        if not parts or Path(relative).is_absolute() or ".." in parts or relative in UNSEALED:
            raise CouplerError(f"run {shown}: {MANIFEST} lists {relative!r}, which is not a file of the run.")
    return manifest


def checksums_paths(run_dir: Path) -> list[str]:
    """Every file of the run that the manifest seals, by path relative to it (links are listed, never followed)."""
    paths = []
    for root, directories, files in os.walk(run_dir):
        for name in files + [d for d in directories if os.path.islink(os.path.join(root, d))]:
            relative = Path(root, name).relative_to(run_dir).as_posix()
            if relative not in UNSEALED:
                paths.append(relative)
    return sorted(paths)


#: what a run writes into its directory before it is sealed (``unknown_entries``: anything else is not its own)
RUN_ENTRIES = frozenset({"config.yaml", "overrides.yaml", "metrics.json", "preprocessor.json", "history.csv",
                         "feature_importances.csv", "predictions_test.csv", "baseline.json", "folds.csv", "model",
                         "exports", "plots", "train.log", LOCK, "feature_distribution.json"})


def unknown_entries(run_dir: Path, engine_entries: frozenset[str] = frozenset()) -> list[str]:
    """The names in ``run_dir`` that no run writes there: its files and folders are ``RUN_ENTRIES``, the
    per-split metric arrays (``NAME_val.csv``, ``NAME_test.csv``), the model's staging folder (``.model-*``),
    temporary files (``.NAME.*.tmp``) and ``engine_entries`` (where an engine keeps its resume point)."""
    def known(name: str) -> bool:
        return (name in RUN_ENTRIES or name in engine_entries or name.endswith(("_val.csv", "_test.csv"))
                or name.startswith(".model-") or (name.startswith(".") and name.endswith(".tmp")))

    return sorted(entry.name for entry in Path(run_dir).iterdir() if not known(entry.name))


# --- the lock of a run in progress -----------------------------------------------------------------------

try:  # POSIX: the kernel drops a flock when its process ends, however it ends (SIGKILL too)
    import fcntl
except ImportError:  # pragma: no cover - Windows: a lock is live while its process id runs
    fcntl = None

#: a lock file this young and still empty is being written by its claimant, not left by a dead one
CLAIM_GRACE_SECONDS = 5.0


class RunLockedError(CouplerError):
    """A run directory is claimed by another run, live or interrupted."""


class RunLock:
    """``RUN_DIR/.coupler.lock``: who trains the run (process, host, start), held with ``flock`` for as long
    as its process lives. ``claim`` creates it atomically, so two runs started at one moment in one directory
    cannot both claim it; a lock whose process died (a SIGKILL, a power cut) is stale, and only
    ``claim(..., resume=True)`` takes it over, or ``claim(..., finished=True)`` (``coupler export``) when the run
    is finished (it has its manifest: the stale lock is a killed export's, with nothing to resume). ``release``
    removes it once the run is sealed; ``release(keep=True)`` leaves it, unlocked, in an interrupted run that
    ``resume=`` can continue."""

    def __init__(self, path: Path, fd: int):
        self.path, self.fd = path, fd

    @classmethod
    def claim(cls, run_dir: Path, resume: bool = False, finished: bool = False) -> RunLock:
        path = Path(run_dir) / LOCK
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            holder = lock_holder(run_dir)
            if holder or not (resume or (finished and (Path(run_dir) / MANIFEST).is_file())):
                raise RunLockedError(
                    f"{run_dir} is being trained by {holder}; choose another directory (hydra.run.dir=...)"
                    if holder else f"{run_dir} holds an interrupted run; continue it with coupler train "
                                   f"resume={run_dir}, or choose another directory (hydra.run.dir=...)") from None
            fd = os.open(path, os.O_RDWR)
        if not _try_lock(fd):  # another resume took the stale lock a moment ago
            os.close(fd)
            raise RunLockedError(f"{run_dir} is being resumed by another process; choose another directory.")
        record = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time()}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(record).encode(), 0)
        os.fsync(fd)
        return cls(path, fd)

    def release(self, keep: bool = False) -> None:
        if self.fd < 0:
            return
        if not keep:
            self.path.unlink(missing_ok=True)
        os.close(self.fd)  # drops the flock
        self.fd = -1


def _try_lock(fd: int) -> bool:
    if fcntl is None:  # pragma: no cover
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except OSError as exc:
        if exc.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
            return False
        raise


def lock_holder(run_dir: Path) -> str | None:
    """Who holds the run's lock ("process 123 on host h since 2026-11-30 11:00"), or None: no lock, or a
    stale one whose process is gone."""
    path = Path(run_dir) / LOCK
    try:
        fd = os.open(path, os.O_RDONLY)
    except (FileNotFoundError, NotADirectoryError):
        return None
    try:
        text = os.read(fd, 4096).decode(errors="replace")
        try:
            record = json.loads(text)
            record = record if isinstance(record, dict) else {}
        except ValueError:
            record = {}
        if fcntl is not None:
            if _try_lock(fd):  # nobody holds it: stale, unless its claimant is still writing it
                fcntl.flock(fd, fcntl.LOCK_UN)
                young = time.time() - os.fstat(fd).st_mtime < CLAIM_GRACE_SECONDS
                if record or not young:
                    return None
        elif not process_alive(record.get("pid")):  # pragma: no cover
            return None
    finally:
        os.close(fd)
    started = record.get("started")
    when = f" since {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(started))}" if started else ""
    return f"process {record.get('pid', '?')} on host {record.get('host', '?')}{when}"


def process_alive(pid) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def remove_stale_temporaries(path: Path) -> list[Path]:
    """Remove the temporary files that a killed writer of ``path`` left beside it (``atomic_write_bytes``
    names them ``.NAME.PID.XXXX.tmp``); each removal is logged by name. Returns the removed paths."""
    path = Path(path)
    removed = []
    for candidate in glob.glob(os.path.join(glob.escape(str(path.parent)), f".{glob.escape(path.name)}.*.tmp")):
        pid = Path(candidate).name[len(path.name) + 2:].split(".", 1)[0]
        if pid.isdigit() and not process_alive(int(pid)):
            Path(candidate).unlink(missing_ok=True)
            log.warning("removed %s, a temporary file left by an interrupted write of %s (process %s)",
                        candidate, path, pid)
            removed.append(Path(candidate))
    return removed


def inside_run(path: Path) -> Path | None:
    """The run directory (finished, or in progress) that ``path`` lies in, or None."""
    for parent in Path(path).resolve().parents:
        if (parent / MANIFEST).is_file() or (parent / LOCK).is_file():
            return parent
    return None


def check_new_file(output: Path, overwrite: bool, what: str, example: str, input_path: Path | None = None) -> None:
    """Refuse an output file that would destroy something or cannot be written: the input itself, a file inside a
    run directory (sealed: a file added there makes the run unloadable), a directory, an existing file (unless
    ``overwrite``), or a path whose directory does not exist. ``what`` names the output in the messages (``the
    predictions``), ``example`` a file name to give instead (``out.csv``)."""
    output = Path(output)
    shown = repr(str(output))
    if input_path is not None and output.exists() and Path(input_path).exists() \
            and output.resolve() == Path(input_path).resolve():
        raise CouplerError(f"output {shown} is the input file; write {what} to a new file.")
    run = inside_run(output)
    if run is not None:
        raise CouplerError(f"output {shown} lies inside the run directory {str(run)!r}, which is sealed (a file added "
                           f"there makes the run unloadable); write {what} outside it.")
    if output.is_dir():
        raise CouplerError(f"output {shown} is a directory; give a file name ({example}).")
    if output.exists() and not overwrite:
        raise CouplerError(f"output {shown} exists; give a new file name, or --overwrite to replace it.")
    if not output.absolute().parent.is_dir():
        raise CouplerError(f"output {shown}: the directory {str(output.absolute().parent)!r} does not exist; "
                           f"create it first.")
