"""A bounded reader of UBJSON, the format of ``model.ubj``, so that a damaged or crafted file is refused in Python.

XGBoost's own parser trusts the lengths a file declares: a truncated or crafted ``model.ubj`` made ``load_model``
fail with ``std::bad_alloc`` or crash the process (a segfault). ``read`` checks every length and count against the
bytes left, bounds the nesting, and reads typed numeric arrays (the trees' node arrays) with NumPy without copying
element by element. It builds plain Python values only: UBJSON has no way to name code.
"""

from __future__ import annotations

import struct

import numpy as np

#: fixed-size value markers: struct format (big-endian) and NumPy dtype for typed arrays
NUMBERS = {b"i": (">b", "i1"), b"U": (">B", "u1"), b"I": (">h", ">i2"), b"l": (">i", ">i4"), b"L": (">q", ">i8"),
           b"d": (">f", ">f4"), b"D": (">d", ">f8")}
CONSTANTS = {b"Z": None, b"T": True, b"F": False}
#: deeper than any XGBoost model (about 8 levels); a bound on the recursion a crafted file can ask for
MAX_DEPTH = 64


class UBJSONError(ValueError):
    """The bytes are not a complete UBJSON document."""


class _Reader:
    def __init__(self, data: bytes):
        self.data, self.at = memoryview(data), 0

    def take(self, size: int) -> memoryview:
        if size < 0 or self.at + size > len(self.data):
            raise UBJSONError(f"at byte {self.at}: {size} bytes declared, {len(self.data) - self.at} left")
        chunk = self.data[self.at:self.at + size]
        self.at += size
        return chunk

    def marker(self) -> bytes:
        marker = bytes(self.take(1))
        while marker == b"N":  # no-op
            marker = bytes(self.take(1))
        return marker

    def number(self, marker: bytes):
        fmt = NUMBERS[marker][0]
        return struct.unpack(fmt, self.take(struct.calcsize(fmt)))[0]

    def length(self) -> int:
        marker = self.marker()
        if marker not in NUMBERS or marker in (b"d", b"D"):
            raise UBJSONError(f"at byte {self.at}: a length must be an integer, not {marker!r}")
        value = self.number(marker)
        if value < 0:
            raise UBJSONError(f"at byte {self.at}: negative length {value}")
        return value

    def text(self) -> str:
        try:
            return bytes(self.take(self.length())).decode()
        except UnicodeDecodeError as exc:
            raise UBJSONError(f"at byte {self.at}: a string is not UTF-8 ({exc.reason})") from None

    def value(self, marker: bytes, depth: int):
        if marker in CONSTANTS:
            return CONSTANTS[marker]
        if marker in NUMBERS:
            return self.number(marker)
        if marker == b"C":
            return chr(self.take(1)[0])
        if marker in (b"S", b"H"):
            return self.text()
        if marker in (b"[", b"{"):
            if depth >= MAX_DEPTH:
                raise UBJSONError(f"at byte {self.at}: nested deeper than {MAX_DEPTH} levels")
            return self.container(marker == b"{", depth + 1)
        raise UBJSONError(f"at byte {self.at - 1}: unknown marker {marker!r}")

    def container(self, is_object: bool, depth: int):
        kind, count = None, None
        if self.data[self.at:self.at + 1] == b"$":
            self.take(1)
            kind = self.marker()
            if self.marker() != b"#":
                raise UBJSONError(f"at byte {self.at}: a typed container without its count")
            count = self.length()
        elif self.data[self.at:self.at + 1] == b"#":
            self.take(1)
            count = self.length()
        if not is_object and kind in NUMBERS and count is not None:  # a typed numeric array: one bounded read
            dtype = np.dtype(NUMBERS[kind][1])
            return np.frombuffer(self.take(count * dtype.itemsize), dtype=dtype)
        items = {} if is_object else []
        index = 0
        while count is None or index < count:
            if count is None and self.data[self.at:self.at + 1] == (b"}" if is_object else b"]"):
                self.take(1)
                break
            key = self.text() if is_object else None
            value = self.value(kind or self.marker(), depth)
            if is_object:
                items[key] = value
            else:
                items.append(value)
            index += 1
        return items


def read(data: bytes):
    """The document in ``data``: dicts, lists, scalars, and NumPy arrays for typed numeric arrays. A
    ``UBJSONError`` for anything that is not one whole document."""
    reader = _Reader(data)
    document = reader.value(reader.marker(), 0)
    if reader.at != len(data):
        raise UBJSONError(f"{len(data) - reader.at} bytes after the end of the document")
    return document
