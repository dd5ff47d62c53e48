"""The bad-input corpus's checks, shared by every ``tests/test_bad_input*.py`` module.

A case of the corpus drives the real CLI (``coupler_cli`` in-process, or ``coupler_process`` for what depends on
a fresh interpreter, signals or the environment) with one bad input, and asserts with ``refused``:

- the exit code (2 for bad input, 1 for a fault of the machine or of plugin code, 130 for an interruption);
- exactly one ``coupler: error:`` line, holding every fragment asked for (the problem and the fix);
- no traceback on the terminal;

and, with ``untouched``, that every file that existed before the command still exists, unchanged.
"""

from __future__ import annotations

import contextlib
import hashlib
from pathlib import Path

#: the marks of a Python traceback on a terminal
TRACEBACK_MARKS = ("Traceback (most recent call last)", 'File "/')


def refused(result, *fragments: str, rc: int = 2) -> str:
    """Assert that ``result`` (a ``CliResult``) is one clear refusal; return its error line."""
    for stream in (result.err, result.out):
        assert not any(mark in stream for mark in TRACEBACK_MARKS), f"a traceback on the terminal:\n{stream}"
    assert result.rc == rc, f"exit code {result.rc}, expected {rc}\nstdout: {result.out}\nstderr: {result.err}"
    lines = result.error_lines
    assert len(lines) == 1, f"expected one 'coupler: error:' line, got {len(lines)}:\n{result.err}"
    for fragment in fragments:
        assert fragment in lines[0], f"{fragment!r} not in the error line {lines[0]!r}"
    return lines[0]


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def snapshot(*roots: Path) -> dict[Path, str]:
    """The sha256 of every file under ``roots`` (a file root counts as itself)."""
    files = {}
    for root in map(Path, roots):
        paths = [root] if root.is_file() else [p for p in root.rglob("*") if p.is_file() and not p.is_symlink()]
        for path in paths:
            files[path] = _digest(path)
    return files


@contextlib.contextmanager
def untouched(*roots: Path):
    """Assert that every file under ``roots`` before the block is there after it, byte for byte."""
    before = snapshot(*roots)
    yield before
    lost = [str(p) for p in before if not p.is_file()]
    changed = [str(p) for p, digest in before.items() if p.is_file() and _digest(p) != digest]
    assert not lost, f"files that existed before are gone: {lost}"
    assert not changed, f"files that existed before were changed: {changed}"
