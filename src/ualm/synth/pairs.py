"""Preference pairs for DPO: for a clip's caption, candidate clips (the clip and its nearest
neighbours by the scorer that are other content) ranked by how well they fit the caption; the
best is chosen and the best ones at least `margin` below it are rejected (hard negatives, not
random ones). Clips of the same content as the caption's clip are never candidates: they fit
the caption as well as it does.

Candidates that tie on score are ordered by a hash of (target, candidate), not by key: with a
coarse scorer many clips tie, and a key order would make the same few clips the rejected side
of every pair, which DPO then learns to push down whatever the caption says.

>>> import numpy as np
>>> choose(np.array([0.9, 0.7, 0.88, 0.1]), 0, ["a", "b", "c", "d"], candidates=3, margin=0.1)
(0, [1], None)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from itertools import islice

import numpy as np

from ualm.synth.neighbors import ranked


def choose(scores: np.ndarray, target: int, keys: Sequence[str], candidates: int,
           margin: float, count: int = 1, same: Callable[[int], bool] = lambda i: False
           ) -> tuple[int | None, list[int], str | None]:
    """(chosen index, up to `count` rejected indices best first, None) or (None, [], why there
    is no pair). The pool is the target and its `candidates - 1` best-scoring other clips for
    which `same(index)` (the same content as the target) is false."""
    others = list(islice((i for i in ranked(scores, keys, salt=keys[target])
                          if i != target and not same(i)), max(candidates - 1, 0)))
    if not others:
        return None, [], "pairs/too_few_candidates"
    position = {i: n for n, i in enumerate(others)}
    pool = sorted([target, *others], key=lambda i: (-round(float(scores[i]), 9),
                                                   i != target, position.get(i, -1)))
    best = pool[0]
    rejected = [i for i in pool[1:] if float(scores[best]) - float(scores[i]) >= margin]
    if not rejected:
        return None, [], "pairs/below_margin"
    return best, rejected[:count], None
