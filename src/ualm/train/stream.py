"""The training stream of one (rank, worker): per-source readers mixed by probability, a bounded
shuffle buffer, and packing into fixed-size batches. Deterministic for a seed, rank and worker,
and resumable exactly from a small JSON state.

Each source's shards are split between the streams: whole shards when there are at least as many
as streams, otherwise every stream reads all of them and keeps every n-th sample. Sources repeat
forever (a new shard order each epoch), so every rank always has a next batch.

Every sample is named by a reference (source, epoch, unit, index among the source's samples in
that unit). The state holds cursors, the random generators' states and the references of what
the buffer and the packer hold, never their bytes: a resumed stream re-reads those samples.
"""

from __future__ import annotations

import copy
from bisect import bisect_right
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ualm.errors import UalmError
from ualm.manifests.shard_reader import iter_samples, load_json, load_npy
from ualm.train.chat import build_sample, sample_task
from ualm.train.counting import code_tokens, sample_tokens
from ualm.train.layout import TASK_IDS, LaidSample, empty_rows, place, with_labels
from ualm.train.sources import Source
from ualm.train.text_tokenizer import TextTokenizer

Parsed = tuple[dict, dict[str, memoryview]]
"""A sample's metadata and its members' bytes."""
Ref = tuple[int, int, int, int]
"""(source index, epoch, unit index, index among the source's samples in the unit)."""
Codes = np.ndarray | dict[str, np.ndarray] | None
"""A sample's code array (`<key>.npy`), or a reasoning sample's arrays by ref
(`<key>.audio0.npy` -> "audio0")."""


@dataclass(frozen=True)
class StreamConfig:
    seq_len: int
    batch_size: int
    shuffle_buffer: int
    seed: int
    codebooks: int
    cfg_dropout: float


def _mix(*values: int) -> int:
    """splitmix64 over the values: a cheap, stable hash for per-sample coin flips."""
    x = 0x9E3779B97F4A7C15
    for v in values:
        x = (x ^ (v & 0xFFFFFFFFFFFFFFFF)) * 0xBF58476D1CE4E5B9 & 0xFFFFFFFFFFFFFFFF
        x = (x ^ (x >> 27)) * 0x94D049BB133111EB & 0xFFFFFFFFFFFFFFFF
        x ^= x >> 31
    return x


class Sample:
    __slots__ = ("laid", "length", "ref", "task", "tokens")

    def __init__(self, ref: Ref, laid: LaidSample, task: str, tokens: int) -> None:
        self.ref, self.laid, self.task, self.tokens = ref, laid, task, tokens
        self.length = len(laid)


class ShardCache:
    """The last few shards a stream read, parsed and grouped by (source, task): the sources of a
    corpus share its shards, and without this every source's reader would read and parse each
    shard again, and skip the other sources' samples one by one."""

    def __init__(self, capacity: int) -> None:
        self.capacity = max(1, capacity)
        self._shards: OrderedDict[str, dict[tuple[Any, str], list[Parsed]]] = OrderedDict()

    def samples(self, path: str, source: str, task: str) -> list[Parsed]:
        """(metadata, members) of the shard's samples of one source and task, in order."""
        groups = self._shards.get(path)
        if groups is None:
            groups = {}
            for _, parts in iter_samples(path):
                meta = load_json(parts["json"])
                groups.setdefault((meta.get("source"), sample_task(meta)), []).append(
                    (meta, parts))
            self._shards[path] = groups
            if len(self._shards) > self.capacity:
                self._shards.popitem(last=False)
        else:
            self._shards.move_to_end(path)
        return groups.get((source, task), [])


class SourceReader:
    """One source's samples for one stream, forever, from a cursor (epoch, unit, index)."""

    def __init__(self, index: int, source: Source, stream: int, streams: int, seed: int,
                 cache: ShardCache | None = None) -> None:
        self.index, self.source, self.seed = index, source, seed
        self.cache = cache or ShardCache(1)
        n = len(source.shards)
        self.by_shard = n >= streams
        self.stream, self.streams = stream, streams
        self.epoch = self.unit = self.position = 0
        self._seen = False  # whether this epoch has yielded a sample yet
        self._iter: Iterator[tuple[Ref, dict, Codes]] | None = None
        self._units: tuple[int, list[str]] | None = None  # (epoch, its shard order)

    def units(self, epoch: int) -> list[str]:
        if self._units is None or self._units[0] != epoch:
            order = np.random.default_rng([self.seed, self.index, epoch, 0x5A4D]).permutation(
                len(self.source.shards))
            shards = [self.source.shards[int(i)] for i in order]
            self._units = (epoch, shards[self.stream :: self.streams] if self.by_shard else shards)
        return self._units[1]

    def state(self) -> list[int]:
        return [self.epoch, self.unit, self.position]

    def restore(self, state: Sequence[int]) -> None:
        self.epoch, self.unit, self.position = (int(v) for v in state)
        self._seen = True  # resumed mid-epoch: this epoch yielded before
        self._iter = None

    def next(self) -> tuple[Ref, dict, Codes]:
        while True:
            if self._iter is None:
                self._iter = self._read_from(self.epoch, self.unit, self.position)
            item = next(self._iter, None)
            if item is not None:
                self.position, self._seen = item[0][3] + 1, True
                return item
            units = self.units(self.epoch)
            self.unit, self.position = self.unit + 1, 0
            if self.unit >= len(units):
                if not self._seen:
                    raise UalmError(f"source {self.source.label} has fewer samples than the "
                                    f"{self.streams} data streams (ranks x workers)",
                                    fix="use fewer data workers or ranks, or a larger corpus")
                self.epoch, self.unit, self._seen = self.epoch + 1, 0, False
            self._iter = None

    def read(self, epoch: int, unit: int, wanted: set[int]) -> dict[int, tuple[dict, Any]]:
        """Re-reads the given samples of one unit (for a restored buffer)."""
        found = {}
        for ref, meta, codes in self._read_from(epoch, unit, min(wanted)):
            if ref[3] in wanted:
                found[ref[3]] = (meta, codes)
            if len(found) == len(wanted):
                break
        return found

    def _read_from(self, epoch: int, unit: int, start: int
                   ) -> Iterator[tuple[Ref, dict, Codes]]:
        units = self.units(epoch)
        if unit >= len(units):
            return
        mine = self.cache.samples(units[unit], self.source.name, self.source.task)
        step = 1 if self.by_shard else self.streams
        first = start if self.by_shard else start + (self.stream - start) % self.streams
        for matched in range(first, len(mine), step):  # every n-th when streams share shards
            meta, parts = mine[matched]
            yield (self.index, epoch, unit, matched), meta, _codes(parts)


def _codes(parts: dict[str, memoryview]) -> Codes:
    if "npy" in parts:
        return load_npy(parts["npy"])
    refs = {ext[:-4]: load_npy(data) for ext, data in sorted(parts.items())
            if ext.endswith(".npy")}
    return refs or None


class PackedStream:
    """Batches of packed sequences from mixed, shuffled sources. Iterate to get
    (batch arrays, state); `restore(state)` continues exactly where that state was taken."""

    def __init__(self, sources: Sequence[Source], probs: Sequence[float], config: StreamConfig,
                 tokenizer: TextTokenizer, stream: int = 0, streams: int = 1) -> None:
        self.config, self.tokenizer = config, tokenizer
        self.sources = list(sources)
        self.probs = np.asarray(probs, dtype=np.float64)
        self.cumulative = np.cumsum(self.probs / self.probs.sum()).tolist()
        cache = ShardCache(2 * len(self.sources))  # each reader's current shard, and slack
        self.readers = [SourceReader(i, s, stream, streams, config.seed, cache)
                        for i, s in enumerate(sources)]
        self.stream = stream
        self.rng = np.random.default_rng([config.seed, stream, 0x3B1E])
        self.buffer: list[Sample] = []
        self.carry: Sample | None = None
        self.batches = 0
        self.counts = {s.label: [0, 0] for s in self.sources}  # samples, tokens packed
        self.skipped = {"too_long": 0, "bad": 0}
        self.exhausted = False

    # -- state ---------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        return {"readers": [r.state() for r in self.readers],
                "rng": copy.deepcopy(self.rng.bit_generator.state),
                "buffer": [list(s.ref) for s in self.buffer],
                "carry": list(self.carry.ref) if self.carry else None,
                "batches": self.batches, "counts": copy.deepcopy(self.counts),
                "skipped": dict(self.skipped)}

    def restore(self, state: dict[str, Any]) -> None:
        for reader, cursor in zip(self.readers, state["readers"], strict=True):
            reader.restore(cursor)
        self.rng.bit_generator.state = copy.deepcopy(state["rng"])
        self.batches = int(state["batches"])
        self.counts = {k: list(v) for k, v in state["counts"].items()}
        self.skipped = dict(state["skipped"])
        refs = [tuple(r) for r in state["buffer"]]
        if state["carry"] is not None:
            refs.append(tuple(state["carry"]))
        loaded = self._reload(refs)  # type: ignore[arg-type]
        self.buffer = [loaded[tuple(r)] for r in state["buffer"]]  # type: ignore[misc]
        self.carry = loaded[tuple(state["carry"])] if state["carry"] is not None else None

    def _reload(self, refs: list[Ref]) -> dict[Ref, Sample]:
        groups: dict[tuple[int, int, int], set[int]] = {}
        for s, e, u, i in refs:
            groups.setdefault((s, e, u), set()).add(i)
        out: dict[Ref, Sample] = {}
        for (s, e, u), wanted in sorted(groups.items()):
            for i, (meta, codes) in self.readers[s].read(e, u, wanted).items():
                sample = self._make((s, e, u, i), meta, codes)
                if sample is None:
                    raise RuntimeError(f"sample {(s, e, u, i)} changed since the checkpoint")
                out[(s, e, u, i)] = sample
        return out

    # -- samples -------------------------------------------------------------------------
    def _make(self, ref: Ref, meta: dict, codes: Codes) -> Sample | None:
        drop = (self.config.cfg_dropout > 0 and sample_task(meta) == "generation" and
                _mix(self.config.seed, *ref) / 2**64 < self.config.cfg_dropout)
        try:
            seq = build_sample(meta, codes, self.tokenizer, self.config.codebooks, drop)
        except ValueError:
            return None
        tokens = sample_tokens(meta, self.tokenizer) + code_tokens(codes)
        return Sample(ref, seq.laid(), self.sources[ref[0]].task, tokens)

    def _draw(self) -> Sample:
        """The next sample in mixed order (before shuffling)."""
        while True:
            source = min(bisect_right(self.cumulative, self.rng.random()), len(self.readers) - 1)
            sample = self._accepted(*self.readers[source].next())
            if sample is not None:
                return sample

    def _accepted(self, ref: Ref, meta: dict, codes: Codes) -> Sample | None:
        """The sample laid out, or None (counted in `skipped`) when it is malformed or longer
        than a sequence."""
        sample = self._make(ref, meta, codes)
        if sample is None:
            self.skipped["bad"] += 1
        elif sample.length > self.config.seq_len:
            self.skipped["too_long"] += 1
        else:
            return sample
        return None

    def _next_sample(self) -> Sample:
        """Bounded shuffle: fill the buffer, then emit a random slot and refill it."""
        if self.carry is not None:
            sample, self.carry = self.carry, None
            return sample
        size = max(1, self.config.shuffle_buffer)
        while len(self.buffer) < size:
            self.buffer.append(self._draw())
        slot = int(self.rng.integers(len(self.buffer)))
        sample = self.buffer[slot]
        self.buffer[slot] = self._draw()
        return sample

    # -- packing -------------------------------------------------------------------------
    def next_batch(self) -> dict[str, np.ndarray]:
        c = self.config
        b, length = c.batch_size, c.seq_len
        rows = empty_rows(b, length, c.codebooks)
        position_ids = np.zeros((b, length), dtype=np.int64)
        steps = np.arange(length)
        task_ids = np.full((b, length), -1, dtype=np.int64)  # -1: padding
        for row in range(b):
            at = 0
            while True:
                try:
                    sample = self._next_sample()
                except StopIteration:  # a finite stream (evaluation) ran out
                    self.exhausted = True
                    break
                n = sample.length
                if at + n > length:
                    self.carry = sample
                    break
                place(rows, row, at, sample.laid)
                position_ids[row, at : at + n] = steps[:n]
                task_ids[row, at : at + n] = TASK_IDS.get(sample.task, 2)
                count = self.counts[self.sources[sample.ref[0]].label]
                count[0] += 1
                count[1] += sample.tokens
                at += n
            position_ids[row, at:] = steps[: length - at]  # padding: a block of its own
            if self.exhausted:
                break
        self.batches += 1
        return {**with_labels(rows), "position_ids": position_ids, "task_ids": task_ids}

    def __iter__(self) -> Iterator[tuple[dict[str, np.ndarray], dict[str, Any]]]:
        while True:
            batch = self.next_batch()
            yield batch, self.state()
