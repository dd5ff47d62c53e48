"""The run directory: its layout, files written atomically, and the manifest that seals a finished run.

Layout::

    RUN_DIR/
      config.yaml          the resolved config
      overrides.yaml       the command-line overrides that composed it
      metrics.json         {"val": {name: number}, "test": {name: number}}
      history.csv          per-epoch metrics, for iterative engines
      confusion_matrix_{val,test}.csv, predictions_test.csv
      preprocessor.json    the fitted preprocessing (plain JSON)
      model/               the model's own files (Model.save)
      exports/             exporters' output
      train.log            the log
      manifest.json        written last: components, versions, feature schema, checksums

A directory without ``manifest.json`` is not a finished run. ``coupler evaluate`` and ``coupler predict``
refuse it, and refuse a run whose files changed since (checksums).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from coupler.errors import CouplerError

MANIFEST = "manifest.json"
#: files that change after the run finished: not checksummed
UNSEALED = {MANIFEST, "train.log"}


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that a reader sees the old file or the whole new one, never a part."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the user's usual mode
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
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
    """sha256 of every file of the run, by path relative to it (the log excluded)."""
    run_dir = Path(run_dir)
    files = {}
    for path in sorted(run_dir.rglob("*")):
        relative = path.relative_to(run_dir).as_posix()
        if path.is_file() and relative not in UNSEALED:
            files[relative] = sha256(path)
    return files


def read_manifest(run_dir: Path) -> dict:
    """The manifest of a finished run, after checking that every file it lists is unchanged."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise CouplerError(f"run directory {str(run_dir)!r} does not exist.")
    manifest_path = run_dir / MANIFEST
    if not manifest_path.is_file():
        raise CouplerError(
            f"{str(run_dir)!r} is not a finished run: it has no {MANIFEST}. Give the directory of a run that "
            f"`coupler train` completed."
        )
    manifest = json.loads(manifest_path.read_text())
    for relative, expected in manifest["files"].items():
        path = run_dir / relative
        if not path.is_file():
            raise CouplerError(f"run {str(run_dir)!r} is incomplete: {relative} is missing.")
        if sha256(path) != expected:
            raise CouplerError(
                f"run {str(run_dir)!r}: {relative} changed since the run finished (checksum mismatch); "
                f"refusing to load it."
            )
    return manifest
