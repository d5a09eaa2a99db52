"""Spoken-language identification and a transcript per clip with Whisper, from local weights.

`load_whisper` takes an openai-whisper `.pt` checkpoint or a Hugging Face Whisper folder (see
`whisper_models`); the model loads once per process and path. Both formats share the features
(transformers' WhisperFeatureExtractor) and one greedy decoding loop, so the same weights give
the same language probabilities and transcripts in either format.

Whisper reads 30 s: each clip is resampled to 16 kHz (soxr), cut to its first 30 s and padded
with silence to 30 s. Every clip in a batch therefore has the same shape and no clip is padded
for another, so a clip's result does not depend on the batch it ran in.

>>> guess = LanguageGuess("de", 0.93, "guten Tag")
>>> language_rejection(guess, keep_languages=["en"], min_probability=0.5).reason
'whisper/language'
>>> language_rejection(guess, keep_languages=["en", "de"], min_probability=0.5) is None
True
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ualm.filters.base import Rejection
from ualm.filters.whisper_models import Backend, Vocab, load_backend

SAMPLE_RATE = 16000
_SCORERS: dict[tuple[str, str], WhisperScorer] = {}


@dataclass(frozen=True)
class LanguageGuess:
    language: str
    """Whisper's language code ("en", "de", ...)."""
    probability: float
    """Whisper's probability for that language (over its language tokens)."""
    transcript: str
    """Greedy transcript in that language, without timestamps; "" when not asked for."""


def language_rejection(guess: LanguageGuess, keep_languages: Collection[str] | None,
                       min_probability: float | None) -> Rejection | None:
    """Low confidence is checked first: an unsure guess says little about which language it is.
    Empty or None `keep_languages` keeps every language."""
    if isinstance(keep_languages, str):  # "en" must not keep "e" and "n"
        keep_languages = (keep_languages,)
    if min_probability is not None and guess.probability < min_probability:
        return Rejection("whisper/low_confidence",
                         f"language {guess.language} at p={guess.probability:.2f} "
                         f"< {min_probability:g}")
    if keep_languages and guess.language not in keep_languages:
        return Rejection("whisper/language",
                         f"spoken language {guess.language} (p={guess.probability:.2f}) is not "
                         f"one of {', '.join(sorted(keep_languages))}")
    return None


class WhisperScorer:
    """Language guesses and transcripts for batches of mono float32 clips.

    >>> scorer = load_whisper("weights/whisper-small.pt")  # doctest: +SKIP
    >>> scorer.detect([samples], 48000)[0].language  # doctest: +SKIP
    'en'
    """

    def __init__(self, backend: Backend, vocab: Vocab, extractor: Any, device: str) -> None:
        self.backend = backend
        self.vocab = vocab
        self.extractor = extractor
        self.device = device

    def detect(self, clips: Sequence[np.ndarray], sample_rate: int, *, transcribe: bool = True,
               batch_size: int = 8, max_tokens: int | None = None) -> list[LanguageGuess]:
        """One guess per clip, in order. `max_tokens` caps each transcript (default: half the
        decoder's context, as openai-whisper does)."""
        guesses: list[LanguageGuess] = []
        for start in range(0, len(clips), batch_size):
            mel = self._features(clips[start:start + batch_size], sample_rate)
            guesses.extend(self._detect(mel, transcribe, max_tokens))
        return guesses

    def _features(self, clips: Sequence[np.ndarray], sample_rate: int) -> Any:
        import soxr
        import torch

        rows = []
        for clip in clips:
            audio = np.asarray(clip, dtype=np.float32)
            if audio.ndim != 1:
                raise ValueError(f"Whisper takes mono clips, got shape {audio.shape}")
            if sample_rate != SAMPLE_RATE and len(audio):
                audio = soxr.resample(audio, sample_rate, SAMPLE_RATE)
            features = self.extractor(audio, sampling_rate=SAMPLE_RATE, return_tensors="np")
            rows.append(features["input_features"][0])
        return torch.from_numpy(np.stack(rows)).to(self.device)

    def _detect(self, mel: Any, transcribe: bool, max_tokens: int | None) -> list[LanguageGuess]:
        import torch

        vocab, n = self.vocab, mel.shape[0]
        with torch.inference_mode():
            audio = self.backend.encode(mel)
            if vocab.language_ids:
                start = torch.full((n, 1), vocab.sot, device=mel.device)
                logits, _ = self.backend.logits(start, audio, None)
                probs = torch.softmax(logits[:, list(vocab.language_ids)], dim=-1)
                best = probs.argmax(dim=-1).tolist()
                languages = [vocab.languages[i] for i in best]
                scores = [float(probs[row, i]) for row, i in enumerate(best)]
                prompts = [[vocab.sot, vocab.language_ids[i], vocab.transcribe,
                            vocab.no_timestamps] for i in best]
            else:  # English-only checkpoints have no language tokens to ask
                languages, scores = ["en"] * n, [1.0] * n
                prompts = [[vocab.sot, vocab.no_timestamps]] * n
            texts = self._greedy(audio, prompts, max_tokens) if transcribe else [""] * n
        return [LanguageGuess(lang, p, text) for lang, p, text in zip(languages, scores, texts,
                                                                       strict=True)]

    def _greedy(self, audio: Any, prompts: list[list[int]], max_tokens: int | None) -> list[str]:
        """Greedy decoding without timestamps. As openai-whisper's defaults do, it never chooses
        non-speech symbols, nor a blank or end-of-text as the first token; it also never
        chooses special tokens other than end-of-text (a trained model does not want them)."""
        import torch

        vocab = self.vocab
        tokens = torch.tensor(prompts, device=audio.device)
        room = self.backend.n_text_ctx - tokens.shape[1]
        limit = min(max_tokens or self.backend.n_text_ctx // 2, room)
        done = torch.zeros(len(prompts), dtype=torch.bool, device=audio.device)
        logits, cache = self.backend.logits(tokens, audio, None)
        chosen = []
        for step in range(limit):
            logits[:, vocab.eot + 1:] = -np.inf
            logits[:, list(vocab.non_speech)] = -np.inf
            if step == 0:
                logits[:, [vocab.eot, vocab.blank]] = -np.inf
            token = torch.where(done, vocab.eot, logits.argmax(dim=-1))
            chosen.append(token)
            done |= token == vocab.eot
            if bool(done.all()) or step == limit - 1:
                break
            logits, cache = self.backend.logits(token[:, None], audio, cache)
        rows = torch.stack(chosen, dim=1).tolist() if chosen else [[] for _ in prompts]
        return [vocab.decode(row[:row.index(vocab.eot)] if vocab.eot in row else row).strip()
                for row in rows]


def load_whisper(path: str | Path, device: str | None = None) -> WhisperScorer:
    """The scorer for a local `.pt` checkpoint or Hugging Face folder, loaded once per process
    (workers keep it between tasks). `device` defaults to CUDA when available."""
    import torch

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    key = (str(Path(path).resolve()), device)
    if key not in _SCORERS:
        backend, vocab, extractor = load_backend(Path(path))
        backend.model.to(device).eval()
        _SCORERS[key] = WhisperScorer(backend, vocab, extractor, device)
    return _SCORERS[key]
