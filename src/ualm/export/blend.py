"""The blend, applied by the export itself: UALM's `train.py` gives every dataset the factor 1.0
and draws each sample of each manifest once per epoch, so the mixture it trains is the number of
samples each manifest lists. To make that mixture the blend's, each dataset lists its samples as
many times as the blend plans to draw them: `expected_epochs` whole passes rounded to a number of
samples, the fraction taken as a deterministic subset (samples ranked by a hash of seed and key),
whatever factor the loader applies.

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


def plan_epochs(spec: BlendSpec | None, corpus: str,
                groups: dict[tuple[str, str], tuple[int, float]]) -> dict[tuple[str, str], Plan]:
    """Per (source, task) of the corpus, with (samples, tokens per sample): the passes that make
    the listed mixture the blend's. Without a blend every sample once. With one, a group it does
    not name gets 0 passes; `expected_epochs` is used as planned, or, in a spec without a budget,
    the passes that give the weights with the least-weighted source read once."""
    if spec is None:
        return {group: Plan(1.0, None) for group in groups}
    where = storage.location(corpus)
    named = {(s.name, s.task): s for s in spec.sources if storage.location(s.corpus) == where}
    if not any(named.get(g) and named[g].weight > 0 for g in groups):
        raise UalmError(f"the blend names no source of {where} with a weight above 0",
                        fix="pass the blend computed for this corpus (`ualm blend CORPUS`)")
    epochs: dict[tuple[str, str], float] = {}
    for group, (samples, per_sample) in groups.items():
        s = named.get(group)
        if s is None or s.weight <= 0 or samples == 0:
            epochs[group] = 0.0
        elif s.expected_epochs > 0:
            epochs[group] = s.expected_epochs
        else:  # weight / tokens of one pass, scaled below
            epochs[group] = s.weight / max(samples * per_sample, 1e-9)
    if not any(s.expected_epochs > 0 for s in named.values()):
        scale = 1.0 / min(e for e in epochs.values() if e > 0)
        epochs = {g: e * scale for g, e in epochs.items()}
    return {g: Plan(e, named[g].weight if g in named else 0.0) for g, e in epochs.items()}


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
