"""A batch being packed (`Rows`), and the choice of buffered samples that fill the end of a row
(`best_fit`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np

from ualm.train.sequence.layout import LaidSample, empty_rows, place_in_row, with_labels

FILL_WINDOW = 64
"""Buffer slots a row's end is filled from. Filling favours short samples; over a bounded
window the buffer can hold back at most this many long ones, so the realised blend moves by no
more than that (its shares are counted by what is packed)."""


class _Sized(Protocol):
    length: int


class Rows:
    """A batch being packed: the layout's rows plus position and task ids per position."""

    def __init__(self, batch: int, length: int, codebooks: int) -> None:
        self.rows = rows = empty_rows(batch, length, codebooks)
        self.steps = np.arange(length)
        self.position_ids = np.zeros((batch, length), dtype=np.int64)
        self.task_ids = np.full((batch, length), -1, dtype=np.int64)  # -1: padding
        self.views = [(rows["tokens"][r, 0], rows["target"][r], rows["delayed"][r],
                       self.position_ids[r], self.task_ids[r]) for r in range(batch)]
        """Per row, what `put` writes: made once, not once per sample."""

    def put(self, row: int, at: int, laid: LaidSample, task_id: int) -> None:
        stream0, target, delayed, positions, tasks = self.views[row]
        place_in_row(stream0, target, delayed, at, laid)
        n = laid.length
        positions[at : at + n] = self.steps[:n]
        tasks[at : at + n] = task_id

    def pad(self, row: int, at: int) -> None:
        """Padding: a block of its own."""
        self.position_ids[row, at:] = self.steps[: len(self.steps) - at]

    def arrays(self) -> dict[str, np.ndarray]:
        return {**with_labels(self.rows), "position_ids": self.position_ids,
                "task_ids": self.task_ids}


def best_fit(buffer: Sequence[_Sized], space: int, window: int = FILL_WINDOW) -> int:
    """The slot among the buffer's first `window` of the longest sample that fits `space`
    positions (the first such slot on a tie), or -1 when none fits.

    >>> from types import SimpleNamespace as S
    >>> best_fit([S(length=n) for n in (300, 90, 120, 90)], 100)
    1
    >>> best_fit([S(length=300)], 100)
    -1
    """
    best, longest = -1, 0
    for slot in range(min(window, len(buffer))):
        n = buffer[slot].length
        if longest < n <= space:
            best, longest = slot, n
    return best
