"""The records of each ingest unit, cut from the input stream by the driver and read by the unit's
worker: work units carry a number, not their rows, so the driver holds one unit of records at a
time however long the listing is.

One JSON line per record (`InputRecord.to_dict`), in listing order, written atomically; a unit
whose ingest is complete is not written again on a rerun.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from itertools import islice

from ualm.inputs.records import InputRecord
from ualm.manifests.layout import CorpusLayout, read_done


def write_unit_records(layout: CorpusLayout, records: Iterable[InputRecord], unit_size: int,
                       stage: str) -> int:
    """Cuts `records` into units of `unit_size` and writes each unit that `stage` has not
    completed; returns the number of units."""
    stream, unit = iter(records), 0
    while batch := list(islice(stream, unit_size)):
        if read_done(layout, stage, unit) is None:
            lines = (json.dumps(r.to_dict(), sort_keys=True) + "\n" for r in batch)
            layout.write_bytes(layout.unit_records(unit), "".join(lines).encode())
        unit += 1
    return unit


def read_unit_records(layout: CorpusLayout, unit: int) -> list[InputRecord]:
    """The records of one unit, in listing order."""
    text = layout.read_bytes(layout.unit_records(unit)).decode("utf-8")
    return [InputRecord.from_dict(json.loads(line)) for line in text.splitlines()]
