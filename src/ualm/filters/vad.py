"""Speech detection with Silero VAD, whose weights ship inside the `silero-vad` package.

The model loads once per worker process, lazily, and scores windows in batches: Silero keeps one
recurrent state per batch row, so a batch of windows is the same computation as each window on
its own up to float rounding (probabilities agree within 1e-4; tested), five times faster
on CPU for 8 windows. Which windows share a batch depends only on the input, so every engine
gives the same bytes.

Segments come from the probabilities by hysteresis, as Silero's `get_speech_timestamps` makes
them: speech starts above `threshold`, ends after 100 ms below `threshold - 0.15`, segments
under 250 ms are dropped and the rest padded by 30 ms.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ualm.config import VadConfig
from ualm.filters.base import Rejection

VAD_RATE = 16000
FRAME = 512  # samples per Silero step at 16 kHz: 32 ms
MIN_SPEECH_S, MIN_SILENCE_S, PAD_S = 0.25, 0.1, 0.03
_MODEL: list[Any] = []


def _model() -> Any:
    if not _MODEL:
        from silero_vad import load_silero_vad

        _MODEL.append(load_silero_vad())
    return _MODEL[0]


@dataclass(frozen=True)
class Speech:
    ratio: float
    """Fraction of the window inside speech segments."""
    segments: list[tuple[float, float]]
    """(start, end) in seconds from the window's start."""


def speech_probabilities(windows: Sequence[np.ndarray], sample_rate: int) -> list[np.ndarray]:
    """Silero's speech probability for every 32 ms frame of each window, all windows in one
    batch. Shorter windows are zero-padded at the end; the state is causal, so padding never
    changes a window's own frames, which are all that is returned."""
    import soxr
    import torch

    audio = [w if sample_rate == VAD_RATE else soxr.resample(w, sample_rate, VAD_RATE)
             for w in windows]
    frames = [len(a) // FRAME for a in audio]
    if not audio or max(frames) == 0:
        return [np.zeros(0, np.float32) for _ in windows]
    batch = np.zeros((len(audio), max(frames) * FRAME), np.float32)
    for row, a in enumerate(audio):
        batch[row, : frames[row] * FRAME] = a[: frames[row] * FRAME]
    model = _model()
    probabilities = np.zeros((len(audio), max(frames)), np.float32)
    with torch.inference_mode():
        model.reset_states()
        chunks = torch.from_numpy(batch).view(len(audio), -1, FRAME)
        for step in range(chunks.shape[1]):
            probabilities[:, step] = model(chunks[:, step], VAD_RATE)[:, 0].numpy()
        model.reset_states()
    return [probabilities[row, : frames[row]] for row in range(len(audio))]


def segments_from_probabilities(probabilities: np.ndarray, threshold: float, seconds: float
                                ) -> list[tuple[float, float]]:
    step = FRAME / VAD_RATE
    off = max(threshold - 0.15, 0.01)
    raw: list[list[float]] = []
    start: float | None = None
    silent_since: float | None = None
    for i, p in enumerate(probabilities):
        t = i * step
        if p >= threshold:
            silent_since = None
            if start is None:
                start = t
        elif start is not None and p < off:
            silent_since = t if silent_since is None else silent_since
            if t + step - silent_since >= MIN_SILENCE_S:
                raw.append([start, silent_since])
                start, silent_since = None, None
    if start is not None:
        raw.append([start, len(probabilities) * step])
    kept = [s for s in raw if s[1] - s[0] >= MIN_SPEECH_S]
    segments: list[tuple[float, float]] = []
    for begin, end in kept:
        begin, end = max(begin - PAD_S, 0.0), min(end + PAD_S, seconds)
        if segments and begin <= segments[-1][1]:  # padding joined two segments
            segments[-1] = (segments[-1][0], end)
        else:
            segments.append((begin, end))
    return [(round(a, 3), round(b, 3)) for a, b in segments]


def detect_speech_batch(windows: Sequence[np.ndarray], sample_rate: int,
                        threshold: float = 0.5) -> list[Speech]:
    out = []
    for window, probabilities in zip(windows, speech_probabilities(windows, sample_rate),
                                     strict=True):
        seconds = len(window) / sample_rate
        segments = segments_from_probabilities(probabilities, threshold, seconds)
        speech = sum(end - start for start, end in segments)
        out.append(Speech(round(min(speech / seconds, 1.0), 4) if seconds else 0.0, segments))
    return out


def detect_speech(samples: np.ndarray, sample_rate: int, threshold: float = 0.5) -> Speech:
    return detect_speech_batch([samples], sample_rate, threshold)[0]


def speech_rejection(speech: Speech, config: VadConfig) -> Rejection | None:
    if config.min_speech_ratio is not None and speech.ratio < config.min_speech_ratio:
        return Rejection("vad/no_speech",
                         f"speech ratio {speech.ratio:.2f} < {config.min_speech_ratio:g}")
    if config.max_speech_ratio is not None and speech.ratio > config.max_speech_ratio:
        return Rejection("vad/speech",
                         f"speech ratio {speech.ratio:.2f} > {config.max_speech_ratio:g}")
    return None
