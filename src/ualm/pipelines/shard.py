"""Shard assignment (a global, deterministic plan) and the shard writers (one task per shard).

The plan orders every kept, non-duplicate sample by (input index, window) and cuts that list by
count and bytes; each shard task then streams its samples' payloads from the unit files in that
same order, so a shard's bytes depend only on the inputs and the config.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import groupby
from typing import Any

import pyarrow.dataset as ds

from ualm.config import BuildConfig
from ualm.manifests import schema
from ualm.manifests.layout import CorpusLayout, write_done
from ualm.manifests.shards import plan_shards
from ualm.pipelines.caption_dedup import load_caption_groups
from ualm.pipelines.dedup import load_decisions
from ualm.pipelines.faults import maybe_fail
from ualm.pipelines.staging import read_payloads

STAGE = "shard"
MODALITIES = ("audio", "text")


@dataclass(frozen=True)
class ShardTask:
    corpus: str
    modality: str
    shard: int
    stage_index: int
    """Index of this task among all shard tasks (names its completion record)."""
    config: dict[str, Any]
    entries: tuple[tuple[int, str], ...]
    """(unit, key) of every sample, in shard order."""


def plan(layout: CorpusLayout, config: BuildConfig, units: int) -> list[ShardTask]:
    decisions = load_decisions(layout, config.work.dedup_buckets)
    duplicate = {i for i, d in decisions.items() if d["keeper_index"] != i}
    files = [layout.unit_segments(u) for u in range(units)]
    table = layout.read_table(files, schema=schema.UNIT_SEGMENTS,
                              columns=["key", "input_index", "segment", "modality",
                                       "payload_bytes"])
    rows = sorted(
        (r for r in table.to_pylist() if r["input_index"] not in duplicate),
        key=lambda r: (r["input_index"], r["segment"]),
    )
    tasks: list[ShardTask] = []
    for modality in MODALITIES:
        mine = [r for r in rows if r["modality"] == modality]
        ranges = plan_shards([r["payload_bytes"] for r in mine],
                             config.shards.max_samples, config.shards.max_bytes)
        for shard, (start, stop) in enumerate(ranges):
            entries = tuple((r["input_index"] // config.work.unit_size, r["key"])
                            for r in mine[start:stop])
            tasks.append(ShardTask(layout.location, modality, shard, len(tasks),
                                   config.to_dict(), entries))
    return tasks


def run_shard(task: ShardTask) -> dict[str, Any]:
    config = BuildConfig.from_dict(task.config)
    layout = CorpusLayout(task.corpus)
    maybe_fail(layout, STAGE, task.stage_index)
    decisions = load_decisions(layout, config.work.dedup_buckets)
    caption_groups = load_caption_groups(layout)
    shard_path = layout.shard(task.modality, task.shard)
    shard_name = layout.relative(shard_path)
    config_hash = config.hash()
    manifest_rows = []
    with layout.shard_writer(shard_path) as writer:
        for segment, record, payload in _samples(layout, task.entries):
            captions = record["captions"]
            decision = decisions.get(segment["input_index"])
            if decision is not None and decision["captions"] is not None:
                captions = decision["captions"]
            meta = {
                "key": segment["key"], "sample_id": segment["sample_id"],
                "input_id": record["input_id"], "captions": captions,
                "source": record["source"], "license": record["license"], "task": record["task"],
                "language": record["language"], "config_hash": config_hash,
                "extra": json.loads(record["extra"]),
            }
            meta.update(caption_groups.get(segment["input_index"], {}))
            sample = {"__key__": segment["key"]}
            if task.modality == "audio":
                meta.update(offset=segment["offset"], seconds=segment["seconds"],
                            sample_rate=config.audio.sample_rate)
                meta.update({name: segment[name] for name, _ in schema.ANNOTATIONS
                             if segment.get(name) is not None
                             and name not in schema.MANIFEST_ONLY})
                sample["flac"] = payload
            else:
                meta["messages"] = json.loads(payload)
            sample["json"] = json.dumps(meta, sort_keys=True, ensure_ascii=False).encode()
            writer.write(sample)
            manifest_rows.append({
                **segment, **{k: record[k] for k in ("input_id", "source", "license", "task",
                                                     "language", "path", "url", "extra")},
                **caption_groups.get(segment["input_index"], {}),
                "captions": captions, "fingerprint": record["fingerprint"],
                "sample_rate": config.audio.sample_rate if task.modality == "audio" else None,
                "shard": shard_name, "config_hash": config_hash,
            })
    part = layout.samples_part(task.modality, task.shard)
    layout.write_table(part, schema.table(manifest_rows, schema.SAMPLES))
    summary = {"shard": shard_name, "samples": len(manifest_rows),
               "seconds": sum(r["seconds"] for r in manifest_rows)}
    write_done(layout, STAGE, task.stage_index, [shard_path, part], summary,
               known_hashes={shard_path: writer.sha256})
    return summary


def _samples(layout: CorpusLayout,
             entries: tuple[tuple[int, str], ...]) -> Iterator[tuple[dict, dict, bytes]]:
    """Streams (segment metadata, input record, payload) unit by unit, in shard order."""
    for unit, group in groupby(entries, key=lambda e: e[0]):
        keys = [key for _, key in group]
        wanted = set(keys)
        segments = {
            r["key"]: r
            for r in layout.read_table(layout.unit_segments(unit),
                                       filters=ds.field("key").isin(keys)).to_pylist()
        }
        indexes = sorted({s["input_index"] for s in segments.values()})
        records = {}
        inputs = layout.read_table(layout.unit_inputs(unit),
                                   columns=["input_index", "fingerprint", "record"],
                                   filters=ds.field("input_index").isin(indexes))
        for row in inputs.to_pylist():
            records[row["input_index"]] = {**json.loads(row["record"]),
                                           "fingerprint": row["fingerprint"]}
        expected = iter(keys)
        with layout.open(layout.unit_payload(unit)) as source:
            for key, payload in read_payloads(source, wanted):
                if key != next(expected):
                    raise RuntimeError(f"payload order of unit {unit} differs from the plan")
                segment = segments[key]
                yield segment, records[segment["input_index"]], payload
        missing = next(expected, None)
        if missing is not None:
            raise RuntimeError(f"payload of {missing} is missing from unit {unit}")
