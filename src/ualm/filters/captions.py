"""Caption checks: a caption that says nothing, is too short or too long, or describes a poor
recording ("noisy", "muffled") is dropped. Pure functions of one caption.

>>> from ualm.config import CaptionConfig
>>> check_caption("A dog barks twice", CaptionConfig(enabled=True)) is None
True
>>> check_caption("muffled speech in a noisy room", CaptionConfig(enabled=True)).reason
'caption/low_quality_word'
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache

from ualm.config import CaptionConfig
from ualm.filters.base import Rejection


def check_caption(caption: str, config: CaptionConfig) -> Rejection | None:
    text = caption.strip()
    if not text:
        return Rejection("caption/empty", "an empty caption")
    if text.lower() in _lowered(config.placeholders):
        return Rejection("caption/placeholder", repr(text))
    words = len(text.split())
    if words < config.min_words:
        return Rejection("caption/too_short", f"{words} words < {config.min_words}: {text!r}")
    if words > config.max_words:
        return Rejection("caption/too_long", f"{words} words > {config.max_words}")
    found = _low_quality_pattern(tuple(config.low_quality_words)).search(text)
    if found:
        return Rejection("caption/low_quality_word", f"{found.group(0)!r} in {text!r}")
    return None


def split_captions(captions: Sequence[str], config: CaptionConfig
                   ) -> tuple[list[str], list[tuple[str, Rejection]]]:
    """(captions that pass, [(caption, why) for those that do not]), each in input order."""
    kept: list[str] = []
    dropped: list[tuple[str, Rejection]] = []
    for caption in captions:
        rejection = check_caption(caption, config)
        if rejection is None:
            kept.append(caption)
        else:
            dropped.append((caption, rejection))
    return kept, dropped


@lru_cache(maxsize=8)
def _lowered(placeholders: tuple[str, ...]) -> frozenset[str]:
    return frozenset(p.strip().lower() for p in placeholders)


@lru_cache(maxsize=8)
def _low_quality_pattern(words: tuple[str, ...]) -> re.Pattern[str]:
    """Whole words only: "noisy" must not match "noisette"."""
    if not words:
        return re.compile(r"(?!x)x")  # matches nothing
    alternatives = "|".join(re.escape(w.strip()) for w in sorted(words, key=len, reverse=True))
    return re.compile(rf"\b(?:{alternatives})\b", re.IGNORECASE)
