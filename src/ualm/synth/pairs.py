"""Preference pairs for DPO: for a clip's caption, candidate clips (the clip and its nearest
neighbours by the scorer) ranked by how well they fit the caption; the best is chosen and the
best one at least `margin` below it is rejected (a hard negative, not a random one).

>>> import numpy as np
>>> choose(np.array([0.9, 0.7, 0.88, 0.1]), 0, ["a", "b", "c", "d"], candidates=3, margin=0.1)
(0, 1, None)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ualm.synth.neighbors import ranked


def choose(scores: np.ndarray, target: int, keys: Sequence[str], candidates: int,
           margin: float) -> tuple[int | None, int | None, str | None]:
    """(chosen index, rejected index, None) or (None, None, why there is no pair). The pool is
    the target and its `candidates - 1` best-scoring other clips."""
    others = [i for i in ranked(scores, keys) if i != target][:max(candidates - 1, 0)]
    if not others:
        return None, None, "pairs/too_few_candidates"
    pool = sorted([target, *others], key=lambda i: (-round(float(scores[i]), 9),
                                                   i != target, keys[i]))
    best = pool[0]
    for i in pool[1:]:
        if float(scores[best]) - float(scores[i]) >= margin:
            return best, i, None
    return None, None, "pairs/below_margin"
