"""One training stream (in training, one lane: one row of the global batch, see `lanes`):
per-source readers mixed by probability, a bounded shuffle buffer, and packing into fixed-size
rows. Deterministic for a seed and its stream number among n streams, and resumable exactly from
a small JSON state.

Each source's shards are split between the streams: whole shards when there are at least as many
as streams, otherwise every stream reads all of them and keeps every n-th sample (all of them,
for a source with fewer samples than streams). Sources repeat forever (a new shard order each
epoch), so every stream always has a next row.

Every sample is named by a reference (source, epoch, unit, index among the source's samples in
that unit). The state holds cursors, the random generators' states and the references of what
the buffer and the packer hold, never their bytes: a resumed stream re-reads those samples.

A sample longer than a sequence is cut into pieces that fit (`ualm.train.sequence.split`, the
rule the blend's statistics count by), each named by its sample's reference and its piece index;
a resumed stream re-reads the sample and cuts it again, identically. The pieces of a sample enter
the shuffle buffer one after another as if drawn in a row. A sample that cannot be cut to fit is
skipped and counted (`too_long`), as the statistics count it: 0 tokens.
"""

from __future__ import annotations

import copy
from bisect import bisect_right
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ualm.errors import UalmError
from ualm.train.blend.counting import code_tokens, sample_tokens
from ualm.train.data.rows import Rows, best_fit
from ualm.train.data.source_reader import Codes, Ref, ShardCache, SourceReader
from ualm.train.data.sources import Source
from ualm.train.sequence.chat import build_sample, sample_task
from ualm.train.sequence.layout import TASK_IDS, LaidSample
from ualm.train.sequence.split import laid_length, split_sample
from ualm.train.sequence.text_tokenizer import TextTokenizer

MAX_SKIPS_IN_A_ROW = 10_000
"""Skipped draws in a row after which a stream gives up (fewer for a small corpus: twice its
samples): with only a few samples in 10,000 usable, training would learn from almost nothing."""


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


def _plain(state: dict[str, Any]) -> dict[str, Any]:
    """A generator's state, copied one level down (its values are ints and small dicts of
    ints): what `copy.deepcopy` did, at a fraction of the cost per row."""
    return {k: dict(v) if isinstance(v, dict) else v for k, v in state.items()}


class Sample:
    __slots__ = ("laid", "length", "ref", "tokens")

    def __init__(self, ref: Ref, laid: LaidSample, tokens: int) -> None:
        self.ref, self.laid, self.tokens = ref, laid, tokens
        self.length = laid.length


class PackedStream:
    """Batches of packed sequences from mixed, shuffled sources. Iterate to get
    (batch arrays, state); `restore(state)` continues exactly where that state was taken."""

    def __init__(self, sources: Sequence[Source], probs: Sequence[float], config: StreamConfig,
                 tokenizer: TextTokenizer, stream: int = 0, streams: int = 1,
                 cache: ShardCache | None = None) -> None:
        self.config, self.tokenizer = config, tokenizer
        self.sources = list(sources)
        self.probs = np.asarray(probs, dtype=np.float64)
        self.cumulative = np.cumsum(self.probs / self.probs.sum()).tolist()
        # each reader's current shard, and slack; lanes of one worker pass one shared cache
        cache = cache or ShardCache(2 * len(self.sources))
        self.readers = [SourceReader(i, s, stream, streams, config.seed, cache)
                        for i, s in enumerate(sources)]
        self.stream = stream
        self.rng = np.random.default_rng([config.seed, stream, 0x3B1E])
        self.buffer: list[Sample] = []
        self.carry: Sample | None = None
        self.pending: list[Sample] = []  # the rest of a cut sample, drawn before the next one
        self.cut = 0  # samples cut into pieces
        self.batches = 0
        self.counts = {s.label: [0, 0] for s in self.sources}  # samples, tokens packed
        self.labels = [s.label for s in self.sources]
        self.task_ids = [TASK_IDS.get(s.task, 2) for s in self.sources]
        self.skipped = {"too_long": 0, "bad": 0}
        self.give_up = min(MAX_SKIPS_IN_A_ROW, 2 * sum(s.samples for s in self.sources) + 16)
        self.exhausted = False

    # -- state ---------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        return {"readers": [r.state() for r in self.readers],
                "rng": _plain(self.rng.bit_generator.state),  # a new dict each call
                "buffer": [s.ref for s in self.buffer],  # tuples: a JSON round trip lists them
                "carry": self.carry.ref if self.carry else None,
                "pending": [s.ref for s in self.pending], "cut": self.cut,
                "batches": self.batches, "counts": {k: [*v] for k, v in self.counts.items()},
                "skipped": dict(self.skipped)}

    def restore(self, state: dict[str, Any]) -> None:
        for reader, cursor in zip(self.readers, state["readers"], strict=True):
            reader.restore(cursor)
        self.rng.bit_generator.state = copy.deepcopy(state["rng"])
        self.batches = int(state["batches"])
        self.counts = {k: list(v) for k, v in state["counts"].items()}
        self.skipped = dict(state["skipped"])
        self.cut = int(state.get("cut", 0))  # a state from before cutting has none
        pending = [tuple(r) for r in state.get("pending", ())]
        refs = [tuple(r) for r in state["buffer"]] + pending
        if state["carry"] is not None:
            refs.append(tuple(state["carry"]))
        loaded = self._reload(refs)
        self.buffer = [loaded[tuple(r)] for r in state["buffer"]]
        self.pending = [loaded[r] for r in pending]
        self.carry = loaded[tuple(state["carry"])] if state["carry"] is not None else None

    def _reload(self, refs: list[tuple]) -> dict[tuple, Sample]:
        """The samples (a 4-part ref) and pieces (a 5th part: the piece's index) named."""
        groups: dict[tuple[int, int, int], set[int]] = {}
        for ref in refs:
            groups.setdefault(tuple(ref[:3]), set()).add(ref[3])
        cut = {tuple(r[:4]) for r in refs if len(r) == 5}
        out: dict[tuple, Sample] = {}
        for (s, e, u), wanted in sorted(groups.items()):
            for i, (meta, codes) in self.readers[s].read(e, u, wanted).items():
                whole = self._make((s, e, u, i), meta, codes)
                if whole is not None:
                    out[whole.ref] = whole
                    if whole.ref in cut:
                        out.update((p.ref, p) for p in self._pieces(whole.ref, meta, codes))
        missing = [r for r in refs if r not in out]
        if missing:
            raise RuntimeError(f"samples {missing[:3]} changed since the checkpoint")
        return out

    # -- samples -------------------------------------------------------------------------
    def _dropped(self, ref: Ref, meta: dict) -> bool:
        """Whether a generation sample's condition is dropped (a coin flip per sample)."""
        return (self.config.cfg_dropout > 0 and sample_task(meta) == "generation" and
                _mix(self.config.seed, *ref) / 2**64 < self.config.cfg_dropout)

    def _make(self, ref: Ref, meta: dict, codes: Codes) -> Sample | None:
        """The whole sample laid out (None: malformed)."""
        drop = self._dropped(ref, meta)
        try:
            seq = build_sample(meta, codes, self.tokenizer, self.config.codebooks, drop)
        except ValueError:
            return None
        tokens = sample_tokens(meta, self.tokenizer) + code_tokens(codes)
        return Sample(ref, seq.laid(), tokens)

    def _pieces(self, ref: Ref, meta: dict, codes: Codes) -> list[Sample]:
        """The pieces of a sample longer than a sequence ([]: it cannot be cut to fit)."""
        c = self.config
        return [Sample((*ref, p), build_sample(m, own, self.tokenizer, c.codebooks).laid(),
                       sample_tokens(m, self.tokenizer) + code_tokens(own))
                for p, (m, own) in enumerate(split_sample(meta, codes, self.tokenizer,
                                                          c.codebooks, c.seq_len))]

    def _draw(self) -> Sample:
        """The next sample in mixed order (before shuffling). A stream whose every sample is
        skipped would loop forever: after `give_up` skips in a row it stops with the reason."""
        if self.pending:
            return self.pending.pop(0)
        for _ in range(self.give_up):
            source = min(bisect_right(self.cumulative, self.rng.random()), len(self.readers) - 1)
            sample = self._accepted(*self.readers[source].next())
            if sample is not None:
                return sample
        raise UalmError(
            f"the last {self.give_up} samples drawn were all skipped ({dict(self.skipped)}): "
            f"none fits a sequence of {self.config.seq_len} tokens or parses",
            fix="raise data.seq_len (and model.max_positions) above the samples' lengths "
                "(`ualm blend stats CORPUS` shows them), or build shorter clips")

    def _accepted(self, ref: Ref, meta: dict, codes: Codes) -> Sample | None:
        """The sample laid out (or its first piece, the others pending), or None (counted in
        `skipped`) when it is malformed or longer than a sequence and cannot be cut to fit."""
        sample = self._make(ref, meta, codes)
        if sample is None:
            self.skipped["bad"] += 1
            return None
        c = self.config  # a dropped condition shortens a generation sample: what fits is
        # decided on the whole one, as the blend's statistics decide it
        if sample.length <= c.seq_len and (not self._dropped(ref, meta) or laid_length(
                meta, codes, self.tokenizer, c.codebooks) <= c.seq_len):
            return sample
        pieces = self._pieces(ref, meta, codes)
        if not pieces:
            self.skipped["too_long"] += 1
            return None
        self.cut += 1
        self.pending = pieces[1:]
        return pieces[0]

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
        rows = Rows(c.batch_size, c.seq_len, c.codebooks)
        for row in range(c.batch_size):
            self.pack_row(rows, row)
            if self.exhausted:
                break
        self.batches += 1
        return rows.arrays()

    def pack_row(self, rows: Rows, row: int) -> list[Ref]:
        """Fills one row with the next samples that fit, then its end with buffered samples
        that fit (`best_fit`: the longest first) rather than padding; the sample that did not
        fit starts the next row. Returns the references packed."""
        length = self.config.seq_len
        at, packed = 0, []
        while True:
            try:
                sample = self._next_sample()
            except StopIteration:  # a finite stream (evaluation) ran out
                self.exhausted = True
                break
            if at + sample.length > length:
                self.carry = sample
                break
            at = self._put(rows, row, at, sample, packed)
        while not self.exhausted and (slot := best_fit(self.buffer, length - at)) >= 0:
            sample = self.buffer[slot]
            try:
                self.buffer[slot] = self._draw()
            except StopIteration:
                del self.buffer[slot]
            at = self._put(rows, row, at, sample, packed)
        rows.pad(row, at)
        return packed

    def _put(self, rows: Rows, row: int, at: int, sample: Sample, packed: list[Ref]) -> int:
        source = sample.ref[0]
        rows.put(row, at, sample.laid, self.task_ids[source])
        count = self.counts[self.labels[source]]
        count[0] += len(sample.ref) == 4 or sample.ref[4] == 0  # a cut sample counts once
        count[1] += sample.tokens
        packed.append(sample.ref)
        return at + sample.length

    def __iter__(self) -> Iterator[tuple[dict[str, np.ndarray], dict[str, Any]]]:
        while True:
            batch = self.next_batch()
            yield batch, self.state()
