"""Captions that copy an evaluation caption: word n-gram containment against an inverted index.

A corpus caption copies an evaluation caption when it holds at least `threshold` of that
caption's word n-grams (lowercased, punctuation dropped): a verbatim copy holds all of them, a
copy inside a longer caption too, and one word changed in a ten-word caption removes three of
its eight trigrams. Evaluation captions shorter than `min_words` words ("a dog barks") are not
matched: every sound corpus says them, and saying them is not copying an evaluation set.

>>> index = EvalCaptionIndex(["A man speaks while birds chirp in the background"])
>>> index.match("a man speaks, while birds chirp in the background!")
(0, 1.0)
>>> index.match("a woman sings while rain falls on a roof") is None
True
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Sequence

_WORD = re.compile(r"[\w']+")


def words(caption: str) -> list[str]:
    return _WORD.findall(caption.lower())


def ngrams(caption: str, n: int) -> set[tuple[str, ...]]:
    """The caption's word n-grams; a caption of fewer than n words is its one n-gram."""
    found = words(caption)
    if 0 < len(found) < n:
        return {tuple(found)}
    return {tuple(found[i:i + n]) for i in range(len(found) - n + 1)}


class EvalCaptionIndex:
    """Evaluation captions by n-gram. `match(caption)` gives (evaluation caption number, the
    fraction of its n-grams the caption holds) for the best one at `threshold` or above, or
    None. Memory: one entry per distinct n-gram of the evaluation captions."""

    def __init__(self, captions: Sequence[str], n: int = 3, threshold: float = 0.8,
                 min_words: int = 4) -> None:
        self.n, self.threshold = n, threshold
        self._sizes: list[int] = []
        self._index: dict[tuple[str, ...], list[int]] = defaultdict(list)
        for number, caption in enumerate(captions):
            grams = ngrams(caption, n) if len(words(caption)) >= min_words else set()
            self._sizes.append(len(grams))
            for gram in grams:
                self._index[gram].append(number)

    def match(self, caption: str) -> tuple[int, float] | None:
        shared: dict[int, int] = defaultdict(int)
        for gram in ngrams(caption, self.n):
            for number in self._index.get(gram, ()):
                shared[number] += 1
        best = None
        for number, count in sorted(shared.items()):
            score = count / self._sizes[number]
            if score >= self.threshold and (best is None or score > best[1]):
                best = (number, round(score, 6))
        return best
