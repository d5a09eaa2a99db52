"""The report's listening section: a few samples' stored audio next to their codes decoded back
through the corpus's own codec, as WAV bytes ready to inline."""

from __future__ import annotations

import io
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from ualm.manifests.layout import CorpusLayout

MAX_SECONDS = 10.0
"""Longer clips are cut for the page: a report stays a few MB, not the corpus's size."""


@dataclass(frozen=True)
class Heard:
    key: str
    source: str
    caption: str
    seconds: float
    original: bytes
    """WAV (16-bit PCM) of the stored FLAC."""
    decoded: bytes | None
    """WAV of the codes decoded back; None when the corpus has no token set."""
    codec_id: str | None
    random_codec: bool


def pick(samples: list[dict[str, Any]], n: int) -> list[dict[str, Any]]:
    """`n` audio samples, deterministically: the first of each source in turn (sources in name
    order), so every source is heard before any is heard twice."""
    by_source: dict[str, list[dict[str, Any]]] = {}
    for s in samples:
        if s["modality"] == "audio":
            by_source.setdefault(s["source"] or "", []).append(s)
    queues = [sorted(v, key=lambda s: s["key"]) for _, v in sorted(by_source.items())]
    out: list[dict[str, Any]] = []
    depth = 0
    while len(out) < n and any(depth < len(q) for q in queues):
        out += [q[depth] for q in queues if depth < len(q)][: n - len(out)]
        depth += 1
    return out


def wav_bytes(audio: np.ndarray, rate: int) -> bytes:
    buffer = io.BytesIO()
    clipped = np.clip(np.asarray(audio, np.float32)[: int(MAX_SECONDS * rate)], -1.0, 1.0)
    sf.write(buffer, clipped, rate, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def _stored(layout: CorpusLayout, sample: dict[str, Any]) -> tuple[np.ndarray, int]:
    shard = layout.path(sample["shard"])
    with layout.open(shard) as handle, tarfile.open(fileobj=handle) as tar:
        member = tar.extractfile(f"{sample['key']}.flac")
        if member is None:
            raise KeyError(sample["key"])
        audio, rate = sf.read(io.BytesIO(member.read()), dtype="float32")
    return audio, rate


def listen_to(corpus: str | Path, samples: list[dict[str, Any]], tokens: dict[str, Any],
              device: str | None = None) -> list[Heard]:
    """Stored audio and decoded codes for each sample (the codec loads once). The first token
    set (by codec id) decodes; its checksum is checked as `ualm listen` does."""
    from ualm.tokenize.listen import load_codes

    layout = CorpusLayout(corpus)
    codec, record = None, None
    if tokens and samples:
        from ualm.train.model.infer import corpus_codec_model

        record = tokens[sorted(tokens)[0]]
        codec = corpus_codec_model(corpus, record["codec_id"], device)
    heard = []
    for s in samples:
        audio, rate = _stored(layout, s)
        decoded = None
        if codec is not None:
            codes = load_codes(layout, record["codec_id"], s["key"])
            decoded = wav_bytes(codec.decode(codes), codec.info.sample_rate)
        heard.append(Heard(s["key"], s["source"] or "", "; ".join(s.get("captions") or []),
                           float(s["seconds"]), wav_bytes(audio, rate), decoded,
                           record["codec_id"] if record else None,
                           bool(record and record.get("random_weights"))))
    return heard
