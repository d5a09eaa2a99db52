"""MinHash signatures of captions (`datasketch`) and the pure functions of caption
near-duplicate detection: LSH band keys and the estimated Jaccard distance.

Two captions are near-duplicates when their sets of word pairs overlap mostly ("a dog barks
loudly" and "a dog barks loudly twice"); templated captions repeated across many clips show up
as large groups.

>>> a, b = caption_signature(["A dog barks loudly"]), caption_signature(["a dog barks loudly!"])
>>> jaccard_distance(a, b)
0.0
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

NUM_PERM = 64
SEED = 1
SCHEME = "affine32"  # named, so a datasketch whose default changes cannot change our signatures
_WORD = re.compile(r"[\w']+")


def caption_signature(captions: Sequence[str], num_perm: int = NUM_PERM) -> np.ndarray | None:
    """The MinHash of an input's captions (their word pairs, lowercased); None without words."""
    from datasketch import MinHash

    shingles: set[str] = set()
    for caption in captions:
        words = _WORD.findall(caption.lower())
        shingles.update(" ".join(words[i:i + 2]) for i in range(max(len(words) - 1, 1))
                        if words)
    if not shingles:
        return None
    minhash = MinHash(num_perm=num_perm, seed=SEED, scheme=SCHEME)
    minhash.update_batch([s.encode() for s in sorted(shingles)])
    return np.asarray(minhash.hashvalues, dtype=np.uint64)


def as_minhash(signature: np.ndarray) -> Any:
    """A `datasketch.MinHash` of a signature from `caption_signature` (for its LSH index)."""
    from datasketch import MinHash

    return MinHash(num_perm=len(signature), seed=SEED, hashvalues=signature, scheme=SCHEME)


def jaccard_distance(a: np.ndarray, b: np.ndarray) -> float:
    """1 - the estimated Jaccard similarity (the share of equal MinHash values)."""
    return 1.0 - float(np.mean(np.asarray(a) == np.asarray(b)))


def signature_band_keys(signature: np.ndarray, bands: int) -> Iterator[int]:
    """LSH: the signature cut into `bands` bands; two signatures share a key where a whole band
    agrees, which for Jaccard s happens with probability 1 - (1 - s^rows)^bands."""
    rows = max(len(signature) // bands, 1)
    for band in range(min(bands, len(signature) // rows)):
        part = np.asarray(signature[band * rows:(band + 1) * rows], dtype="<u8").tobytes()
        digest = hashlib.blake2b(part, person=b"ualm-cap%03d" % band, digest_size=8).digest()
        yield int.from_bytes(digest, "little") >> 1
