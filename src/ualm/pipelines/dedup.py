"""Exact deduplication as a keyed reduce: each ingest unit emits its kept inputs' fingerprints
keyed by bucket (a hash of the fingerprint), the engine's shuffle brings each bucket's rows to
one reduce, and that reduce decides the bucket. No process ever holds every fingerprint.

Within a group of equal fingerprints the first input (in listing order) is kept; it gains the
others' captions (in order, without repeats), and each other input becomes a duplicate of it.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow.dataset as ds

from ualm.manifests import schema
from ualm.manifests.layout import CorpusLayout, write_done
from ualm.pipelines.caption_merge import merged_captions
from ualm.pipelines.faults import maybe_fail

STAGE = "dedup"


@dataclass(frozen=True)
class FingerprintTask:
    """The map side: one ingest unit's kept inputs, for the buckets still to decide."""

    corpus: str
    unit: int


def emit_fingerprints(task: FingerprintTask) -> list[tuple[int, dict[str, Any]]]:
    """(bucket, row) for each kept input of the unit."""
    layout = CorpusLayout(task.corpus)
    table = layout.read_table(
        layout.unit_inputs(task.unit), schema=schema.UNIT_INPUTS,
        columns=["input_index", "input_id", "fingerprint", "kept_seconds", "bucket", "record"],
        filters=ds.field("status") == "kept")
    pairs = []
    for row in table.to_pylist():
        record = json.loads(row.pop("record"))
        pairs.append((row.pop("bucket"), {**row, "captions": record["captions"],
                                          "caption_scores": record.get("caption_scores"),
                                          "source": record["source"], "path": record["path"]}))
    return pairs


def reduce_bucket(corpus: str, bucket: int, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Decides one bucket from its rows (in any order) and writes its decisions."""
    layout = CorpusLayout(corpus)
    maybe_fail(layout, STAGE, bucket)
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in sorted(rows, key=lambda r: r["input_index"]):
        groups[row["fingerprint"]].append(row)
    decisions, duplicates = [], []
    for members in groups.values():
        if len(members) < 2:
            continue
        keeper = members[0]
        captions, scores = merged_captions((m["captions"], m.get("caption_scores"))
                                           for m in members)
        decisions.append({"input_index": keeper["input_index"],
                          "keeper_index": keeper["input_index"], "captions": captions,
                          "caption_scores": scores})
        for member in members[1:]:
            decisions.append({"input_index": member["input_index"],
                              "keeper_index": keeper["input_index"], "captions": None})
            duplicates.append({
                "input_id": member["input_id"], "input_index": member["input_index"],
                "duplicate_of": keeper["input_id"], "duplicate_of_index": keeper["input_index"],
                "kind": "dedup/exact",
                "fingerprint": member["fingerprint"], "seconds": member["kept_seconds"],
                "captions": member["captions"], "source": member["source"], "path": member["path"],
            })
    decisions.sort(key=lambda d: d["input_index"])
    duplicates.sort(key=lambda d: d["input_index"])
    layout.write_table(layout.dedup_bucket(bucket), schema.table(decisions, schema.DEDUP))
    layout.write_table(layout.duplicates_part(bucket), schema.table(duplicates, schema.DUPLICATES))
    summary = {"bucket": bucket, "candidates": len(rows), "duplicates": len(duplicates)}
    write_done(layout, STAGE, bucket,
               [layout.dedup_bucket(bucket), layout.duplicates_part(bucket)], summary)
    return summary


def load_decisions(layout: CorpusLayout, buckets: int, near: bool = True,
                   indexes: Collection[int] | None = None,
                   decontam: bool = True) -> dict[int, dict[str, Any]]:
    """input_index → decision, for the inputs that took part in a duplicate group (of `indexes`
    only, when given: a worker then holds its own inputs' decisions, not the corpus's); near-
    duplicate audio and caption decisions (where those stages ran) override exact ones, and
    decontamination's (keeper -1 for a rejected input, or the captions left) override those
    unless `decontam` is off (decontamination itself reads the decisions before its own)."""
    wanted = None if indexes is None else ds.field("input_index").isin(sorted(indexes))
    files = [layout.dedup_bucket(b) for b in range(buckets)]
    table = layout.read_table(files, schema=schema.DEDUP, filters=wanted)
    decisions = {row["input_index"]: row for row in table.to_pylist()}
    if near:  # later global steps' decisions override earlier ones
        for extra in _later_decisions(layout, decontam):
            decisions.update((row["input_index"], row)
                             for row in layout.read_table(extra, filters=wanted).to_pylist())
    return decisions


def duplicate_indexes(layout: CorpusLayout, buckets: int) -> np.ndarray:
    """The sorted input indexes that every decision taken together marks as duplicates: two
    integer columns read, 8 bytes per duplicate held (the shard plan's one global set)."""
    files = [layout.dedup_bucket(b) for b in range(buckets)]
    parts = [layout.read_table(files, schema=schema.DEDUP, columns=["input_index", "keeper_index"])]
    parts += [layout.read_table(f, columns=["input_index", "keeper_index"])
              for f in _later_decisions(layout)]
    index = np.concatenate([p.column("input_index").to_numpy() for p in parts])
    keeper = np.concatenate([p.column("keeper_index").to_numpy() for p in parts])
    # the last decision for an input wins: the first one met walking backwards
    inputs, last = np.unique(index[::-1], return_index=True)
    return inputs[keeper[::-1][last] != inputs].astype(np.int64)


def _later_decisions(layout: CorpusLayout, decontam: bool = True) -> list[str]:
    found = [f for f in (layout.near_dedup_decisions, layout.caption_dedup_decisions)
             if layout.exists(f)]
    if decontam:  # one part per unit, each about its own inputs only
        found += layout.list(layout.decontam_folder, "decisions-", ".parquet")
    return found
