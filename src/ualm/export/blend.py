"""The blend, applied by the export itself: UALM's `train.py` gives every dataset the factor 1.0
and draws each sample of each manifest once per epoch, so the mixture it trains is the number of
samples each manifest lists. To make that mixture the blend's, each dataset lists its samples in
proportion to how often the blend draws them (`plan_epochs`), whatever factor the loader
applies: whole passes, and the fraction of a pass as a deterministic subset (samples ranked by
a hash of seed and key).

>>> copies(["a", "b", "c", "d"], 1.5, "d", seed=0)[:4]
[('a', 0), ('b', 0), ('c', 0), ('d', 0)]
>>> len(copies(["a", "b", "c", "d"], 1.5, "d", seed=0))
6
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from ualm.errors import UalmError
from ualm.manifests import storage
from ualm.train.blend.spec import BlendSpec


@dataclass(frozen=True)
class Plan:
    """How often a dataset's samples are listed: `epochs` passes, and why."""

    epochs: float
    weight: float | None
    """The blend's share of tokens (None without a blend)."""
    tokens_per_sample: float | None = None
    """The blend's own count (its tokenizer and codec), for the realised share it reports."""


def plan_epochs(spec: BlendSpec | None, corpus: str,
                groups: dict[tuple[str, str], int]) -> dict[tuple[str, str], Plan]:
    """Per (source, task) of the corpus, with its number of samples: the passes that make the
    listed mixture the blend's. Without a blend every sample once. With one, a group it does
    not name (or weighs 0) gets none; the others get passes in proportion to the blend's (weight
    over the tokens of one pass, in the blend's own counting), scaled so that the least-read
    source is read once: the mixture is the blend's, no sample it weighs is left out, and
    rounding moves a share by at most half a sample. (The budget is the trainer's business:
    UALM's steps; one pass over the export is `scale` times the blend's `budget_tokens`.)"""
    if spec is None:
        return {group: Plan(1.0, None) for group in groups}
    where = storage.location(corpus)
    named = {(s.name, s.task): s for s in spec.sources if storage.location(s.corpus) == where}
    rate = {g: named[g].weight / named[g].tokens for g, n in groups.items()
            if g in named and named[g].weight > 0 and named[g].tokens > 0 and n > 0}
    if not rate:
        raise UalmError(f"the blend names no source of {where} with a weight above 0",
                        fix="pass the blend computed for this corpus (`ualm blend CORPUS`)")
    least = min(rate.values())
    return {g: Plan(rate.get(g, 0.0) / least, named[g].weight if g in named else 0.0,
                    named[g].tokens_per_sample if g in named else None) for g in groups}


def scale(spec: BlendSpec, plans: dict[tuple[str, str], Plan]) -> float | None:
    """One pass over the export in units of the blend's planned budget."""
    for (name, task), plan in plans.items():
        for s in spec.sources:
            if (s.name, s.task) == (name, task) and s.expected_epochs > 0 and plan.epochs > 0:
                return plan.epochs / s.expected_epochs
    return None


def rank(key: str, dataset: str, seed: int) -> str:
    """The order in which a fraction of a pass picks samples: stable and seeded."""
    return hashlib.sha256(f"{seed}\0{dataset}\0{key}".encode()).hexdigest()


def copies(keys: Sequence[str], epochs: float, dataset: str, seed: int
           ) -> list[tuple[str, int]]:
    """(key, copy number) of every listing of a dataset's samples: round(epochs x samples) in
    all, every sample `epochs` whole times, the rest the first by `rank`."""
    total = round(epochs * len(keys))
    whole, rest = divmod(total, len(keys)) if keys else (0, 0)
    out = [(k, c) for c in range(whole) for k in keys]
    picked = set(sorted(keys, key=lambda k: rank(k, dataset, seed))[:rest])
    out += [(k, whole) for k in keys if k in picked]
    return out


def sample_id(dataset: str, key: str, copy: int) -> str:
    """UALM's converter's `<dataset>::<id>`; a repeat adds `::r<copy>` (ids are unique)."""
    return f"{dataset}::{key}" if copy == 0 else f"{dataset}::{key}::r{copy}"
