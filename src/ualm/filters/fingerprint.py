"""Acoustic fingerprints (Chromaprint, through libchromaprint) and the pure functions of
near-duplicate detection: LSH band keys and the bit error rate between two fingerprints.

A Chromaprint fingerprint is a sequence of 32-bit sub-fingerprints, about 8 per second. The same
recording re-encoded (MP3, Opus, FLAC at another rate, stereo, louder) keeps almost every bit:
under 1 % of bits differ here, where unrelated sounds differ in 20-50 %.

>>> bit_error_rate(np.array([0, 0xFFFF], np.uint32), np.array([1, 0xFFFF], np.uint32))
0.015625
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import numpy as np

from ualm.errors import UalmError

FINGERPRINT_RATE = 8  # sub-fingerprints per second, roughly: enough to size windows
MAX_SHIFT = 2
"""Alignments tried when comparing (items): codec delays and padding shift audio a little."""


class StreamingFingerprint:
    """Feeds decoded mono float32 blocks to libchromaprint, up to `max_seconds` of them."""

    def __init__(self, sample_rate: int, max_seconds: float) -> None:
        try:
            import chromaprint
        except (ImportError, OSError) as exc:  # the Python binding, or libchromaprint itself
            raise UalmError(f"near-duplicate detection needs libchromaprint: {exc}",
                            fix="apt-get install libchromaprint1 (and pip install pyacoustid)"
                            ) from exc
        self._chromaprint = chromaprint
        self._fingerprinter = chromaprint.Fingerprinter()
        self._fingerprinter.start(sample_rate, 1)
        self._left = round(max_seconds * sample_rate)

    def feed(self, samples: np.ndarray) -> None:
        if self._left <= 0:
            return
        block = samples[: self._left]
        self._left -= len(block)
        pcm = (np.clip(np.nan_to_num(block), -1.0, 1.0) * 32767.0).astype("<i2")
        self._fingerprinter.feed(pcm.tobytes())

    def finish(self) -> np.ndarray:
        encoded = self._fingerprinter.finish()
        raw, _ = self._chromaprint.decode_fingerprint(encoded)
        return np.asarray(raw, dtype=np.int64).astype(np.uint32)


def bit_error_rate(a: np.ndarray, b: np.ndarray, max_shift: int = MAX_SHIFT,
                   min_overlap: int = 8) -> float:
    """The lowest fraction of differing bits over alignments within ±max_shift items (1.0
    when no alignment overlaps by min_overlap items)."""
    best = 1.0
    for shift in range(-max_shift, max_shift + 1):
        x, y = a[max(shift, 0):], b[max(-shift, 0):]
        n = min(len(x), len(y))
        if n < min(min_overlap, len(a), len(b)) or n == 0:
            continue
        differing = np.unpackbits((x[:n] ^ y[:n]).view(np.uint8)).sum()
        best = min(best, float(differing) / (32 * n))
    return best


def band_keys(fingerprint: np.ndarray, bands: int) -> Iterator[int]:
    """LSH keys: for each band, a hash of two adjacent sub-fingerprints at a fixed position, and
    of the two one item later. Two copies of a recording share a key of some band unless bit
    errors hit every band; a copy delayed by about one item meets its original through the
    later pair. Positions spread over the first 30 s, so long and short copies of a clip meet."""
    usable = min(len(fingerprint), 30 * FINGERPRINT_RATE)
    if usable < 4:
        return
    positions = np.linspace(1, usable - 3, num=bands).round().astype(int)
    for band, position in enumerate(sorted(set(positions.tolist()))):
        for shifted in (False, True):
            items = fingerprint[position + shifted: position + shifted + 2]
            if len(items) < 2:
                continue
            digest = hashlib.blake2b(items.astype("<u4").tobytes(),
                                     person=b"ualm-band%03d" % band, digest_size=8).digest()
            yield int.from_bytes(digest, "little") >> 1  # fits an int64 column
