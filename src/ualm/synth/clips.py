"""The corpus clips synthesis writes about: audio samples with codec tokens, their captions,
transcript and (when the build ran CLAP) embedding, in key order; and their code arrays, read
from the token shards as stored bytes (a trace carries an exact copy).
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ualm.errors import UalmError
from ualm.manifests.layout import CorpusLayout
from ualm.manifests.token_sets import corpus_codec


@dataclass(frozen=True)
class Clip:
    key: str
    captions: tuple[str, ...]
    seconds: float
    source: str
    token_shard: str
    """Relative to the corpus root."""
    audio_shard: str
    transcript: str | None = None
    tags: tuple[str, ...] = ()
    clap_embedding: np.ndarray | None = None


def _tags(extra: str | None) -> tuple[str, ...]:
    """Tags an input manifest carried under `extra` (a list or a comma-separated string)."""
    if not extra:
        return ()
    value = json.loads(extra).get("tags")
    if isinstance(value, str):
        value = value.split(",")
    return tuple(str(t).strip() for t in value or () if str(t).strip())


def load_clips(corpus: str | Path, codec_id: str | None = None) -> tuple[str, list[Clip]]:
    """(codec id, every tokenized audio clip of the corpus in key order)."""
    layout = CorpusLayout(corpus)
    codec = corpus_codec(corpus, codec_id)
    tokens_table = layout.folder_table(layout.tokens_manifests(codec),
                                       ["key", "shard", "audio_shard"])
    if tokens_table is None:
        raise UalmError(f"{corpus} has no token manifests for {codec}",
                        fix="run `ualm tokenize` on the corpus first")
    files = layout.manifest_parts("samples")
    samples = layout.dataset(files) if files else None
    columns = [c for c in ("key", "modality", "captions", "seconds", "source", "transcript",
                           "clap_embedding", "extra") if samples and c in samples.schema.names]
    rows = {r["key"]: r for r in samples.to_table(columns=columns).to_pylist()
            if r["modality"] == "audio"} if samples else {}
    tokens = tokens_table.to_pylist()
    clips = []
    for t in sorted(tokens, key=lambda r: r["key"]):
        row = rows.get(t["key"])
        if row is None:
            continue
        emb = row.get("clap_embedding")
        clips.append(Clip(t["key"], tuple(row.get("captions") or ()), float(row["seconds"]),
                          str(row.get("source") or ""), t["shard"], t["audio_shard"],
                          row.get("transcript") or None, _tags(row.get("extra")),
                          None if emb is None else np.asarray(emb, dtype=np.float32)))
    return codec, clips


def read_codes(root: str | Path, clips: Iterable[Clip]) -> dict[str, bytes]:
    """Key -> the `.npy` bytes of its codes, reading each needed token shard once."""
    by_shard: dict[str, set[str]] = defaultdict(set)
    for clip in clips:
        by_shard[clip.token_shard].add(clip.key)
    out: dict[str, bytes] = {}
    layout = CorpusLayout(root)
    for shard, keys in sorted(by_shard.items()):
        for key, parts in layout.iter_samples(layout.path(shard)):
            if key in keys:
                out[key] = bytes(parts["npy"])
    return out


def read_audio(root: str | Path, clips: Iterable[Clip]) -> dict[str, tuple[np.ndarray, int]]:
    """Key -> (mono float32 samples, rate), decoded from the audio shards' FLAC."""
    import io

    import soundfile as sf

    by_shard: dict[str, set[str]] = defaultdict(set)
    for clip in clips:
        by_shard[clip.audio_shard].add(clip.key)
    out: dict[str, tuple[np.ndarray, int]] = {}
    layout = CorpusLayout(root)
    for shard, keys in sorted(by_shard.items()):
        for key, parts in layout.iter_samples(layout.path(shard)):
            if key in keys:
                ext = next(e for e in parts if e != "json")
                data, rate = sf.read(io.BytesIO(bytes(parts[ext])), dtype="float32")
                out[key] = (data.mean(axis=1) if data.ndim == 2 else data, int(rate))
    return out
