"""The learning proof on the event world (`ualm.audio.events`): does a trained model understand
and generate the world's sounds?

- Understanding: the held-out clips' multiple-choice questions answered with the offered
  option the model finds most likely (`ualm.train.model.choices`: each option's log-likelihood
  as the reply, as language-model multiple-choice evaluations score), the figure the bars use.
  Beside it, greedy free text scored as MMAU scores it (the option the reply is closest to: a
  letter, or the option's text) and exact matches: a byte tokenizer spreads one option over
  several first-byte choices (five options start "a "), so greedy text can miss the option the
  model finds most likely.
- Generation: for each held-out generation caption, codes are generated and compared with the
  real clips of every class by code histogram: per clip, the histogram of the coarse codebooks'
  codes in each third of the clip (thirds, so that "A then B" differs from "B then A" despite
  the jittered boundary). The distance to a class is the KL divergence from the clip's histogram
  to the class's mean histogram (smoothed, so unseen codes cost a finite amount); a caption
  counts as right when its own class is the nearest. The same rule applied to the real held-out
  clips gives the ceiling the metric allows (about 94 % on the default world).

Controls: `zeroed_codes()` makes the tokenize stage write all-zero codes (as a broken codec
would), so that a proof run on such a corpus shows what the measures give when the audio carries
no information (they must fall far below the real run's); `with_heldout_of` scores a model on
another world's held-out clips (a validation split for choosing settings, so that the held-out
split is only ever used for the final figures).
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import re
from collections import defaultdict
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ualm.audio.events import EventWorld
from ualm.manifests.layout import CorpusLayout
from ualm.manifests.shard_reader import load_json, load_npy
from ualm.manifests.token_sets import corpus_codec
from ualm.train.model import choices
from ualm.train.model.choices import lettered_options
from ualm.train.model.generate import DEFAULT_GENERATION, GenerationConfig, answer, generate_codes
from ualm.train.model.model import UALMModel
from ualm.train.sequence.layout import CODEBOOK_SIZE

SEGMENTS = 3
CODEBOOKS = 2
"""Coarse codebooks compared: the deeper ones of a random codec are close to noise."""
SMOOTHING = 1e-3


def token_samples(corpus: str | Path, codec_id: str | None = None
                  ) -> Iterator[tuple[dict[str, Any], np.ndarray]]:
    """(metadata, codes) of every audio sample of a corpus, in shard order."""
    layout = CorpusLayout(corpus)
    codec = corpus_codec(corpus, codec_id)
    for shard in layout.token_shards(codec):
        for _, parts in layout.iter_samples(shard):
            yield load_json(parts["json"]), load_npy(parts["npy"])


def code_histogram(codes: np.ndarray, codebooks: int = CODEBOOKS) -> np.ndarray:
    """[SEGMENTS, codebooks, 1024]: per third of the clip and per codebook, each code's share."""
    k = min(codebooks, codes.shape[0])
    out = np.zeros((SEGMENTS, k, CODEBOOK_SIZE))
    cut = np.array_split(np.arange(codes.shape[1]), SEGMENTS)
    for h, frames in enumerate(cut):
        if len(frames) == 0:
            continue
        for n in range(k):
            out[h, n] = np.bincount(codes[n, frames].astype(np.int64),
                                    minlength=CODEBOOK_SIZE)[:CODEBOOK_SIZE] / len(frames)
    return out


def histogram_distance(clip: np.ndarray, reference: np.ndarray) -> float:
    """Sum over segments and codebooks of KL(clip || smoothed reference).

    >>> h = np.zeros((1, 1, 4)); h[0, 0, 0] = 1.0
    >>> histogram_distance(h, h) < histogram_distance(h, np.full((1, 1, 4), 0.25))
    True
    """
    q = (reference + SMOOTHING) / (1 + SMOOTHING * reference.shape[-1])
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(clip > 0, clip * (np.log(clip) - np.log(q)), 0.0)
    return float(terms.sum())


def class_centroids(world: EventWorld, corpus: str | Path) -> dict[str, np.ndarray]:
    """Mean code histogram of the real clips of each class in a corpus (e.g. the training one)."""
    labels = {c.id: c.label for clips in world.clips.values() for c in clips}
    sums: dict[str, list[np.ndarray]] = defaultdict(list)
    for meta, codes in token_samples(corpus):
        label = labels.get(str(meta.get("input_id")))
        if label is not None:
            sums[label].append(code_histogram(codes))
    return {label: np.mean(h, axis=0) for label, h in sorted(sums.items())}


def nearest_class(codes: np.ndarray, centroids: dict[str, np.ndarray]) -> str:
    hist = code_histogram(codes)
    return min(centroids, key=lambda label: histogram_distance(hist, centroids[label]))


def understanding_accuracy(model: UALMModel, world: EventWorld, corpus: str | Path,
                           batch: int = 32, split: str = "heldout") -> dict[str, Any]:
    """A split's questions (the corpus must hold that split) answered with the most likely
    offered option (`accuracy`), and by greedy free text: the option it picks
    (`free_text_accuracy`) and exact match with the reference answer."""
    clips = {c.id: c for c in world.clips[split] if c.question is not None}
    items = []
    for meta, codes in token_samples(corpus):
        clip = clips.get(str(meta.get("input_id")))
        if clip is not None:
            items.append((meta["conversations"][0]["value"], codes, clip.answer))
    right = exact = 0
    picked: list[str | None] = []
    examples = []
    for at in range(0, len(items), batch):
        part = items[at : at + batch]
        questions, codes = [q for q, _, _ in part], [c for _, c, _ in part]
        got = answer(model, questions, codes, max_new_tokens=40)
        picked += choices.choose(model, questions, codes)
        for (question, _, want), have in zip(part, got, strict=True):
            exact += have.strip() == str(want).strip()
            right += chosen_option(question, have) == str(want)
            if len(examples) < 3:
                examples.append({"want": want, "chosen": picked[len(examples)], "got": have})
    scored = choices.score(picked, [str(want) for _, _, want in items],
                           [len(choices.options_of(q)) for q, _, _ in items])
    n = max(len(items), 1)
    return {"accuracy": scored["accuracy"], "chance": scored["chance"],
            "free_text_accuracy": right / n, "exact_accuracy": exact / n,
            "questions": len(items), "examples": examples}


def constrained_accuracy(model: UALMModel, corpus: str | Path, codec_id: str | None = None,
                         batch: int = 8) -> dict[str, Any]:
    """The first question of each understanding sample of a corpus (a held-out one) answered
    with the most likely offered option (`ualm.train.model.choices`), scored against the
    reference answer, with chance beside it; `examples` holds each question's (question,
    chosen, expected) in shard order."""
    items = []
    for meta, codes in token_samples(corpus, codec_id):
        turns = meta.get("conversations") or []
        if len(turns) >= 2 and choices.options_of(turns[0]["value"]):
            items.append((turns[0]["value"], codes, str(turns[1]["value"])))
    chosen = choices.choose(model, [q for q, _, _ in items], [c for _, c, _ in items], batch)
    result = choices.score(chosen, [e for _, _, e in items],
                           [len(choices.options_of(q)) for q, _, _ in items])
    result["examples"] = [{"question": q, "chosen": c, "expected": e}
                          for (q, _, e), c in zip(items, chosen, strict=True)]
    return result


def chosen_option(question: str, reply: str) -> str | None:
    """The option a free-text reply picks: a letter it names, else the most similar option.

    >>> chosen_option("Which? (A) a low tone (B) white noise", "white nois")
    'white noise'
    >>> chosen_option("Which? (A) a low tone (B) white noise", "(A)")
    'a low tone'
    """
    options = lettered_options(question)
    if not options:
        return None
    reply = reply.strip()
    letter = re.match(r"^\(?([A-D])\)?(\s|$)", reply)
    if letter and letter.group(1) in options:
        return options[letter.group(1)]
    return max(options.values(),
               key=lambda o: difflib.SequenceMatcher(None, o, reply).ratio())


def generation_accuracy(model: UALMModel, world: EventWorld, train_corpus: str | Path,
                        heldout_corpus: str | Path, config: GenerationConfig = DEFAULT_GENERATION,
                        batch: int = 32, limit: int | None = None) -> dict[str, Any]:
    """Share of held-out captions whose generated codes are nearest their own class; also the
    same measure for the real held-out clips (the ceiling the metric allows)."""
    centroids = class_centroids(world, train_corpus)
    clips = {c.id: c for c in world.clips["heldout"] if c.question is None}
    items = []
    for meta, codes in token_samples(heldout_corpus):
        clip = clips.get(str(meta.get("input_id")))
        if clip is not None:
            items.append((clip, codes))
    items = items[:limit] if limit else items
    right = real_right = 0
    frames: list[int] = []
    for at in range(0, len(items), batch):
        part = items[at : at + batch]
        max_frames = max(c.shape[1] for _, c in part) * 2
        cfg = GenerationConfig(config.guidance, config.top_k, config.temperature,
                               min(config.max_frames, max_frames), config.seed + at)
        generated = generate_codes(model, [clip.caption for clip, _ in part], cfg)
        for (clip, real), codes in zip(part, generated, strict=True):
            frames.append(codes.shape[1])
            if codes.shape[1] > 0:
                right += nearest_class(codes, centroids) == clip.label
            real_right += nearest_class(real, centroids) == clip.label
    return {"accuracy": right / max(len(items), 1), "captions": len(items),
            "real_clip_accuracy": real_right / max(len(items), 1),
            "classes": len(centroids), "mean_frames": float(np.mean(frames)) if frames else 0.0}


def proof(model: UALMModel, world: EventWorld, train_corpus: str | Path,
          heldout_corpus: str | Path, config: GenerationConfig = DEFAULT_GENERATION,
          limit: int | None = None) -> dict[str, Any]:
    return {"understanding": understanding_accuracy(model, world, heldout_corpus),
            "generation": generation_accuracy(model, world, train_corpus, heldout_corpus,
                                              config, limit=limit)}


@contextlib.contextmanager
def zeroed_codes() -> Iterator[None]:
    """Within the block, the tokenize stage of builds run in this process (engine "local")
    writes all-zero codes of the right shape: the control in which audio carries nothing."""
    from ualm.tokenize import stage

    real = stage._codes_for

    def zeros(chunk: list, codec: Any, cache: Any) -> tuple[list[np.ndarray], int]:
        codes, hits = real(chunk, codec, cache)
        return [np.zeros_like(c) for c in codes], hits

    stage._codes_for = zeros  # type: ignore[assignment]
    try:
        yield
    finally:
        stage._codes_for = real  # type: ignore[assignment]


def with_heldout_of(world: EventWorld, other: EventWorld) -> EventWorld:
    """`world` with `other`'s held-out clips as its held-out split (same classes): to score on
    a validation world (another seed) with the training world's class centroids."""
    if [tuple(c) for c in world.classes] != [tuple(c) for c in other.classes]:
        raise ValueError("the two worlds have different classes")
    return dataclasses.replace(world, clips={**world.clips, "heldout": other.clips["heldout"]},
                               manifests={**world.manifests,
                                          "heldout": other.manifests["heldout"]})


def summarize(results: dict[str, Any]) -> dict[str, float]:
    return {"understanding_accuracy": results["understanding"]["accuracy"],
            "understanding_free_text_accuracy": results["understanding"]["free_text_accuracy"],
            "understanding_exact_accuracy": results["understanding"]["exact_accuracy"],
            "generation_accuracy": results["generation"]["accuracy"],
            "generation_real_ceiling": results["generation"]["real_clip_accuracy"]}


__all__: Sequence[str] = ("class_centroids", "code_histogram", "generation_accuracy", "proof",
                          "understanding_accuracy", "with_heldout_of", "zeroed_codes")
