"""The model filters inside an ingest unit: windows scored in batches (Silero VAD, Whisper, CLAP
audio embeddings), annotated and judged one by one, and each input's captions judged by CLAP
once all its windows are in.

Models load once per worker process (each scorer module keeps its own cache) and only when a
config section turns them on. Which windows share a batch depends only on the unit's inputs,
so every engine gives the same bytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ualm.config import BuildConfig
from ualm.filters.base import Rejection
from ualm.filters.loudness import integrated_loudness, normalisation_gain
from ualm.filters.vad import Speech, detect_speech_batch, speech_rejection

if TYPE_CHECKING:
    from ualm.filters.whisper import LanguageGuess


@dataclass
class WindowScores:
    """What the batched models said about one window (None where a model is off)."""

    speech: Speech | None = None
    language: LanguageGuess | None = None
    clap: np.ndarray | None = None


def score_windows(windows: list[np.ndarray], rate: int, config: BuildConfig
                  ) -> list[WindowScores]:
    scores = [WindowScores() for _ in windows]
    if not windows:
        return scores
    if config.vad.enabled:
        for score, speech in zip(scores, detect_speech_batch(windows, rate, config.vad.threshold),
                                 strict=True):
            score.speech = speech
    if config.whisper.model:
        from ualm.filters.whisper import load_whisper

        whisper = load_whisper(config.whisper.model, config.whisper.device)
        guesses = whisper.detect(windows, rate, transcribe=config.whisper.transcribe,
                                 batch_size=config.whisper.batch_size)
        for score, guess in zip(scores, guesses, strict=True):
            score.language = guess
    if config.clap.model:
        from ualm.filters.clap import load_clap

        clap = load_clap(config.clap.model, config.clap.device)
        for score, embedding in zip(scores, clap.audio_embeddings(windows, rate), strict=True):
            score.clap = embedding
    return scores


def annotate_window(samples: np.ndarray, rate: int, config: BuildConfig,
                    segment: dict[str, Any], scores: WindowScores
                    ) -> tuple[np.ndarray, Rejection | None]:
    """Adds the configured annotations to `segment`; returns the samples to store
    (loudness-normalised when configured) and a rejection from the annotation filters."""
    if scores.speech is not None:
        segment["speech_ratio"] = scores.speech.ratio
        segment["speech_segments"] = [list(s) for s in scores.speech.segments]
        rejection = speech_rejection(scores.speech, config.vad)
        if rejection is not None:
            return samples, rejection
    if scores.language is not None:
        from ualm.filters.whisper import language_rejection

        guess = scores.language
        segment["spoken_language"] = guess.language
        segment["spoken_language_probability"] = round(float(guess.probability), 4)
        if config.whisper.transcribe:
            segment["transcript"] = guess.transcript
        rejection = language_rejection(guess, config.whisper.keep_languages,
                                       config.whisper.min_probability)
        if rejection is not None:
            return samples, rejection
    if scores.clap is not None:
        segment["clap_embedding"] = scores.clap.astype(np.float32).tolist()
    loudness = config.loudness
    if loudness.enabled or loudness.normalize_lufs is not None:
        lufs = integrated_loudness(samples, rate)
        segment["loudness_lufs"] = lufs
        if loudness.normalize_lufs is not None and lufs is not None:
            gain = normalisation_gain(lufs, loudness.normalize_lufs,
                                      float(np.max(np.abs(samples))), loudness.max_peak)
            samples = (samples * np.float32(gain)).astype(np.float32)
            segment["loudness_gain_db"] = round(20.0 * float(np.log10(gain)), 3)
    return samples, None


def clip_embedding(window_embeddings: list[list[float]]) -> np.ndarray:
    """A clip's embedding: the renormalised mean of its kept windows' embeddings."""
    mean = np.mean(np.asarray(window_embeddings, np.float64), axis=0)
    return (mean / max(float(np.linalg.norm(mean)), 1e-12)).astype(np.float32)


def judge_captions(clips: list[tuple[list[str], np.ndarray]], config: BuildConfig
                   ) -> list[tuple[list[str], list[float], list[tuple[str, Rejection]]]]:
    """For each (captions, clip embedding): CLAP's (kept captions best first, their scores,
    dropped with reasons). The unit's captions are embedded in one call; scores are cosine
    similarities, rounded to 4 places (what the manifest stores)."""
    from ualm.filters.clap import load_clap, select_captions

    clap = load_clap(config.clap.model, config.clap.device)  # type: ignore[arg-type]
    texts = [c for captions, _ in clips for c in captions]
    embeddings = clap.text_embeddings(texts) if texts else np.zeros((0, 1), np.float32)
    out, at = [], 0
    for captions, clip in clips:
        scores = [round(float(e @ clip), 4) for e in embeddings[at: at + len(captions)]]
        at += len(captions)
        kept, dropped = select_captions(captions, scores, config.clap.top_k,
                                        config.clap.threshold)
        score_of = dict(zip(captions, scores, strict=True))  # equal texts score alike
        out.append((kept, [score_of[c] for c in kept], dropped))
    return out
