"""The shard plan streams: it cuts the global order unit by unit, and a shard task names where its
samples start and how many it takes, never the samples themselves."""

from __future__ import annotations

import dataclasses
import pickle
import random
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from tests.conftest import SMALL
from ualm.manifests import schema
from ualm.manifests.layout import CorpusLayout
from ualm.manifests.shards import plan_shards
from ualm.pipelines import shard
from ualm.pipelines.dedup import duplicate_indexes, load_decisions


def _whole_list_cut(sizes: list[int], max_samples: int, max_bytes: int) -> list[tuple[int, int]]:
    """The rule as it read before the plan streamed, on the whole list at once."""
    ranges, start, used = [], 0, 0
    for i, size in enumerate(sizes):
        if i - start >= max_samples or (i > start and used + size > max_bytes):
            ranges.append((start, i))
            start, used = i, 0
        used += size
    return ranges + ([(start, len(sizes))] if start < len(sizes) else [])


def test_the_streaming_cutter_cuts_as_the_whole_list_rule_did() -> None:
    rng = random.Random(3)
    for _ in range(300):
        sizes = [rng.choice([1, 5, 40, 90, 250]) for _ in range(rng.randint(0, 40))]
        max_samples, max_bytes = rng.randint(1, 8), rng.choice([50, 100, 300])
        assert plan_shards(iter(sizes), max_samples, max_bytes) == _whole_list_cut(
            sizes, max_samples, max_bytes)


def test_shard_tasks_cover_the_global_order_once_and_carry_no_keys(local_corpus: Path) -> None:
    layout = CorpusLayout(local_corpus)
    units = len(layout.list(layout.path("_work/done"), prefix="ingest-"))
    assert units > 2
    tasks = shard.plan(layout, SMALL, units)
    duplicates = duplicate_indexes(layout, SMALL.work.dedup_buckets)

    every = [r for u in range(units)
             for r in shard._kept_rows(shard._segments(layout, u), duplicates)]
    assert every == sorted(every, key=lambda r: (r["input_index"], r["segment"]))
    for modality in shard.MODALITIES:
        mine = [t for t in tasks if t.modality == modality]
        spans = [[shard._segments(layout, u) for u in range(t.first_unit, t.last_unit + 1)]
                 for t in mine]
        planned = [r["key"] for t, tables in zip(mine, spans, strict=True)
                   for _, rows in shard._shard_rows(t, tables, duplicates) for r in rows]
        assert planned == [r["key"] for r in every if r["modality"] == modality]
        written = [pq.read_table(layout.samples_part(modality, t.shard)).column("key")
                   .to_pylist() for t in mine]
        assert [k for part in written for k in part] == planned
        assert all(t.count <= SMALL.shards.max_samples for t in mine)
    assert len({t.stage_index for t in tasks}) == len(tasks)
    sizes = {len(pickle.dumps(t)) for t in tasks}
    assert max(sizes) - min(sizes) < 16  # a reference: the same size whatever the shard holds


def test_later_decisions_override_earlier_ones_in_the_duplicate_set(tmp_path: Path) -> None:
    layout = CorpusLayout(tmp_path / "corpus")

    def decide(path: str, rows: list[tuple[int, int]]) -> None:
        layout.write_table(path, schema.table(
            [{"input_index": i, "keeper_index": k, "captions": None} for i, k in rows],
            schema.DEDUP))

    decide(layout.dedup_bucket(0), [(1, 1), (3, 1)])           # exact: 3 copies 1
    decide(layout.dedup_bucket(1), [(7, 7), (9, 7)])           # exact: 9 copies 7
    decide(layout.near_dedup_decisions, [(0, 0), (1, 0)])      # near: 1 now copies 0
    decide(layout.caption_dedup_decisions, [(7, 7), (9, 9)])   # captions keep 9 after all
    found = duplicate_indexes(layout, buckets=2)
    assert found.tolist() == [1, 3]
    decisions = load_decisions(layout, 2)
    assert found.tolist() == sorted(i for i, d in decisions.items() if d["keeper_index"] != i)
    assert sorted(load_decisions(layout, 2, indexes=[3, 9])) == [3, 9]


@pytest.mark.parametrize("max_samples", [1, 3, 7])
def test_a_shard_task_spans_exactly_the_units_of_its_samples(local_corpus: Path,
                                                              max_samples: int) -> None:
    """The worker reads the units from `first_unit` to `last_unit`: each of them holds at least
    one of the shard's samples (1 sample a shard closes shards at every unit boundary)."""
    layout = CorpusLayout(local_corpus)
    units = len(layout.list(layout.path("_work/done"), prefix="ingest-"))
    config = dataclasses.replace(SMALL, shards=dataclasses.replace(SMALL.shards,
                                                                   max_samples=max_samples))
    duplicates = duplicate_indexes(layout, SMALL.work.dedup_buckets)
    for task in shard.plan(layout, config, units):
        tables = [shard._segments(layout, u) for u in range(task.first_unit, task.last_unit + 1)]
        spans = [u for u, _ in shard._shard_rows(task, tables, duplicates)]
        assert spans[0] == task.first_unit and spans[-1] == task.last_unit, task
