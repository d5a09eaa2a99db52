"""Audio-caption similarity with LAION-CLAP (transformers' `ClapModel`), from a local folder.

No randomness enters a score. The unfused model's feature extractor crops clips longer than its
10 s window at a random offset (`truncation="rand_trunc"`); here it never sees such a clip: a
longer clip is cut into the fewest 10 s windows that cover it, spaced evenly from its start to its
end, and its embedding is the normalised mean of theirs. Shorter clips are repeated to fill the
window (the folder's `padding`, "repeatpad" for LAION's checkpoints).

Batches never pad: every audio window has the same shape, and captions run in groups of equal
token length, so a score does not depend on the batch it ran in.

>>> kept, dropped = select_captions(["a dog", "rain", "a cat"], [0.6, 0.3, 0.6], top_k=1)
>>> kept, [(c, r.reason) for c, r in dropped]
(['a dog'], [('rain', 'clap/below_threshold'), ('a cat', 'clap/not_top_k')])
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ualm.filters.base import Rejection
from ualm.filters.clap_models import load_parts

_SCORERS: dict[tuple[str, str], ClapScorer] = {}


def select_captions(captions: Sequence[str], scores: Sequence[float], top_k: int | None = 3,
                    threshold: float = 0.45) -> tuple[list[str], list[tuple[str, Rejection]]]:
    """(kept captions, best first; [(caption, why) for the others], in input order). Ties rank
    by input order, so the same captions and scores always keep the same captions."""
    if len(captions) != len(scores):
        raise ValueError(f"{len(captions)} captions but {len(scores)} scores")
    ranked = sorted(range(len(captions)), key=lambda i: (-scores[i], i))
    rank = {index: position for position, index in enumerate(ranked)}
    kept = [captions[i] for i in ranked
            if scores[i] >= threshold and (top_k is None or rank[i] < top_k)]
    dropped: list[tuple[str, Rejection]] = []
    for i, caption in enumerate(captions):
        if scores[i] < threshold:
            dropped.append((caption, Rejection(
                "clap/below_threshold", f"similarity {scores[i]:.3f} < {threshold:g}")))
        elif top_k is not None and rank[i] >= top_k:
            dropped.append((caption, Rejection(
                "clap/not_top_k", f"similarity {scores[i]:.3f} ranks {rank[i] + 1} of "
                                  f"{len(captions)}; only the top {top_k} are kept")))
    return kept, dropped


class ClapScorer:
    """Embeddings and caption scores for mono float32 clips.

    >>> scorer = load_clap("weights/clap-htsat-unfused")  # doctest: +SKIP
    >>> scorer.scores([samples], [["a dog barks", "a piano"]], 48000)  # doctest: +SKIP
    [[0.52, 0.08]]
    """

    def __init__(self, model: Any, extractor: Any, tokenizer: Any, device: str) -> None:
        self.model = model
        self.extractor = extractor
        self.tokenizer = tokenizer
        self.device = device
        self.sample_rate = int(extractor.sampling_rate)
        self.window = int(extractor.nb_max_samples)
        self.max_tokens = min(int(tokenizer.model_max_length),
                              int(model.config.text_config.max_position_embeddings) - 2)

    def audio_embeddings(self, clips: Sequence[np.ndarray], sample_rate: int,
                         batch_size: int = 16) -> np.ndarray:
        """[clips, dim] float32, each row of unit length."""
        windows, owners = [], []
        for index, clip in enumerate(clips):
            for window in self._windows(clip, sample_rate):
                windows.append(window)
                owners.append(index)
        rows = [self._embed_audio(windows[i:i + batch_size])
                for i in range(0, len(windows), batch_size)]
        per_window = np.concatenate(rows) if rows else np.zeros((0, self._dim()), np.float32)
        sums = np.zeros((len(clips), per_window.shape[1]), np.float64)
        np.add.at(sums, np.asarray(owners, dtype=np.int64), per_window)
        return _unit(sums)

    def text_embeddings(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """[texts, dim] float32, each row of unit length."""
        ids = [self.tokenizer(text, truncation=True, max_length=self.max_tokens)["input_ids"]
               for text in texts]
        out = np.zeros((len(texts), self._dim()), np.float32)
        order = sorted(range(len(texts)), key=lambda i: (len(ids[i]), i))
        for start in range(0, len(order), batch_size):
            group = order[start:start + batch_size]
            for length in sorted({len(ids[i]) for i in group}):
                same = [i for i in group if len(ids[i]) == length]
                out[same] = self._embed_text([ids[i] for i in same])
        return out

    def scores(self, clips: Sequence[np.ndarray], captions_per_clip: Sequence[Sequence[str]],
               sample_rate: int) -> list[list[float]]:
        """Cosine similarity of each clip's captions with that clip, in caption order."""
        if len(clips) != len(captions_per_clip):
            raise ValueError(f"{len(clips)} clips but {len(captions_per_clip)} caption lists")
        audio = self.audio_embeddings(clips, sample_rate)
        texts = sorted({c for captions in captions_per_clip for c in captions})
        text = dict(zip(texts, self.text_embeddings(texts), strict=True))
        return [[float(np.dot(audio[i], text[c])) for c in captions]
                for i, captions in enumerate(captions_per_clip)]

    def _windows(self, clip: np.ndarray, sample_rate: int) -> list[np.ndarray]:
        import soxr

        audio = np.asarray(clip, dtype=np.float32)
        if audio.ndim != 1 or not len(audio):
            raise ValueError(f"CLAP takes non-empty mono clips, got shape {audio.shape}")
        if sample_rate != self.sample_rate:
            audio = soxr.resample(audio, sample_rate, self.sample_rate)
        if len(audio) <= self.window:
            return [audio]
        count = math.ceil(len(audio) / self.window)
        starts = [round(i * (len(audio) - self.window) / (count - 1)) for i in range(count)]
        return [audio[s:s + self.window] for s in starts]

    def _embed_audio(self, windows: list[np.ndarray]) -> np.ndarray:
        import torch

        features = [self.extractor(w, sampling_rate=self.sample_rate, truncation="rand_trunc",
                                   return_tensors="np")["input_features"][0] for w in windows]
        batch = torch.from_numpy(np.stack(features)).to(self.device)
        with torch.inference_mode():
            out = self.model.get_audio_features(input_features=batch).pooler_output
        return out.float().cpu().numpy()

    def _embed_text(self, ids: list[list[int]]) -> np.ndarray:
        import torch

        batch = torch.tensor(ids, device=self.device)
        with torch.inference_mode():
            out = self.model.get_text_features(input_ids=batch,
                                               attention_mask=torch.ones_like(batch))
        return out.pooler_output.float().cpu().numpy()

    def _dim(self) -> int:
        return int(self.model.config.projection_dim)


def _unit(rows: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    return (rows / np.where(norms > 0, norms, 1.0)).astype(np.float32)


def load_clap(path: str | Path, device: str | None = None) -> ClapScorer:
    """The scorer for a local Hugging Face CLAP folder (unfused, e.g. laion/clap-htsat-unfused),
    loaded once per process. `device` defaults to CUDA when available."""
    import torch

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    key = (str(Path(path).resolve()), device)
    if key not in _SCORERS:
        model, extractor, tokenizer = load_parts(Path(path))
        _SCORERS[key] = ClapScorer(model.to(device).eval(), extractor, tokenizer, device)
    return _SCORERS[key]
