"""A duplicate group's captions: the keeper's first, then each other member's new ones, in
order, each with the CLAP score it had against its own clip (a copy of the keeper's audio).

>>> merged_captions([(["a dog"], [0.61]), (["a dog", "barking"], [0.6, 0.52])])
(['a dog', 'barking'], [0.61, 0.52])
>>> merged_captions([(["a dog"], []), (["rain"], [])])  # no CLAP model ran: no scores
(['a dog', 'rain'], None)
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any


def merged_captions(members: Iterable[tuple[Sequence[str], Sequence[float] | None]]
                    ) -> tuple[list[str], list[float] | None]:
    """(captions without repeats, their scores or None when any captioned member has none)."""
    captions: list[str] = []
    scores: list[float] = []
    scored = True
    for own, own_scores in members:
        if own and not own_scores:
            scored = False
        for i, caption in enumerate(own):
            if caption not in captions:
                captions.append(caption)
                scores.append(own_scores[i] if own_scores else 0.0)
    return captions, (scores if scored else None)


def decided_captions(decision: dict[str, Any] | None, record: dict[str, Any]
                     ) -> tuple[list[str], list[float] | None]:
    """An input's captions and scores as the global steps left them: those a decision holds
    (a group's merged captions, or what decontamination kept), else the input's own."""
    if decision is not None and decision.get("captions"):
        return decision["captions"], decision.get("caption_scores") or None
    return record["captions"], record.get("caption_scores") or None
