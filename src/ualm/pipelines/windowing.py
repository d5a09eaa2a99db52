"""An input's decoded audio on its way to windows: the stream that fingerprints it as it passes,
the windows cut from it (fixed, or speech segments), and why a window is dropped."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import numpy as np

from ualm.audio.windows import iter_windows
from ualm.config import BuildConfig
from ualm.filters.base import Rejection, first_rejection
from ualm.filters.fingerprint import StreamingFingerprint
from ualm.filters.vad import iter_speech_segments


class DecodedStream:
    """The decoded audio as it passes to the windows: its length, sha256 (the exact-dedup
    fingerprint) and Chromaprint; it stops at the first block past `max_frames`."""

    def __init__(self, chunks: Iterator[np.ndarray], max_frames: float,
                 fingerprint: StreamingFingerprint | None) -> None:
        self.chunks, self.max_frames, self.fingerprint = chunks, max_frames, fingerprint
        self.total, self.too_long, self.sha256 = 0, False, hashlib.sha256()

    def __iter__(self) -> Iterator[np.ndarray]:
        for chunk in self.chunks:
            self.total += len(chunk)
            if self.total > self.max_frames:
                self.too_long = True
                return
            self.sha256.update(chunk.tobytes())
            if self.fingerprint is not None:
                self.fingerprint.feed(chunk)
            yield chunk


def windows(stream: DecodedStream, rate: int, window: int | None, config: BuildConfig
             ) -> Iterator[tuple[int, int, np.ndarray]]:
    """(index, start sample, samples): fixed windows, or speech segments (segment.mode vad)."""
    if config.segment.mode == "vad":
        segments = iter_speech_segments(iter(stream), rate, config.vad.threshold,
                                        config.segment.vad_min_seconds,
                                        config.segment.vad_max_seconds)
        for n, (start, samples) in enumerate(segments):
            yield n, start, samples
        return
    position = 0
    for n, samples in iter_windows(iter(stream), window):
        yield n, position, samples
        position += len(samples)


def window_rejection(n: int, samples: np.ndarray, rate: int, window: int | None,
                      config: BuildConfig, checks: list) -> Rejection | None:
    seconds = len(samples) / rate
    if n == 0 and seconds < config.quality.min_seconds:
        return Rejection("quality/too_short", f"{seconds:.2f} s < {config.quality.min_seconds:g} s")
    if window is not None and len(samples) < window and seconds < config.segment.min_tail_seconds:
        return Rejection("segment/short_tail",
                         f"{seconds:.2f} s tail < {config.segment.min_tail_seconds:g} s")
    return first_rejection(checks, samples, rate)
