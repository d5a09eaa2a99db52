"""The distribution of CLAP caption scores in bounded memory: a histogram of 0.01-wide bins over
the cosine range, whatever the number of captions (a corpus of 30M clips holds ~90M scores).

>>> h = ScoreHistogram()
>>> h.add([0.31, 0.42, 0.42, 0.55])
>>> h.count, h.quantile(0.5), h.low, h.high
(4, 0.42, 0.31, 0.55)
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

BINS = 200  # [-1, 1] in steps of 0.01: a quantile is exact to 0.01


class ScoreHistogram:
    def __init__(self) -> None:
        self.counts = np.zeros(BINS + 1, np.int64)
        self.count = 0
        self.low, self.high = float("inf"), float("-inf")

    def add(self, scores: Iterable[float]) -> None:
        values = np.asarray([s for s in scores if s is not None], np.float64)
        values = values[np.isfinite(values)]
        if not len(values):
            return
        bins = np.clip(np.rint((values + 1.0) * BINS / 2), 0, BINS).astype(np.int64)
        self.counts += np.bincount(bins, minlength=BINS + 1)
        self.count += len(values)
        self.low, self.high = min(self.low, float(values.min())), max(self.high,
                                                                       float(values.max()))

    def quantile(self, q: float) -> float:
        """The score of the bin holding the q-th quantile (to 0.01)."""
        if not self.count:
            raise ValueError("no scores")
        at = int(np.searchsorted(np.cumsum(self.counts), q * self.count, side="left"))
        return round(at * 2 / BINS - 1.0, 2)
