"""Reading one source's samples for one training stream: which shards (whole ones, or every n-th
sample of shared ones), in a seeded order per epoch, from a resumable cursor; and the small cache
that lets the sources of one corpus share each parsed shard, and reads the next shards in the
background while the current one is consumed."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np

from ualm.errors import UalmError
from ualm.manifests.shard_reader import load_json, load_npy, members_of, read_shard, samples_of
from ualm.train.data.sources import Source
from ualm.train.sequence.chat import sample_task

Parsed = tuple[dict, dict[str, memoryview]]
"""A sample's metadata and its members' bytes."""
Ref = tuple[int, int, int, int]
"""(source index, epoch, unit index, index among the source's samples in the unit)."""
Codes = np.ndarray | dict[str, np.ndarray] | None
"""A sample's code array (`<key>.npy`), or a reasoning sample's arrays by ref
(`<key>.audio0.npy` -> "audio0")."""

READ_AHEAD = 2
"""Shards a reader has fetched in the background beyond the one it reads: a bucket's latency
hides behind parsing and packing the current shard (the bytes only: parsing needs the GIL)."""


class ShardCache:
    """The last few shards a stream read, parsed and grouped by (source, task): the sources of a
    corpus share its shards, and without this every source's reader would read and parse each
    shard again, and skip the other sources' samples one by one. Shards asked for ahead
    (`prefetch`) are read by two background threads, at most `capacity` of them waiting."""

    def __init__(self, capacity: int) -> None:
        self.capacity = max(1, capacity)
        self._shards: OrderedDict[str, dict[tuple[Any, str], list[Parsed]]] = OrderedDict()
        self._orders: OrderedDict[tuple[int, int, int], list[str]] = OrderedDict()
        self._pending: OrderedDict[str, Future[bytes]] = OrderedDict()
        self._pool: ThreadPoolExecutor | None = None
        self.read_ahead_used = 0
        """Shards whose bytes were already fetched (or on their way) when first wanted."""

    def prefetch(self, paths: Sequence[str]) -> None:
        """Starts reading shards that a reader will want next, unless parsed or on their way."""
        for path in paths:
            if path in self._shards or path in self._pending:
                continue
            if self._pool is None:
                self._pool = ThreadPoolExecutor(2, thread_name_prefix="ualm-shard-read")
            self._pending[path] = self._pool.submit(read_shard, path)
            if len(self._pending) > self.capacity:  # not wanted after all (a restored cursor)
                self._pending.popitem(last=False)

    def order(self, shards: tuple[str, ...], key: tuple[int, int, int]) -> list[str]:
        """A source's shards in the seeded order of an epoch, key (seed, source, epoch): the
        same for every stream, so the streams of one worker compute it once."""
        if len(shards) == 1:  # the only permutation; a small source (one shard read by every
            return list(shards)  # lane) starts an epoch every few samples: no generator for it
        order = self._orders.get(key)
        if order is None:
            perm = np.random.default_rng([*key, 0x5A4D]).permutation(len(shards))
            order = self._orders[key] = [shards[int(i)] for i in perm]
            if len(self._orders) > 4 * self.capacity:
                self._orders.popitem(last=False)
        return order

    def samples(self, path: str, source: str, task: str) -> list[Parsed]:
        """(metadata, members) of the shard's samples of one source and task, in order."""
        groups = self._shards.get(path)
        if groups is None:
            pending = self._pending.pop(path, None)
            self.read_ahead_used += pending is not None
            data = pending.result() if pending is not None else read_shard(path)
            groups = {}
            for _, parts in samples_of(members_of(data)):
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
        # a source with fewer samples than streams: every stream reads all of it (else some
        # would get none, and the number of streams grows with the cluster)
        self.stride = 1 if self.by_shard or source.samples < streams else streams
        self.stream, self.streams = stream, streams
        self.epoch = self.unit = self.position = 0
        self._seen = False  # whether this epoch has yielded a sample yet
        self._iter: Iterator[tuple[Ref, dict, Codes]] | None = None
        self._units: tuple[int, list[str]] | None = None  # (epoch, its shard order)

    def units(self, epoch: int) -> list[str]:
        if self._units is None or self._units[0] != epoch:
            self._units = (epoch, self._shards_of(epoch))
        return self._units[1]

    def _shards_of(self, epoch: int) -> list[str]:
        shards = self.cache.order(self.source.shards, (self.seed, self.index, epoch))
        return shards[self.stream :: self.streams] if self.by_shard else shards

    def _read_ahead(self, epoch: int, unit: int) -> None:
        """Has the cache fetch the shards of the units after this one (into the next epoch)."""
        units = self.units(epoch)
        ahead = units[unit + 1 : unit + 1 + READ_AHEAD]
        if len(ahead) < READ_AHEAD:
            ahead += self._shards_of(epoch + 1)[: READ_AHEAD - len(ahead)]
        self.cache.prefetch(ahead)

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
                    raise UalmError(f"source {self.source.label} gave none of its samples to "
                                    f"lane {self.stream} of {self.streams} (each lane takes "
                                    f"every {self.streams}th sample of each shard)",
                                    fix="build the corpus with larger shards, or train with "
                                        "fewer rows per global batch")
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
        if READ_AHEAD and len(self.source.shards) > 1:
            self._read_ahead(epoch, unit)
        mine = self.cache.samples(units[unit], self.source.name, self.source.task)
        step = self.stride
        first = start + (self.stream - start) % step
        for matched in range(first, len(mine), step):  # every n-th when streams share shards
            meta, parts = mine[matched]
            yield (self.index, epoch, unit, matched), meta, _codes(parts)


def _codes(parts: dict[str, memoryview]) -> Codes:
    if "npy" in parts:
        return load_npy(parts["npy"])
    refs = {ext[:-4]: load_npy(data) for ext, data in sorted(parts.items())
            if ext.endswith(".npy")}
    return refs or None
