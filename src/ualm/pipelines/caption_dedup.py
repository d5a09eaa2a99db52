"""Near-duplicate captions as two global steps, after the audio dedup steps (so only surviving
clips take part):

1. A keyed reduce: each ingest unit emits, for each surviving input with captions, one
   (bucket, value) pair per LSH band key of its captions' MinHash; each bucket's reduce compares
   only inputs that share a band key and writes the pairs above the similarity threshold.
2. A merge of those pairs into groups: every member records its group (the first input's id)
   and size; with `max_clips_per_group`, members past the first that many (in listing order)
   become `dedup/near_duplicate_caption` duplicates.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow.dataset as ds

from ualm.config import BuildConfig
from ualm.filters.caption_minhash import caption_signature, jaccard_distance, signature_band_keys
from ualm.manifests import schema
from ualm.manifests.layout import CorpusLayout, write_done
from ualm.pipelines.dedup import load_decisions
from ualm.pipelines.near_dedup import EDGES, connected_groups, near_pairs

STAGE = "caption-dedup"
MERGE_STAGE = "caption-dedup-merge"
KIND = "dedup/near_duplicate_caption"
GROUPS = schema.pa.schema([("input_index", schema.pa.int64()),
                           ("caption_group", schema.pa.string()),
                           ("caption_group_size", schema.pa.int32())])


@dataclass(frozen=True)
class CaptionTask:
    corpus: str
    unit: int
    config: dict[str, Any]


def edges_path(layout: CorpusLayout, bucket: int) -> str:
    return layout.caption_edges(bucket)


def duplicates_path(layout: CorpusLayout) -> str:
    return layout.caption_duplicates


def emit_caption_bands(task: CaptionTask) -> list[tuple[int, tuple[int, int, list[int]]]]:
    """(bucket, (band key, input index, signature)) for the unit's surviving captioned inputs."""
    config = BuildConfig.from_dict(task.config)
    layout = CorpusLayout(task.corpus)
    table = layout.read_table(layout.unit_inputs(task.unit), schema=schema.UNIT_INPUTS,
                          columns=["input_index", "record"],
                          filters=(ds.field("status") == "kept"))
    decisions = load_decisions(layout, config.work.dedup_buckets, near=True,
                               indexes=table.column("input_index").to_pylist())
    pairs = []
    for row in table.to_pylist():
        index, decision = row["input_index"], decisions.get(row["input_index"])
        if decision is not None and decision["keeper_index"] != index:
            continue
        captions = (decision or {}).get("captions") or json.loads(row["record"])["captions"]
        signature = caption_signature(captions)
        if signature is None:
            continue
        data = signature.tobytes()  # 8 bytes a value through the shuffle
        for key in signature_band_keys(signature, config.caption_dedup.bands):
            pairs.append((key % config.caption_dedup.buckets, (key, index, data)))
    return pairs


def reduce_caption_bucket(corpus: str, threshold: float, bucket: int,
                          values: list[tuple[int, int, bytes]]) -> dict[str, Any]:
    layout = CorpusLayout(corpus)
    edges, candidates = near_pairs(values, 1.0 - threshold, distance=jaccard_distance,
                                   dtype=np.uint64)
    path = edges_path(layout, bucket)
    layout.write_table(path, schema.table(edges, EDGES))
    summary = {"bucket": bucket, "candidate_pairs": candidates, "near_pairs": len(edges)}
    write_done(layout, STAGE, bucket, [path], summary)
    return summary


def merge_caption_groups(layout: CorpusLayout, config: BuildConfig) -> dict[str, Any]:
    files = [edges_path(layout, b) for b in range(config.caption_dedup.buckets)]
    groups = connected_groups(layout.read_table(files, schema=EDGES).to_pylist())
    members = sorted(i for group in groups.values() for i in group)
    rows = _rows(layout, config, members)
    cap = config.caption_dedup.max_clips_per_group
    group_rows, decisions, duplicates = [], [], []
    for first, group in sorted(groups.items()):
        for position, index in enumerate(group):
            group_rows.append({"input_index": index, "caption_group": rows[first]["input_id"],
                               "caption_group_size": len(group)})
            if cap is None or position < cap:
                continue
            keeper = group[0]
            row = rows[index]
            decisions.append({"input_index": index, "keeper_index": keeper, "captions": None})
            duplicates.append({
                "input_id": row["input_id"], "input_index": index,
                "duplicate_of": rows[keeper]["input_id"], "duplicate_of_index": keeper,
                "kind": KIND, "fingerprint": row["fingerprint"], "seconds": row["kept_seconds"],
                "captions": row["captions"], "source": row["source"], "path": row["path"],
            })
    layout.write_table(layout.caption_groups, schema.table(group_rows, GROUPS))
    layout.write_table(layout.caption_dedup_decisions, schema.table(decisions, schema.DEDUP))
    layout.write_table(duplicates_path(layout), schema.table(duplicates, schema.DUPLICATES))
    summary = {"groups": len(groups), "grouped_inputs": len(members),
               "duplicates": len(duplicates)}
    write_done(layout, MERGE_STAGE, 0, [layout.caption_groups, layout.caption_dedup_decisions,
                                        duplicates_path(layout)], summary)
    return summary


def load_caption_groups(layout: CorpusLayout, indexes: Collection[int] | None = None
                        ) -> dict[int, dict[str, Any]]:
    """input_index → {caption_group, caption_group_size} for grouped inputs (of `indexes` only,
    when given; none if the stage did not run)."""
    if not layout.exists(layout.caption_groups):
        return {}
    wanted = None if indexes is None else ds.field("input_index").isin(sorted(indexes))
    return {row.pop("input_index"): row
            for row in layout.read_table(layout.caption_groups, filters=wanted).to_pylist()}


def _rows(layout: CorpusLayout, config: BuildConfig, indexes: list[int]
          ) -> dict[int, dict[str, Any]]:
    rows: dict[int, dict[str, Any]] = {}
    units = sorted({i // config.work.unit_size for i in indexes})
    for unit in units:
        table = layout.read_table(layout.unit_inputs(unit), schema=schema.UNIT_INPUTS,
                              columns=["input_index", "input_id", "fingerprint", "kept_seconds",
                                       "record"],
                              filters=ds.field("input_index").isin(indexes))
        for row in table.to_pylist():
            record = json.loads(row.pop("record"))
            rows[row["input_index"]] = {**row, "captions": record["captions"],
                                        "source": record["source"], "path": record["path"]}
    return rows
