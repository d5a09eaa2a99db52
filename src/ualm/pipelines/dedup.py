"""Exact deduplication as a hash-partitioned reduce: inputs with the same decoded-audio
fingerprint land in the same bucket; each bucket is decided by one task that reads only its own
rows, so no process ever holds every fingerprint.

Within a group of equal fingerprints the first input (in listing order) is kept; it gains the
others' captions (in order, without repeats), and each other input becomes a duplicate of it.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import pyarrow.dataset as ds

from ualm.manifests import schema
from ualm.manifests.layout import CorpusLayout, atomic_write_table, write_done

STAGE = "dedup"


@dataclass(frozen=True)
class DedupTask:
    corpus: str
    bucket: int
    units: int


def run_dedup_bucket(task: DedupTask) -> dict[str, Any]:
    layout = CorpusLayout(task.corpus)
    rows = _bucket_rows(layout, task.bucket, task.units)
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in sorted(rows, key=lambda r: r["input_index"]):
        groups[row["fingerprint"]].append(row)
    decisions, duplicates = [], []
    for members in groups.values():
        if len(members) < 2:
            continue
        keeper = members[0]
        captions: list[str] = []
        for member in members:
            captions.extend(c for c in member["captions"] if c not in captions)
        decisions.append({"input_index": keeper["input_index"],
                          "keeper_index": keeper["input_index"], "captions": captions})
        for member in members[1:]:
            decisions.append({"input_index": member["input_index"],
                              "keeper_index": keeper["input_index"], "captions": None})
            duplicates.append({
                "input_id": member["input_id"], "input_index": member["input_index"],
                "duplicate_of": keeper["input_id"], "duplicate_of_index": keeper["input_index"],
                "fingerprint": member["fingerprint"], "seconds": member["kept_seconds"],
                "captions": member["captions"], "source": member["source"], "path": member["path"],
            })
    decisions.sort(key=lambda d: d["input_index"])
    duplicates.sort(key=lambda d: d["input_index"])
    atomic_write_table(layout.dedup_bucket(task.bucket), schema.table(decisions, schema.DEDUP))
    atomic_write_table(layout.duplicates_part(task.bucket), schema.table(duplicates, schema.DUPLICATES))
    summary = {"bucket": task.bucket, "candidates": len(rows), "duplicates": len(duplicates)}
    write_done(layout, STAGE, task.bucket,
               [layout.dedup_bucket(task.bucket), layout.duplicates_part(task.bucket)], summary)
    return summary


def _bucket_rows(layout: CorpusLayout, bucket: int, units: int) -> list[dict[str, Any]]:
    files = [str(layout.unit_inputs(u)) for u in range(units)]
    dataset = ds.dataset(files, format="parquet", schema=schema.UNIT_INPUTS)
    mine = (ds.field("bucket") == bucket) & (ds.field("status") == "kept")
    table = dataset.to_table(
        columns=["input_index", "input_id", "fingerprint", "kept_seconds", "record"], filter=mine)
    rows = []
    for row in table.to_pylist():
        record = json.loads(row.pop("record"))
        rows.append({**row, "captions": record["captions"], "source": record["source"],
                     "path": record["path"]})
    return rows


def load_decisions(layout: CorpusLayout, buckets: int) -> dict[int, dict[str, Any]]:
    """input_index → decision, for the (usually few) inputs that took part in a duplicate group."""
    files = [str(layout.dedup_bucket(b)) for b in range(buckets)]
    table = ds.dataset(files, format="parquet", schema=schema.DEDUP).to_table()
    return {row["input_index"]: row for row in table.to_pylist()}
