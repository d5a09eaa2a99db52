"""Lanes: the global batch's rows, each packed by a stream of its own, so that the sample order
does not depend on how many ranks or loader workers share the work.

A global batch (one optimizer step: ranks x accumulated micro-batches x batch_size rows) has one
lane per row. Lane `g` is a PackedStream seeded by `g` among `lanes` streams (its share of every
source's shards), and every step it packs exactly one row: global row `g`. Rank r's micro-batch
m holds lanes (r * accumulate + m) * batch_size + j, and its loader workers split those rows into
contiguous blocks; the main process joins one block of every worker into the rank's batch. The
state is per lane, so a checkpoint resumes exactly on any number of ranks or workers that keeps
the number of lanes.

The lanes of one worker share one shard cache: they walk the same shards in the same order, so
each shard is read and parsed once per worker, not once per lane.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from ualm.train.data.rows import Rows
from ualm.train.data.source_reader import ShardCache
from ualm.train.data.sources import Source
from ualm.train.data.stream import PackedStream, StreamConfig
from ualm.train.sequence.text_tokenizer import TextTokenizer

STATE_KEY = "stream_state"


def rank_lanes(rank: int, world: int, batch_size: int, accumulate: int = 1) -> list[list[int]]:
    """Per micro-batch of a rank, the lanes (global rows) of its rows, in order."""
    assert 0 <= rank < world
    return [[(rank * accumulate + m) * batch_size + j for j in range(batch_size)]
            for m in range(accumulate)]


def block(rows: int, parts: int, part: int) -> range:
    """Positions of a batch's rows that loader worker `part` of `parts` packs."""
    return range(part * rows // parts, (part + 1) * rows // parts)


class LaneSet:
    """The lanes one worker drives: one row per lane per micro-batch, in micro-batch order."""

    def __init__(self, sources: Sequence[Source], probs: Sequence[float], config: StreamConfig,
                 tokenizer: TextTokenizer, lanes: int, slots: list[list[int]],
                 resume: dict[int, dict] | None = None) -> None:
        self.slots, self.config = slots, config
        mine = sorted({lane for slot in slots for lane in slot})
        cache = ShardCache(2 * len(sources) * max(1, len(mine)))
        self.streams: dict[int, PackedStream] = {}
        for lane in mine:
            stream = PackedStream(sources, probs, config, tokenizer, lane, lanes, cache)
            if resume and lane in resume:
                stream.restore(resume[lane])
            self.streams[lane] = stream

    def __iter__(self) -> Iterator[dict[str, Any]]:
        c = self.config
        while True:
            for slot in self.slots:
                rows = Rows(len(slot), c.seq_len, c.codebooks)
                refs = {}
                for i, lane in enumerate(slot):
                    refs[lane] = self.streams[lane].pack_row(rows, i)
                    self.streams[lane].batches += 1
                batch: dict[str, Any] = {k: torch.from_numpy(v)
                                         for k, v in rows.arrays().items()}
                batch[STATE_KEY] = {"lanes": {lane: self.streams[lane].state() for lane in slot},
                                    "refs": refs}
                yield batch


class LaneDataset(IterableDataset):
    """A rank's rows; in loader worker w of n, the w-th block of every micro-batch."""

    def __init__(self, sources: Sequence[Source], probs: Sequence[float], config: StreamConfig,
                 tokenizer: TextTokenizer, slots: list[list[int]], lanes: int,
                 resume: dict[int, dict] | None = None, workers: int = 1) -> None:
        self.sources, self.probs, self.config = list(sources), list(probs), config
        self.tokenizer, self.slots, self.lanes = tokenizer, slots, lanes
        self.resume, self.workers = resume or {}, max(1, workers)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        info = get_worker_info()
        part = info.id if info else 0
        slots = [[slot[i] for i in block(len(slot), self.workers, part)] for slot in self.slots]
        yield from LaneSet(self.sources, self.probs, self.config, self.tokenizer, self.lanes,
                           slots, self.resume)


class Joined:
    """A rank's batches: one block from each loader worker (the DataLoader serves its workers
    round-robin), joined in worker order."""

    def __init__(self, loader: DataLoader, parts: int) -> None:
        self.loader, self.parts = loader, parts

    def __iter__(self) -> Iterator[dict[str, Any]]:
        blocks = iter(self.loader)
        while True:
            got = [next(blocks) for _ in range(self.parts)]
            yield join(got)


def to_device(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    """A batch's tensors moved to `device`, nested batches (a DPO batch's replay) too; stream
    states pass as they are. Lightning's generic move walks every element of a state (a lane's
    buffer holds thousands of references), which cost a quarter of a tiny-model step."""
    return {k: v if k == STATE_KEY else
            to_device(v, device) if isinstance(v, dict) else
            v.to(device) if isinstance(v, torch.Tensor) else v
            for k, v in batch.items()}


def join(blocks: list[dict[str, Any]]) -> dict[str, Any]:
    if len(blocks) == 1:
        return blocks[0]
    out: dict[str, Any] = {k: torch.cat([b[k] for b in blocks])
                           for k in blocks[0] if k != STATE_KEY}
    out[STATE_KEY] = {part: {k: v for b in blocks for k, v in b[STATE_KEY][part].items()}
                      for part in ("lanes", "refs")}
    return out
