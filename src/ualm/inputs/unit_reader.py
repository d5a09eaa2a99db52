"""Reading a unit from its reference (what a unit's worker does), and a whole listing in one
process (what iterating an `InputListing` does)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from itertools import islice

from ualm.inputs.manifest_rows import read_segment
from ualm.inputs.records import InputRecord
from ualm.inputs.unique_ids import IdResolver, IdRow, apply_rename
from ualm.inputs.units import ROW_KINDS, UnitPlan, UnitRef

Listed = tuple[InputRecord, str]
"""A record with the kind of its id (`manifest_rows.DERIVED`, `EXPLICIT` or `OTHER`)."""


def read_unit(ref: UnitRef, stored: Callable[[int], Iterator[Listed]]) -> Iterator[Listed]:
    """The unit's records in order, ids not yet unique. `stored(input_no)` gives the records
    the driver listed for a `records` segment (from the unit's record file)."""
    for segment in ref.segments:
        if segment.kind in ROW_KINDS:
            yield from read_segment(segment)
        else:
            yield from islice(stored(segment.input_no), segment.rows)


def id_row(record: InputRecord, kind: str, input_no: int) -> IdRow:
    return IdRow(record.index, input_no, record.line, kind, record.input_id)


def iter_listing(plan: UnitPlan) -> Iterator[InputRecord]:
    """Every record of a listing in global order with its final id; `records` inputs are
    listed again from their sources. Holds every id (the build resolves ids in buckets)."""
    streams: dict[int, Iterator[Listed]] = {}

    def stored(input_no: int) -> Iterator[Listed]:
        if input_no not in streams:
            source = next(p for p in plan.inputs if p.input_no == input_no)
            assert source.records is not None
            streams[input_no] = iter(source.records())
        return streams[input_no]

    resolver = IdResolver()
    for ref in plan:
        numbers = [s.input_no for s in ref.segments for _ in range(s.rows)]
        for (record, kind), input_no in zip(read_unit(ref, stored), numbers, strict=True):
            rename = resolver.resolve(id_row(record, kind, input_no))
            yield record if rename is None else apply_rename(record, rename)
