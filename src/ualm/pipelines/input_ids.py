"""Unique input ids as a keyed reduce, before ingest (`ualm.inputs.unique_ids` has the rules).

Each unit's worker reads its own rows and emits one small row per input (index, input number,
line, id kind, id) keyed by the bucket of the id's root; each bucket's reduce resolves its rows
in global order and writes the ids it renamed; a merge on the driver streams the buckets' files
(sorted by input index) into one renames file per unit that has any, for the ingest worker.

Memory: a reduce holds one bucket's id rows (about rows / buckets, more for a root that many rows
share); the merge holds one line per bucket and one unit's renames; the driver never holds ids.
"""

from __future__ import annotations

import heapq
import json
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import groupby
from typing import Any

from ualm.config import BuildConfig
from ualm.inputs.unique_ids import IdResolver, IdRow, Rename, id_bucket
from ualm.inputs.unit_reader import id_row
from ualm.inputs.units import UnitRef
from ualm.manifests.layout import CorpusLayout, write_done
from ualm.pipelines.faults import maybe_fail
from ualm.pipelines.unit_records import unit_rows

STAGE = "ids"
MERGE_STAGE = "ids-merge"


@dataclass(frozen=True)
class IdTask:
    """The map side: one unit's reference and the number of buckets."""

    corpus: str
    ref: UnitRef
    buckets: int


def emit_ids(task: IdTask) -> list[tuple[int, tuple[Any, ...]]]:
    """(bucket, id row) for every input of the unit."""
    layout = CorpusLayout(task.corpus)
    numbers = [s.input_no for s in task.ref.segments for _ in range(s.rows)]
    return [(id_bucket(record.input_id, task.buckets), tuple(id_row(record, kind, number)))
            for (record, kind), number in zip(unit_rows(layout, task.ref), numbers, strict=True)]


def reduce_ids(corpus: str, bucket: int, rows: list[tuple[Any, ...]]) -> dict[str, Any]:
    """Resolves one bucket's ids in global order and writes those it renamed."""
    layout = CorpusLayout(corpus)
    maybe_fail(layout, STAGE, bucket)
    resolver = IdResolver()
    renames = [r for row in sorted(IdRow._make(r) for r in rows)
               if (r := resolver.resolve(row)) is not None]
    path = layout.id_renames_bucket(bucket)
    layout.write_bytes(path, "".join(json.dumps(list(r)) + "\n" for r in renames).encode())
    summary = {"bucket": bucket, "ids": len(rows), "renamed": len(renames)}
    write_done(layout, STAGE, bucket, [path], summary)
    return summary


def merge_renames(layout: CorpusLayout, config: BuildConfig) -> dict[str, Any]:
    """One renames file per unit with renamed ids, from the buckets' files in input order."""
    files = [layout.id_renames_bucket(b) for b in range(config.work.dedup_buckets)]
    merged = heapq.merge(*(_renames(layout, f) for f in files), key=lambda r: r.index)
    units, outputs = [], []
    for unit, group in groupby(merged, key=lambda r: r.index // config.work.unit_size):
        path = layout.unit_renames(unit)
        layout.write_bytes(path, "".join(json.dumps(list(r)) + "\n" for r in group).encode())
        units.append(unit)
        outputs.append(path)
    summary = {"units": units}
    write_done(layout, MERGE_STAGE, 0, outputs, summary)
    return summary


def _renames(layout: CorpusLayout, path: str) -> Iterator[Rename]:
    with layout.open(path) as handle:
        for line in handle:
            yield Rename(*json.loads(line))
