"""Shard assignment (a global, deterministic plan) and the shard writers (one task per shard).

The plan orders every kept, non-duplicate sample by (input index, window) and cuts that order by
count and bytes, streaming unit by unit; a shard task names where its first sample sits and how
many it takes, and its worker streams those samples' payloads from the unit files in that same
order, so a shard's bytes depend only on the inputs and the config.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds

from ualm.config import BuildConfig
from ualm.manifests import schema
from ualm.manifests.layout import CorpusLayout, write_done
from ualm.manifests.shards import ShardCutter
from ualm.pipelines.caption_dedup import load_caption_groups
from ualm.pipelines.caption_merge import decided_captions
from ualm.pipelines.dedup import duplicate_indexes, load_decisions
from ualm.pipelines.faults import maybe_fail
from ualm.pipelines.staging import read_payloads

STAGE = "shard"
PLAN_READ_AHEAD = 8  # units whose segments the plan reads while it cuts the current one
T = TypeVar("T")
R = TypeVar("R")
MODALITIES = ("audio", "text")


@dataclass(frozen=True)
class ShardTask:
    """One shard, by reference: where its first sample sits in the global order and how many
    samples it takes from there (the worker reads its own units' rows; a task carries no keys)."""

    corpus: str
    modality: str
    shard: int
    stage_index: int
    """Index of this task among all shard tasks (names its completion record)."""
    config: dict[str, Any]
    first_unit: int
    """The unit holding the shard's first sample."""
    skip: int
    """Samples of this modality in `first_unit` that belong to earlier shards."""
    count: int
    last_unit: int
    """The unit holding the shard's last sample."""


def plan(layout: CorpusLayout, config: BuildConfig, units: int) -> list[ShardTask]:
    """One pass over the units in order: each unit's kept samples, sorted by (input index,
    window), are the next stretch of the global order, since units hold consecutive inputs.
    Memory: the tasks (O(shards)), the segments of the units read ahead and the set of
    duplicates."""
    duplicate = duplicate_indexes(layout, config.work.dedup_buckets)
    cutters = {m: ShardCutter(config.shards.max_samples, config.shards.max_bytes)
               for m in MODALITIES}
    opening: dict[str, tuple[int, int]] = {}
    last: dict[str, int] = {}  # the unit of each modality's latest sample
    found: dict[str, list[tuple[int, int, int, int]]] = {m: [] for m in MODALITIES}
    tables = ahead(lambda u: _segments(layout, u), range(units), depth=PLAN_READ_AHEAD)
    for unit, table in enumerate(tables):
        positions = dict.fromkeys(MODALITIES, 0)
        for row in _kept_rows(table, duplicate):
            modality, cutter = row["modality"], cutters[row["modality"]]
            if cutter.count == 0:
                opening[modality] = (unit, 0)
            if cutter.add(row["payload_bytes"]):
                start, stop = cutter.closed
                found[modality].append((*opening[modality], stop - start, last[modality]))
                opening[modality] = (unit, positions[modality])
            positions[modality] += 1
            last[modality] = unit
    tasks: list[ShardTask] = []
    for modality in MODALITIES:
        if cutters[modality].finish():
            start, stop = cutters[modality].closed
            found[modality].append((*opening[modality], stop - start, last[modality]))
        for shard, (first_unit, skip, count, last_unit) in enumerate(found[modality]):
            tasks.append(ShardTask(layout.location, modality, shard, len(tasks),
                                   config.to_dict(), first_unit, skip, count, last_unit))
    return tasks


def _segments(layout: CorpusLayout, unit: int) -> pa.Table:
    return layout.read_table(layout.unit_segments(unit), schema=schema.UNIT_SEGMENTS)


def _kept_rows(table: pa.Table, duplicate: np.ndarray) -> list[dict[str, Any]]:
    """A unit's samples that go into shards, in global order (input index, window)."""
    kept = ~np.isin(table.column("input_index").to_numpy(), duplicate)
    rows = (r for r, keep in zip(table.to_pylist(), kept, strict=True) if keep)
    return sorted(rows, key=lambda r: (r["input_index"], r["segment"]))


def _shard_rows(task: ShardTask, tables: list[pa.Table],
                duplicate: np.ndarray) -> Iterator[tuple[int, list[dict[str, Any]]]]:
    """(unit, its segment rows in shard order) of the units from the task's first to its last
    (`tables`, their segments, in order)."""
    skip, remaining = task.skip, task.count
    for unit, table in enumerate(tables, start=task.first_unit):
        mine = [r for r in _kept_rows(table, duplicate)
                if r["modality"] == task.modality][skip:skip + remaining]
        if mine:
            yield unit, mine
        remaining -= len(mine)
        skip = 0


def run_shard(task: ShardTask) -> dict[str, Any]:
    config = BuildConfig.from_dict(task.config)
    layout = CorpusLayout(task.corpus)
    maybe_fail(layout, STAGE, task.stage_index)
    tables = [_segments(layout, u) for u in range(task.first_unit, task.last_unit + 1)]
    # one read of the decisions, for the inputs of the shard's units only
    spanned = {i for t in tables for i in t.column("input_index").to_pylist()}
    decisions = load_decisions(layout, config.work.dedup_buckets, indexes=spanned)
    duplicate = np.array(sorted(i for i, d in decisions.items() if d["keeper_index"] != i),
                         dtype=np.int64)
    units = list(_shard_rows(task, tables, duplicate))
    indexes = {r["input_index"] for _, rows in units for r in rows}
    caption_groups = load_caption_groups(layout, indexes)
    shard_path = layout.shard(task.modality, task.shard)
    shard_name = layout.relative(shard_path)
    config_hash = config.hash()
    manifest_rows = []
    with layout.shard_writer(shard_path) as writer:
        for segment, record, payload in _samples(layout, iter(units)):
            captions, scores = decided_captions(decisions.get(segment["input_index"]), record)
            meta = {
                "key": segment["key"], "sample_id": segment["sample_id"],
                "input_id": record["input_id"], "captions": captions,
                "source": record["source"], "license": record["license"], "task": record["task"],
                "language": record["language"], "config_hash": config_hash,
                "extra": json.loads(record["extra"]),
            }
            if scores:
                meta["clap_scores"] = scores
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
                "captions": captions, "clap_scores": scores or None,
                "fingerprint": record["fingerprint"],
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


def _samples(layout: CorpusLayout, units: Iterator[tuple[int, list[dict[str, Any]]]]
             ) -> Iterator[tuple[dict, dict, bytes]]:
    """Streams (segment metadata, input record, payload) unit by unit, in shard order."""
    for unit, rows, inputs, source in _read_ahead(layout, units):
        keys = [r["key"] for r in rows]
        wanted = set(keys)
        segments = {r["key"]: r for r in rows}
        records = {}
        for row in inputs.to_pylist():
            records[row["input_index"]] = {**json.loads(row["record"]),
                                           "fingerprint": row["fingerprint"]}
        expected = iter(keys)
        with source:
            for key, payload in read_payloads(source, wanted):
                if key != next(expected):
                    raise RuntimeError(f"payload order of unit {unit} differs from the plan")
                segment = segments[key]
                yield segment, records[segment["input_index"]], payload
        missing = next(expected, None)
        if missing is not None:
            raise RuntimeError(f"payload of {missing} is missing from unit {unit}")


def _read_ahead(layout: CorpusLayout, units: Iterator[tuple[int, list[dict[str, Any]]]]
                ) -> Iterator[tuple[int, list[dict[str, Any]], Any, Any]]:
    """(unit, rows, its input records, its open payload file) of each unit, the next unit's
    reads running while this one's samples are written."""
    return ahead(lambda item: _open_unit(layout, *item), units, depth=1)


def ahead(fn: Callable[[T], R], items: Iterable[T], depth: int) -> Iterator[R]:
    """fn of each item, in order, with up to `depth` of the next calls running meanwhile in
    threads: in a store each read waits a round trip, and these read unit after unit."""
    with ThreadPoolExecutor(depth) as pool:
        pending: deque[Future[R]] = deque()
        for item in items:
            pending.append(pool.submit(fn, item))
            if len(pending) > depth:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def _open_unit(layout: CorpusLayout, unit: int, rows: list[dict[str, Any]]
               ) -> tuple[int, list[dict[str, Any]], Any, Any]:
    indexes = sorted({r["input_index"] for r in rows})
    inputs = layout.read_table(layout.unit_inputs(unit),
                               columns=["input_index", "fingerprint", "record"],
                               filters=ds.field("input_index").isin(indexes))
    return unit, rows, inputs, layout.open(layout.unit_payload(unit))
