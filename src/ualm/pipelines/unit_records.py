"""Where a unit's worker finds its input records: its reference (`ualm.inputs.units.UnitRef`),
read by the worker itself, plus what the driver had to write for it.

The driver writes a record file only for units holding rows of inputs it lists record by record
(CSV manifests and sources: `[input number, id kind, record]` per line, in listing order,
written atomically, not again once the unit's ingest is complete). The id reduce
(`input_ids`) leaves a renames file for each unit whose ids changed, and none for the others.
"""

from __future__ import annotations

import contextlib
import json
from collections import defaultdict
from collections.abc import Callable, Iterator

from ualm.inputs.records import InputRecord
from ualm.inputs.unique_ids import Rename, apply_rename
from ualm.inputs.unit_reader import Listed, read_unit
from ualm.inputs.units import UnitPlan, UnitRef
from ualm.manifests.layout import CorpusLayout


def write_unit_records(layout: CorpusLayout, plan: UnitPlan,
                       done: Callable[[int], bool]) -> int:
    """Lists the `records` inputs again into the record files of the units that hold their
    rows and are not `done`; returns how many files were written. Holds one unit's lines."""
    written, unit, lines = 0, -1, []

    def flush() -> None:
        nonlocal written
        if lines and not done(unit):
            layout.write_bytes(layout.unit_records(unit), "".join(lines).encode())
            written += 1
        lines.clear()

    for source in plan.inputs:
        if source.records is None:
            continue
        for record, kind in source.records():
            if record.index // plan.unit_size != unit:
                flush()
                unit = record.index // plan.unit_size
            lines.append(json.dumps([source.input_no, kind, record.to_dict()], sort_keys=True)
                         + "\n")
    flush()
    return written


def unit_rows(layout: CorpusLayout, ref: UnitRef) -> Iterator[Listed]:
    """The unit's records in order, with the kind of their ids; ids not yet unique."""
    stored: dict[int, Iterator[Listed]] | None = None

    def records_of(input_no: int) -> Iterator[Listed]:
        nonlocal stored
        if stored is None:
            stored = _read_stored(layout, ref.unit)
        return stored[input_no]

    return read_unit(ref, records_of)


def _read_stored(layout: CorpusLayout, unit: int) -> dict[int, Iterator[Listed]]:
    by_input: dict[int, list[Listed]] = defaultdict(list)
    for line in layout.read_bytes(layout.unit_records(unit)).decode("utf-8").splitlines():
        input_no, kind, data = json.loads(line)
        by_input[input_no].append((InputRecord.from_dict(data), kind))
    return defaultdict(lambda: iter(()), {k: iter(v) for k, v in by_input.items()})


def read_renames(layout: CorpusLayout, unit: int) -> dict[int, Rename]:
    text = layout.read_bytes(layout.unit_renames(unit)).decode("utf-8")
    renames = (Rename(*json.loads(line)) for line in text.splitlines())
    return {r.index: r for r in renames}


def read_unit_records(layout: CorpusLayout, ref: UnitRef, renamed: bool | None = None
                      ) -> list[InputRecord]:
    """The records of one unit, in listing order, with their final ids (the id reduce's merge
    leaves a renames file only for a unit with renamed ids: `renamed` says whether this one has
    one, from the merge's summary, so that most units make no request for it)."""
    renames: dict[int, Rename] = {}
    if renamed is not False:
        with contextlib.suppress(FileNotFoundError):  # not told: a GET that may fail
            renames = read_renames(layout, ref.unit)
    return [apply_rename(r, renames[r.index]) if r.index in renames else r
            for r, _ in unit_rows(layout, ref)]
