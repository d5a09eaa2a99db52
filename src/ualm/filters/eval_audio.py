"""Finding evaluation clips inside corpus audio: a slowed Chromaprint for short clips, and an
index of evaluation fingerprints that finds a copy at any alignment by offset voting.

Chromaprint needs about 2.5 s of audio before it gives its first sub-fingerprint (16 frames of
4096 samples at 11,025 Hz), so a 1-2 s clip has no fingerprint at all and a 3 s one has three
items. Handing Chromaprint the audio `SLOW` times slower than it is (resampled to `SLOW` times
its rate, then declared at its rate) makes a 1 s clip about 43 items long, and an item covers
16 ms of real audio rather than 124 ms, so a copy trimmed at any sample still lines up. Both
sides go through the same transform; the audio is first limited to 4 kHz (`BAND_RATE`), so a
copy saved at 8 kHz keeps every band that counts, and Chromaprint's 28-3520 Hz chroma band
then covers 224-4000 Hz of the real audio.

A copy may be trimmed anywhere (an evaluation clip cut from a longer recording, a corpus clip
cut from an evaluation clip), so the comparison cannot try a few shifts around zero as
near-dedup does (`fingerprint.MAX_SHIFT`). Instead every item of every evaluation fingerprint
is indexed by its value; each item of a corpus fingerprint equal to an indexed one votes for
(clip, offset), and only the best-voted offsets are compared by bit error rate
(benchmarks/bench_decontam.py measures recall and precision on 1-10 s clips).

>>> rng = np.random.default_rng(0)
>>> clip = rng.integers(0, 2**32, 40, dtype=np.uint64).astype(np.uint32)
>>> index = EvalAudioIndex([clip])
>>> index.match(np.concatenate([rng.integers(0, 2**32, 9).astype(np.uint32), clip[:30]]))
(0, 0.0, 9, 30)
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from itertools import pairwise

import numpy as np

from ualm.filters.fingerprint import StreamingFingerprint

SLOW = 8
BAND_RATE = 8000
"""Audio above half this rate is left out of the fingerprint."""
CHROMAPRINT_RATE = 11025
"""The rate Chromaprint works at: audio declared at it is not resampled inside."""
"""How many times lower than the real rate the audio is declared to Chromaprint."""
COMMON_ITEM = 64
"""An item value found at more indexed positions than this (silence, a steady tone) casts no
vote: it says nothing about which clip matches, and would cost a comparison per position."""
CANDIDATES = 4
"""Best-voted (clip, offset) pairs compared by bit error rate per query."""
SELF_SHIFTS = (8, 16, 32)
"""Shifts (items: 0.125-0.5 s) at which a clip is compared with itself for its floor."""
CONTRAST = 0.5
"""A match differs from its clip in at most this fraction of the bits the clip differs from
itself when shifted (`floor`): a steady tone looks like itself a moment later, and like any
other steady tone of the same pitch, so its copies must be much closer than that."""


def slow_fingerprint(samples: Iterable[np.ndarray], sample_rate: int,
                     max_seconds: float) -> np.ndarray:
    """The slowed Chromaprint (see the module's note) of mono float32 blocks at `sample_rate`,
    over at most `max_seconds` of real audio. The audio is first brought to `BAND_RATE` (what
    a copy saved at 8 kHz still holds is all that counts), then to Chromaprint's own rate
    times `SLOW`: Chromaprint's resampler, when it has to raise the rate, drops the last part
    of a clip (up to 3 s of a slowed one)."""
    import soxr

    fingerprint = StreamingFingerprint(CHROMAPRINT_RATE, max_seconds * SLOW)
    rates = (sample_rate, min(sample_rate, BAND_RATE), CHROMAPRINT_RATE * SLOW)
    streams = [soxr.ResampleStream(a, b, 1, dtype="float32")
               for a, b in pairwise(rates) if a != b]

    def through(block: np.ndarray, last: bool = False) -> np.ndarray:
        for stream in streams:
            block = stream.resample_chunk(block, last=last)
        return block

    for block in samples:
        fingerprint.feed(through(np.asarray(block, np.float32)))
    fingerprint.feed(through(np.zeros(0, np.float32), last=True))
    return fingerprint.finish()


def aligned_bit_error(query: np.ndarray, clip: np.ndarray, offset: int) -> tuple[float, int]:
    """(fraction of differing bits, items compared) with clip item i against query item
    i + offset, over the items both have; (1.0, 0) when they do not overlap."""
    start = max(0, -offset)
    stop = min(len(clip), len(query) - offset)
    if stop <= start:
        return 1.0, 0
    a, b = clip[start:stop], query[start + offset:stop + offset]
    differing = int(np.unpackbits((a ^ b).view(np.uint8)).sum())
    return differing / (32 * (stop - start)), stop - start


class EvalAudioIndex:
    """Evaluation fingerprints by item value. `match(query)` gives the evaluation clip the query
    copies (wholly or in part), as (clip number, bit error rate, offset, items compared), or
    None. A match needs `max_bit_error` or fewer differing bits over an overlap of at least
    `min_overlap` of the shorter of the two fingerprints and `min_items` items. Memory: 12 bytes
    per indexed item (a 10 s clip has about 620)."""

    def __init__(self, clips: Sequence[np.ndarray], max_bit_error: float = 0.15,
                 min_overlap: float = 0.5, min_items: int = 16) -> None:
        self.clips = [np.asarray(c, np.uint32) for c in clips]
        self.max_bit_error, self.min_overlap, self.min_items = (max_bit_error, min_overlap,
                                                                min_items)
        values = self.clips
        items = np.concatenate(values) if values else np.zeros(0, np.uint32)
        owner = np.repeat(np.arange(len(values), dtype=np.int32), [len(c) for c in values])
        position = np.concatenate([np.arange(len(c), dtype=np.int32) for c in values]
                                  ) if values else np.zeros(0, np.int32)
        self.floors = [self_floor(c, min_items) for c in self.clips]
        order = np.argsort(items, kind="stable")
        self._items, self._owner, self._position = items[order], owner[order], position[order]

    def candidates(self, query: np.ndarray) -> list[tuple[int, int]]:
        """The (clip, offset) pairs with the most votes, best first (ties: smaller clip, then
        smaller offset, so the answer does not depend on the order items were indexed)."""
        query = np.asarray(query, np.uint32)
        left = np.searchsorted(self._items, query, "left")
        right = np.searchsorted(self._items, query, "right")
        hits = right - left
        hits[hits > COMMON_ITEM] = 0
        total = int(hits.sum())
        if total == 0:
            return []
        starts = np.repeat(left, hits)
        within = np.arange(total) - np.repeat(np.cumsum(hits) - hits, hits)
        found = starts + within
        at = np.repeat(np.arange(len(query), dtype=np.int64), hits)
        clip = self._owner[found].astype(np.int64)
        offset = at - self._position[found]
        pairs, votes = np.unique(np.stack([clip, offset], axis=1), axis=0, return_counts=True)
        best = np.lexsort((pairs[:, 1], pairs[:, 0], -votes))[:CANDIDATES]
        return [(int(pairs[i, 0]), int(pairs[i, 1])) for i in best]

    def nearest(self, query: np.ndarray) -> tuple[int, float, int, int] | None:
        """The best-voted alignment with the fewest differing bits among those that overlap
        enough, whatever its bit error rate; None when no alignment does."""
        query = np.asarray(query, np.uint32)
        found = None
        for clip, offset in self.candidates(query):
            reference = self.clips[clip]
            need = max(self.min_items, self.min_overlap * min(len(query), len(reference)))
            for shift in (offset - 1, offset, offset + 1):  # a trim between two items
                error, overlap = aligned_bit_error(query, reference, shift)
                if overlap >= need and (found is None or (error, clip) < (found[1], found[0])):
                    found = (clip, round(error, 6), shift, overlap)
        return found

    def match(self, query: np.ndarray) -> tuple[int, float, int, int] | None:
        found = self.nearest(query)
        if found is None or found[1] > min(self.max_bit_error, CONTRAST * self.floors[found[0]]):
            return None
        return found


def self_floor(clip: np.ndarray, min_items: int) -> float:
    """The fewest bits (a fraction) a clip differs from itself shifted by `SELF_SHIFTS`: low
    for a steady sound, about 0.3 or more for a varied one; 0.5 when it is too short."""
    errors = [error for error, overlap in (aligned_bit_error(clip, clip, k) for k in SELF_SHIFTS)
              if overlap >= min_items]
    return min(errors, default=0.5)
