"""Near-duplicate audio as two global steps, after exact dedup:

1. A keyed reduce. Each ingest unit emits, for each of its kept inputs that is not an exact
   duplicate, one (bucket, value) pair per LSH band key of its Chromaprint fingerprint. The
   engine's shuffle brings each bucket to one reduce, which compares only the inputs that share
   a band key (by bit error rate) and writes the pairs that are copies: no step compares all
   pairs, and no process holds every fingerprint.
2. A merge of those pairs (copies only: few) into groups. Each group keeps the copy with the
   best source quality (lossless, then native rate, then channels), then the smallest input id;
   it gains the others' captions, and the others become `dedup/near_duplicate` duplicates.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from itertools import combinations, groupby
from typing import Any

import numpy as np
import pyarrow.dataset as ds

from ualm.config import BuildConfig
from ualm.filters.fingerprint import band_keys, bit_error_rate
from ualm.manifests import schema
from ualm.manifests.layout import CorpusLayout, write_done
from ualm.pipelines.caption_merge import decided_captions, merged_captions
from ualm.pipelines.dedup import load_decisions
from ualm.pipelines.faults import maybe_fail

STAGE = "near-dedup"
MERGE_STAGE = "near-dedup-merge"
KIND = "dedup/near_duplicate"

EDGES = schema.pa.schema([("a", schema.pa.int64()), ("b", schema.pa.int64()),
                          ("bit_error_rate", schema.pa.float64())])


@dataclass(frozen=True)
class BandTask:
    corpus: str
    unit: int
    config: dict[str, Any]


def edges_path(layout: CorpusLayout, bucket: int) -> str:
    return layout.near_edges(bucket)


def decisions_path(layout: CorpusLayout) -> str:
    return layout.near_dedup_decisions


def duplicates_path(layout: CorpusLayout) -> str:
    return layout.near_duplicates


def emit_bands(task: BandTask) -> list[tuple[int, tuple[int, int, bytes]]]:
    """(bucket, (band key, input index, fingerprint)) for the unit's kept, non-duplicate inputs."""
    config = BuildConfig.from_dict(task.config)
    layout = CorpusLayout(task.corpus)
    table = layout.read_table(layout.unit_inputs(task.unit), schema=schema.UNIT_INPUTS,
                          columns=["input_index", "chromaprint"],
                          filters=(ds.field("status") == "kept"))
    exact = load_decisions(layout, config.work.dedup_buckets, near=False,
                           indexes=table.column("input_index").to_pylist())
    near = config.near_dedup
    pairs = []
    for row in table.to_pylist():
        index, fingerprint = row["input_index"], row["chromaprint"]
        decision = exact.get(index)
        if not fingerprint or (decision is not None and decision["keeper_index"] != index):
            continue
        packed = np.asarray(fingerprint, np.uint32)
        data = packed.tobytes()  # 4 bytes a value through the shuffle, not a list of ints
        for key in band_keys(packed, near.bands):
            pairs.append((key % near.buckets, (key, index, data)))
    return pairs


def reduce_near_bucket(corpus: str, max_bit_error: float, bucket: int,
                       values: list[tuple[int, int, bytes]]) -> dict[str, Any]:
    """Compares the inputs that share a band key; writes the pairs within `max_bit_error`."""
    layout = CorpusLayout(corpus)
    maybe_fail(layout, STAGE, bucket)
    edges, candidates = near_pairs(values, max_bit_error)
    path = edges_path(layout, bucket)
    layout.write_table(path, schema.table(edges, EDGES))
    summary = {"bucket": bucket, "candidate_pairs": candidates, "near_pairs": len(edges)}
    write_done(layout, STAGE, bucket, [path], summary)
    return summary


def near_pairs(values: list[tuple[int, int, bytes]], max_distance: float,
               distance: Callable[[np.ndarray, np.ndarray], float] = bit_error_rate,
               dtype: type = np.uint32) -> tuple[list[dict[str, Any]], int]:
    """The pairs of inputs that share a band key and are within `max_distance` (by default the
    fingerprints' bit error rate), as edge rows in a deterministic order; and how many candidate
    pairs were compared."""
    fingerprints: dict[int, np.ndarray] = {}
    candidates: set[tuple[int, int]] = set()
    for _, group in groupby(sorted((key, index) for key, index, _ in values), key=lambda v: v[0]):
        members = sorted({index for _, index in group})
        candidates.update(combinations(members, 2))
    for _, index, fingerprint in values:
        if index not in fingerprints:
            fingerprints[index] = (np.frombuffer(fingerprint, dtype) if isinstance(fingerprint, bytes)
                                   else np.asarray(fingerprint, dtype))
    edges = []
    for a, b in sorted(candidates):
        d = distance(fingerprints[a], fingerprints[b])
        if d <= max_distance:
            edges.append({"a": a, "b": b, "bit_error_rate": round(d, 6)})
    return edges, len(candidates)


def connected_groups(edges: list[dict[str, Any]]) -> dict[int, list[int]]:
    """Union-find over edge rows: {smallest member: sorted members} per group."""
    parent: dict[int, int] = {}

    def root(i: int) -> int:
        while parent.setdefault(i, i) != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for edge in edges:
        a, b = root(edge["a"]), root(edge["b"])
        parent[max(a, b)] = min(a, b)
    groups: dict[int, list[int]] = defaultdict(list)
    for index in sorted(parent):
        groups[root(index)].append(index)
    return dict(groups)


def merge_near_duplicates(layout: CorpusLayout, config: BuildConfig) -> dict[str, Any]:
    """Groups the copies found by every bucket, picks each group's survivor, and writes the
    decisions (read by the shard plan) and the near-duplicate rows of the duplicates manifest."""
    files = [edges_path(layout, b) for b in range(config.near_dedup.buckets)]
    edges = layout.read_table(files, schema=EDGES).to_pylist()
    groups = connected_groups(edges)
    members = sorted(i for group in groups.values() for i in group)
    rows = _member_rows(layout, config, members)
    exact = load_decisions(layout, config.work.dedup_buckets, near=False, indexes=members)
    decisions, duplicates = [], []
    for members in groups.values():
        survivor = min(members, key=lambda i: (*_quality_rank(rows[i]), rows[i]["input_id"]))
        captions, scores = merged_captions(
            decided_captions(exact.get(index), rows[index])
            for index in [survivor, *(m for m in members if m != survivor)])
        decisions.append({"input_index": survivor, "keeper_index": survivor, "captions": captions,
                          "caption_scores": scores})
        keeper = rows[survivor]
        for index in members:
            if index == survivor:
                continue
            row = rows[index]
            decisions.append({"input_index": index, "keeper_index": survivor, "captions": None})
            duplicates.append({
                "input_id": row["input_id"], "input_index": index,
                "duplicate_of": keeper["input_id"], "duplicate_of_index": survivor, "kind": KIND,
                "bit_error_rate": round(bit_error_rate(row["chromaprint"], keeper["chromaprint"]),
                                        6),
                "fingerprint": row["fingerprint"], "seconds": row["kept_seconds"],
                "captions": row["captions"], "source": row["source"], "path": row["path"],
            })
    decisions.sort(key=lambda d: d["input_index"])
    duplicates.sort(key=lambda d: d["input_index"])
    layout.write_table(decisions_path(layout), schema.table(decisions, schema.DEDUP))
    layout.write_table(duplicates_path(layout), schema.table(duplicates, schema.DUPLICATES))
    summary = {"groups": len(groups), "duplicates": len(duplicates)}
    write_done(layout, MERGE_STAGE, 0, [decisions_path(layout), duplicates_path(layout)], summary)
    return summary


def _quality_rank(row: dict[str, Any]) -> tuple[int, int, int]:
    """Smaller is better, for min(): lossless first, then the higher rate, then more channels."""
    return (-int(bool(row["lossless"])), -(row["native_rate"] or 0), -(row["native_channels"] or 0))


def _member_rows(layout: CorpusLayout, config: BuildConfig,
                 indexes: list[int]) -> dict[int, dict[str, Any]]:
    """The unit-input rows of the given inputs, read unit by unit."""
    rows: dict[int, dict[str, Any]] = {}
    for unit, group in groupby(indexes, key=lambda i: i // config.work.unit_size):
        wanted = list(group)
        table = layout.read_table(layout.unit_inputs(unit), schema=schema.UNIT_INPUTS,
                              filters=ds.field("input_index").isin(wanted))
        for row in table.to_pylist():
            record = json.loads(row.pop("record"))
            row["chromaprint"] = np.asarray(row["chromaprint"], np.uint32)
            rows[row["input_index"]] = {**row, "captions": record["captions"],
                                        "caption_scores": record.get("caption_scores"),
                                        "source": record["source"], "path": record["path"]}
    return rows

