"""How well a text fits a clip, for the self-reflection's near-miss audio and preference pairs.

- `ClapSimilarity`: LAION-CLAP cosine between the text and the clip's audio (the embedding the
  build stored, or one computed from the audio shards), from a local CLAP model folder.
- Without a CLAP model, a documented deterministic stand-in:
  - `EventSimilarity` when every clip's caption names events of the event world
    (`ualm.audio.events.EVENTS`): 1 for the same events in the same order, else half the
    Jaccard overlap of the event sets plus half the share of positions that agree;
  - `OverlapSimilarity` otherwise: the Jaccard overlap of the text's and the captions' words.
Every pair and trace records the scorer's name.

>>> s = EventSimilarity()
>>> s.score("a low tone, then white noise", "white noise followed by a low tone")
0.5
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

from ualm.audio.events import EVENTS
from ualm.synth.clips import Clip, read_audio

_WORD = re.compile(r"[\w']+")
CHUNK = 256


class Scorer(Protocol):
    name: str

    def similarity(self, texts: Sequence[str], clips: Sequence[Clip]) -> np.ndarray:
        """[texts, clips] similarities."""
        ...

    def same(self, a: Clip, b: Clip) -> bool:
        """Whether two clips are the same content (never a near-miss of each other)."""
        ...


def _norm(caption: str) -> str:
    return " ".join(_WORD.findall(caption.lower()))


class _TextScorer:
    """A scorer that compares the text with the clip's first caption."""

    name = ""

    def score(self, text: str, caption: str) -> float:
        raise NotImplementedError

    def similarity(self, texts: Sequence[str], clips: Sequence[Clip]) -> np.ndarray:
        captions = [c.captions[0] if c.captions else "" for c in clips]
        return np.array([[self.score(t, c) for c in captions] for t in texts], dtype=np.float64)

    def same(self, a: Clip, b: Clip) -> bool:
        return bool(a.captions and b.captions) and _norm(a.captions[0]) == _norm(b.captions[0])


class EventSimilarity(_TextScorer):
    name = "events-v1"

    @staticmethod
    def events(text: str) -> list[str]:
        """Known events named in the text, in the order they first appear."""
        low = text.lower()
        found = [(low.find(e), e) for e in EVENTS if e in low]
        return [e for _, e in sorted(found)]

    def score(self, text: str, caption: str) -> float:
        a, b = self.events(text), self.events(caption)
        if not a or not b:
            return 0.0
        if a == b:
            return 1.0
        jaccard = len(set(a) & set(b)) / len(set(a) | set(b))
        agree = sum(x == y for x, y in zip(a, b, strict=False)) / max(len(a), len(b))
        return 0.5 * jaccard + 0.5 * agree

    def same(self, a: Clip, b: Clip) -> bool:
        return self.events(" ".join(a.captions[:1])) == self.events(" ".join(b.captions[:1]))


class OverlapSimilarity(_TextScorer):
    name = "caption-overlap-v1"

    def score(self, text: str, caption: str) -> float:
        a, b = set(_WORD.findall(text.lower())), set(_WORD.findall(caption.lower()))
        return len(a & b) / len(a | b) if a and b else 0.0


class ClapSimilarity:
    def __init__(self, model: str | Path, root: str | Path, device: str | None = None) -> None:
        from ualm.filters.clap import load_clap

        self.scorer = load_clap(model, device)
        self.root = Path(root)
        self.name = f"clap:{Path(model).name}"
        self._audio: dict[str, np.ndarray] = {}

    def _embeddings(self, clips: Sequence[Clip]) -> np.ndarray:
        missing = [c for c in clips if c.key not in self._audio]
        stored = [c for c in missing if c.clap_embedding is not None]
        for c in stored:  # what the build's CLAP annotator stored
            self._audio[c.key] = c.clap_embedding  # type: ignore[assignment]
        todo = [c for c in missing if c.clap_embedding is None]
        for at in range(0, len(todo), CHUNK):
            part = todo[at:at + CHUNK]
            audio = read_audio(self.root, part)
            for c in part:
                samples, rate = audio[c.key]
                self._audio[c.key] = self.scorer.audio_embeddings([samples], rate)[0]
        return np.stack([self._audio[c.key] for c in clips])

    def similarity(self, texts: Sequence[str], clips: Sequence[Clip]) -> np.ndarray:
        text = self.scorer.text_embeddings(list(texts))
        return (text.astype(np.float64) @ self._embeddings(clips).astype(np.float64).T)

    def same(self, a: Clip, b: Clip) -> bool:
        return _TextScorer.same(self, a, b)  # type: ignore[arg-type]


def make_scorer(root: str | Path, clips: Sequence[Clip], clap_model: str | Path | None = None,
                device: str | None = None) -> Scorer:
    if clap_model is not None:
        return ClapSimilarity(clap_model, root, device)
    if clips and all(EventSimilarity.events(" ".join(c.captions[:1])) for c in clips):
        return EventSimilarity()
    return OverlapSimilarity()


def ranked(scores: np.ndarray, keys: Sequence[str], salt: str = "") -> Iterator[int]:
    """Indices best first (scores rounded, so float noise never decides). Ties are ordered by
    sha256(salt, key): stable, but different per salt (the target's key), so that clips tied
    with many others are not picked for every target alike. Lazy, one score group at a time:
    callers want the first few, and hashing every clip for every target is quadratic."""
    def tie(i: int) -> bytes:
        return hashlib.sha256(f"{salt}\0{keys[i]}".encode()).digest()[:8]

    rounded = np.array([round(float(s), 9) for s in scores], dtype=np.float64)
    order = np.argsort(-rounded, kind="stable")
    breaks = np.flatnonzero(np.diff(rounded[order])) + 1
    for group in np.split(order, breaks):
        yield from sorted(group.tolist(), key=tie)


def best_other(scorer: Scorer, scores: np.ndarray, target: Clip,
               clips: Sequence[Clip]) -> Clip | None:
    """The clip that fits the text best (its row of scores) but is not the target's content:
    the near-miss audio v1 of self-reflection."""
    for i in ranked(scores, [c.key for c in clips], salt=target.key):
        if clips[i].key != target.key and not scorer.same(clips[i], target):
            return clips[i]
    return None
