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
SEGMENT_SILENCE_S = 0.5
"""Segmentation closes a segment after this much silence: pauses between phrases stay inside,
so segments are utterances, not single phrases (which would mostly be under 3 s)."""
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


class SpeechSegmenter:
    """Cuts a stream of decoded blocks into speech segments of `min_seconds` to `max_seconds`
    (Emilia's 3-30 s), in bounded memory: the model scores 32 ms frames as audio arrives, a
    segment closes after 0.5 s below the off threshold (or is split at `max_seconds`), and only
    the audio of the open segment is held. Shorter speech is skipped; so is the silence between.
    Yields (start sample, samples) at the input rate, padded by 30 ms each side."""

    def __init__(self, sample_rate: int, threshold: float = 0.5, min_seconds: float = 3.0,
                 max_seconds: float = 30.0) -> None:
        import soxr

        self.rate, self.threshold = sample_rate, threshold
        self.off = max(threshold - 0.15, 0.01)
        self.min_seconds, self.max_seconds = min_seconds, max_seconds
        self._resampler = (None if sample_rate == VAD_RATE
                           else soxr.ResampleStream(sample_rate, VAD_RATE, 1, dtype="float32"))
        self._audio = np.zeros(0, np.float32)  # input-rate audio from sample `_audio_start`
        self._audio_start = 0
        self._pending16 = np.zeros(0, np.float32)
        self._frame = 0
        self._start: float | None = None
        self._silent_since: float | None = None
        _model().reset_states()

    def feed(self, block: np.ndarray, last: bool = False) -> list[tuple[int, np.ndarray]]:
        import torch

        self._audio = np.concatenate([self._audio, block.astype(np.float32)])
        audio16 = block if self._resampler is None else self._resampler.resample_chunk(
            block.astype(np.float32), last=last)
        self._pending16 = np.concatenate([self._pending16, audio16])
        out: list[tuple[int, np.ndarray]] = []
        model = _model()
        with torch.inference_mode():
            while len(self._pending16) >= FRAME:
                frame, self._pending16 = self._pending16[:FRAME], self._pending16[FRAME:]
                p = float(model(torch.from_numpy(frame.copy())[None], VAD_RATE)[0, 0])
                self._step(p, self._frame * FRAME / VAD_RATE, out)
                self._frame += 1
        if last:
            if self._start is not None:
                self._close(self._frame * FRAME / VAD_RATE, out)
            model.reset_states()
        self._trim()
        return out

    def _step(self, p: float, t: float, out: list[tuple[int, np.ndarray]]) -> None:
        step = FRAME / VAD_RATE
        if p >= self.threshold:
            self._silent_since = None
            if self._start is None:
                self._start = t
        elif self._start is not None and p < self.off:
            self._silent_since = t if self._silent_since is None else self._silent_since
            if t + step - self._silent_since >= SEGMENT_SILENCE_S:
                self._close(self._silent_since, out)
        if self._start is not None and t + 2 * step - self._start > self.max_seconds - 2 * PAD_S:
            self._close(t + step, out)  # one more frame would pass the maximum: split here
            self._start = t + step

    def _close(self, end: float, out: list[tuple[int, np.ndarray]]) -> None:
        start, self._start, self._silent_since = self._start, None, None
        assert start is not None
        begin = max(round((start - PAD_S) * self.rate), self._audio_start)
        stop = min(round((end + PAD_S) * self.rate), self._audio_start + len(self._audio),
                   begin + round(self.max_seconds * self.rate))
        if (stop - begin) / self.rate >= self.min_seconds:
            out.append((begin, self._audio[begin - self._audio_start: stop - self._audio_start]
                        .copy()))

    def _trim(self) -> None:
        """Keeps only what an open (or the next) segment may still need, with its padding."""
        now = self._frame * FRAME / VAD_RATE
        keep_from = (self._start if self._start is not None else now) - PAD_S
        cut = max(round(keep_from * self.rate) - self._audio_start, 0)
        if cut:
            self._audio = self._audio[cut:]
            self._audio_start += cut


def iter_speech_segments(blocks: Any, sample_rate: int, threshold: float, min_seconds: float,
                         max_seconds: float) -> Any:
    """(start sample, samples) of each speech segment of a stream of decoded blocks."""
    segmenter = SpeechSegmenter(sample_rate, threshold, min_seconds, max_seconds)
    previous = None
    for block in blocks:
        if previous is not None:
            yield from segmenter.feed(previous)
        previous = block
    yield from segmenter.feed(previous if previous is not None else np.zeros(0, np.float32),
                              last=True)
