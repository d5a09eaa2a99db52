"""The driver's pass over a JSONL manifest: its bytes in large blocks, never its rows as objects.

It counts rows the way a row reader does (a line is a row unless it is blank once decoded; line
numbers count blank lines too; `\\n`, `\\r\\n` and a lone `\\r` end a line, as text mode reads
them), hashes the bytes for the inputs digest, and marks where each work unit starts: the byte
offset and line number of every row whose global index is a multiple of the unit size. Memory:
one block and O(units) marks. With the unit size left to the listing (`units.auto_unit_size`),
it marks every `MIN_AUTO_UNIT` rows and drops marks as the count grows the size, so the marks
stay O(units) on the way too.

Most blocks hold no line that could be blank and no lone `\\r`: their rows are their newlines,
found with numpy. Any other block is split line by line (`bytes.splitlines`, the same line
boundaries as text mode) and each line decoded and stripped, as the row reader does.
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ualm.inputs.units import MIN_AUTO_UNIT, auto_unit_size

BLOCK = 8 << 20
"""Bytes read at a time."""
_SPACE_LIKE = b"\t\x0b\x0c\r\x1c\x1d\x1e\x1f " + bytes(range(0x80, 0x100))
"""ASCII whitespace other than `\\n`, and every byte of a multi-byte character (some are
whitespace too): a line made of these alone might be blank and is checked by decoding it."""


@dataclass
class JsonlMarks:
    """Where units start inside one manifest: local row number, byte offset and line number of
    its first row and of every row whose global index is a multiple of the unit size."""

    rows: int = 0
    size: int = 0
    row: array = field(default_factory=lambda: array("q"))
    offset: array = field(default_factory=lambda: array("q"))
    line: array = field(default_factory=lambda: array("q"))

    def coarsen(self, first_index: int, unit_size: int) -> None:
        """Keeps the marks of a larger unit size (a multiple of the one marked): the manifest's
        first row and every row whose global index is a multiple of `unit_size`."""
        keep = [k for k, row in enumerate(self.row)
                if row == 0 or (first_index + row) % unit_size == 0]
        if len(keep) < len(self.row):
            for name in ("row", "offset", "line"):
                values = getattr(self, name)
                setattr(self, name, array("q", (values[k] for k in keep)))


class _Scan:
    def __init__(self, first_index: int, unit_size: int | None) -> None:
        self.first, self.auto = first_index, unit_size is None
        self.size = unit_size or MIN_AUTO_UNIT
        self.marks = JsonlMarks()
        self.lines = 0  # lines before the current block

    def grow(self) -> None:
        """Auto unit size: the rows so far may have doubled it; drop the marks it no longer
        needs (the final size is at least this one: the count only grows)."""
        size = auto_unit_size(self.first + self.marks.rows) if self.auto else self.size
        if size > self.size:
            self.marks.coarsen(self.first, size)
            self.size = size

    def _due(self, row: int) -> bool:
        return row == 0 or (self.first + row) % self.size == 0

    def block(self, data: bytes, base: int) -> None:
        if (data.endswith(b"\n") and not _maybe_blank(data)
                and (b"\r" not in data or data.count(b"\r") == data.count(b"\r\n"))):
            self._fast(data, base)
        else:
            self._slow(data, base)

    def _fast(self, data: bytes, base: int) -> None:
        """Every line is a row: row k starts after the k-th newline."""
        ends = np.flatnonzero(np.frombuffer(data, np.uint8) == 10)
        rows, marks = self.marks.rows, self.marks
        due: Any = range((-(self.first + rows)) % self.size, len(ends), self.size)
        if rows == 0 and len(ends) and (not due or due[0]):
            due = [0, *due]  # the manifest's first row starts a segment of its own
        for k in due:
            marks.row.append(rows + k)
            marks.offset.append(base + (int(ends[k - 1]) + 1 if k else 0))
            marks.line.append(self.lines + k + 1)
        marks.rows += len(ends)
        self.lines += len(ends)

    def _slow(self, data: bytes, base: int) -> None:
        offset, marks = base, self.marks
        for raw in data.splitlines(keepends=True):
            self.lines += 1
            if raw.decode("utf-8", "replace").strip():
                if self._due(marks.rows):
                    marks.row.append(marks.rows)
                    marks.offset.append(offset)
                    marks.line.append(self.lines)
                marks.rows += 1
            offset += len(raw)


def _maybe_blank(data: bytes) -> bool:
    squeezed = data.translate(None, _SPACE_LIKE)
    return squeezed.startswith(b"\n") or b"\n\n" in squeezed


def scan_jsonl(handle: Any, first_index: int, unit_size: int | None, digest: Any) -> JsonlMarks:
    """Scans an open binary manifest from its start, updating `digest` with its bytes. With
    `unit_size` None the marks fit the auto size of the rows counted so far; the listing
    coarsens them to the final count's (`JsonlMarks.coarsen`)."""
    scan, carry, base = _Scan(first_index, unit_size), b"", 0
    while block := handle.read(BLOCK):
        digest.update(block)
        data = carry + block
        # cut after the last line end; a `\r` as the last byte may be half of `\r\n`
        cut = max(data.rfind(b"\n"), data.rfind(b"\r", 0, len(data) - 1)) + 1
        if cut:
            scan.block(data[:cut], base)
            scan.grow()
        carry, base = data[cut:], base + cut
    if carry:
        scan.block(carry, base)
    scan.marks.size = base + len(carry)
    return scan.marks
