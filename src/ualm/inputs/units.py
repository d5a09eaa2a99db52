"""Work units as references: what the driver keeps of a listing, and what a unit's worker reads.

Units are cut from the global input order every `unit_size` rows, across input boundaries, so a
unit is one or more `Segment`s, each a contiguous run of one input's rows:

- `jsonl`: a byte range of a JSONL manifest, with the line number of its first row;
- `parquet`: a row range of a parquet manifest;
- `folder`: a slice of a folder's sorted audio file names;
- `records`: records the driver listed and wrote to the unit's record file (CSV manifests, whose
  quoted fields may hold newlines, and the sources of `ualm.inputs.sources`).

The driver holds an `InputPlan` per input and O(units) marks (`scan.JsonlMarks`), and makes a
unit's `UnitRef` when asked: a few numbers per segment (and, for a folder, its names).
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # scan imports this module's auto unit size
    from ualm.inputs.scan import JsonlMarks

MIN_AUTO_UNIT, MAX_AUTO_UNIT, AUTO_UNITS = 16, 1024, 64


def auto_unit_size(count: int) -> int:
    """The unit size of `work.unit_size: null` for `count` inputs: 16 times a power of two, the
    smallest that cuts them into at most 64 units, capped at 1,024 inputs a unit. Small corpora
    keep small units (parallel work on a few cores); a large one gets units whose fixed cost
    (about a dozen work objects and requests each) is small beside their work: 30M inputs make
    29,297 units, not the 1.9M of units of 16. A function of the count alone, so the same inputs
    are cut the same way on any engine and cluster.

    >>> [auto_unit_size(n) for n in (0, 1024, 1025, 2000, 65_536, 30_000_000)]
    [16, 16, 32, 32, 1024, 1024]
    """
    size = MIN_AUTO_UNIT
    while size < MAX_AUTO_UNIT and size * AUTO_UNITS < count:
        size *= 2
    return size


ROW_KINDS = ("jsonl", "parquet", "folder")
"""Inputs whose rows a worker reads itself (the rest are `records`)."""


@dataclass(frozen=True)
class Segment:
    """A run of `rows` rows of input number `input_no`, the first of global index
    `first_index`. `path` is absolute; `start`/`end` are bytes (jsonl) or rows (parquet)."""

    kind: str
    input_no: int
    path: str
    first_index: int
    rows: int
    start: int = 0
    end: int = 0
    first_line: int = 0
    names: tuple[str, ...] = ()
    roots: tuple[str, ...] = ()
    """Where a manifest's paths may resolve: its own folder, then the allowed roots."""
    source: str = ""
    """The default `source` of the input's rows (the manifest's stem, the folder's name)."""


@dataclass(frozen=True)
class UnitRef:
    """One work unit: its number and its segments, in global order."""

    unit: int
    segments: tuple[Segment, ...]

    @property
    def first_index(self) -> int:
        return self.segments[0].first_index

    @property
    def rows(self) -> int:
        return sum(s.rows for s in self.segments)


@dataclass
class InputPlan:
    """What the driver keeps of one input: where its rows start in the global order, how many
    there are, and enough to cut a segment of them."""

    kind: str
    input_no: int
    path: str
    first_index: int
    rows: int
    roots: tuple[str, ...] = ()
    source: str = ""
    marks: JsonlMarks | None = None
    names: list[str] = field(default_factory=list)
    records: Callable[[], Iterator[Any]] | None = None
    """For `records` inputs: lists the input's records again (the driver writes them)."""

    def segment(self, lo: int, hi: int) -> Segment:
        """Local rows [lo, hi) as a segment; for a manifest, lo is 0 or a unit's first row."""
        common = {"kind": self.kind, "input_no": self.input_no, "path": self.path,
                  "first_index": self.first_index + lo, "rows": hi - lo, "roots": self.roots,
                  "source": self.source}
        if self.kind == "jsonl":
            assert self.marks is not None
            at = bisect.bisect_left(self.marks.row, lo)
            end = (self.marks.offset[at + 1] if at + 1 < len(self.marks.row)
                   else self.marks.size)
            return Segment(**common, start=self.marks.offset[at], end=end,
                           first_line=self.marks.line[at])
        if self.kind == "parquet":
            return Segment(**common, start=lo, end=hi, first_line=lo + 1)
        if self.kind == "folder":
            return Segment(**common, names=tuple(self.names[lo:hi]))
        return Segment(**common)


class UnitPlan:
    """The units of a listing, made on demand: `plan[u]` is unit u's `UnitRef`.

    >>> plan = UnitPlan([InputPlan("folder", 0, "/a", 0, 3, names=["x", "y", "z"])], 2)
    >>> len(plan), [s.names for s in plan[1].segments]
    (2, [('z',)])
    """

    def __init__(self, inputs: list[InputPlan], unit_size: int) -> None:
        self.inputs = [p for p in inputs if p.rows]
        self.unit_size = unit_size
        self.count = sum(p.rows for p in inputs)
        self._starts = [p.first_index for p in self.inputs]

    def __len__(self) -> int:
        return -(-self.count // self.unit_size)

    def __getitem__(self, unit: int) -> UnitRef:
        if not 0 <= unit < len(self):
            raise IndexError(unit)
        lo, hi = unit * self.unit_size, min((unit + 1) * self.unit_size, self.count)
        segments = []
        at = bisect.bisect_right(self._starts, lo) - 1
        while at < len(self.inputs) and self.inputs[at].first_index < hi:
            plan = self.inputs[at]
            first = max(lo, plan.first_index) - plan.first_index
            last = min(hi, plan.first_index + plan.rows) - plan.first_index
            segments.append(plan.segment(first, last))
            at += 1
        return UnitRef(unit, tuple(segments))

    def __iter__(self) -> Iterator[UnitRef]:
        return (self[u] for u in range(len(self)))

    def units_with_records(self) -> Iterator[int]:
        """Units that hold rows of `records` inputs (the driver writes their record files)."""
        for plan in self.inputs:
            if plan.kind not in ROW_KINDS:
                first = plan.first_index // self.unit_size
                last = (plan.first_index + plan.rows - 1) // self.unit_size
                yield from range(first, last + 1)
