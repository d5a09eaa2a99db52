"""The tokenize map: one audio shard → one token shard with the same keys and shard index.

Each sample's FLAC is decoded, looked up in the token cache by its decoded-audio hash, and only
misses go to the codec, in batches. The codec loads once per worker process.
"""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import soundfile as sf
import soxr

from ualm.manifests import names, schema
from ualm.manifests.layout import CorpusLayout, write_done
from ualm.tokenize.cache import TokenCache, audio_hash, npy_bytes

CHUNK = 64
"""Samples decoded and encoded together: bounds memory (64 x 10 s of float32 is 61 MB)."""


@dataclass(frozen=True)
class CodecSpec:
    """How to load a codec: enough to rebuild the same one in any worker."""

    source: str
    bandwidth: float
    seed: int = 0
    device: str | None = None
    batch_size: int | None = None


@dataclass(frozen=True)
class TokenizeTask:
    corpus: str
    shard: int
    codec: CodecSpec
    codec_id: str
    cache_dir: str | None


_WORKER_CODECS: dict[CodecSpec, Any] = {}


def worker_codec(spec: CodecSpec) -> Any:
    """The codec for `spec`, loaded at most once per process (workers keep it between tasks)."""
    if spec not in _WORKER_CODECS:
        from ualm.tokenize.codecs import load_codec

        _WORKER_CODECS[spec] = load_codec(spec.source, bandwidth=spec.bandwidth, device=spec.device,
                                          batch_size=spec.batch_size, seed=spec.seed)
    return _WORKER_CODECS[spec]


def stage_name(codec_id: str) -> str:
    return names.token_stage(codec_id)


def run_tokenize_shard(task: TokenizeTask) -> dict[str, Any]:
    layout = CorpusLayout(task.corpus)
    codec = worker_codec(task.codec)
    if codec.info.codec_id != task.codec_id:
        raise RuntimeError(f"worker loaded codec {codec.info.codec_id}, expected {task.codec_id}")
    info = {**codec.info.to_dict(), "codec_id": codec.info.codec_id}
    cache = TokenCache(task.cache_dir, task.codec_id)
    shard_path = layout.token_shard(task.codec_id, task.shard)
    audio_shard = layout.relative(layout.audio_shard(task.shard))
    rows: list[dict[str, Any]] = []
    encoded = cached = 0
    with layout.shard_writer(shard_path) as writer:
        for chunk in _chunks(layout, task.shard, codec.info.sample_rate):
            codes, hits = _codes_for(chunk, codec, cache)
            encoded += len(chunk) - hits
            cached += hits
            for (key, meta, _, digest), sample_codes in zip(chunk, codes, strict=True):
                token_meta = _token_json(meta, info, sample_codes, digest)
                writer.write({"__key__": key, "npy": npy_bytes(sample_codes),
                              "json": json.dumps(token_meta, sort_keys=True,
                                                 ensure_ascii=False).encode()})
                rows.append({**token_meta, "key": key, "shard": layout.relative(shard_path),
                             "audio_shard": audio_shard, "codec": info["name"]})
    part = layout.tokens_part(task.codec_id, task.shard)
    layout.write_table(part, schema.table(rows, schema.TOKENS))
    summary = {"shard": task.shard, "samples": len(rows), "encoded": encoded, "cached": cached,
               "frames": sum(r["frames"] for r in rows),
               "seconds": sum(r["seconds"] or 0.0 for r in rows),
               "token_bytes": layout.size(shard_path),
               "audio_bytes": layout.size(layout.audio_shard(task.shard))}
    write_done(layout, stage_name(task.codec_id), task.shard, [shard_path, part], summary,
               known_hashes={shard_path: writer.sha256})
    return summary


def _chunks(layout: CorpusLayout, shard: int, codec_rate: int
            ) -> Iterator[list[tuple[str, dict, np.ndarray, str]]]:
    """(key, audio json, float32 audio at `codec_rate`, hash of the stored audio) in shard
    order, CHUNK samples at a time. Audio stored at a higher rate than the codec's (a 24 kHz
    corpus, X-codec's 16 kHz) is resampled here, so a new codec needs no rebuild."""
    chunk: list[tuple[str, dict, np.ndarray, str]] = []
    with layout.open(layout.audio_shard(shard)) as handle, tarfile.open(fileobj=handle) as tar:
        members: dict[str, dict[str, bytes]] = {}
        for member in tar:
            key, _, ext = member.name.partition(".")
            members.setdefault(key, {})[ext] = tar.extractfile(member).read()
            if {"flac", "json"} <= members[key].keys():
                parts = members.pop(key)
                pcm, rate = sf.read(io.BytesIO(parts["flac"]), dtype="int16")
                audio = pcm.astype(np.float32) / np.float32(32768.0)
                if rate != codec_rate:
                    audio = soxr.resample(audio, rate, codec_rate, "HQ").astype(np.float32)
                chunk.append((key, json.loads(parts["json"]), audio, audio_hash(pcm, rate)))
                if len(chunk) == CHUNK:
                    yield chunk
                    chunk = []
    if chunk:
        yield chunk


def _codes_for(chunk: list, codec: Any, cache: TokenCache) -> tuple[list[np.ndarray], int]:
    codes: list[np.ndarray | None] = [cache.get(digest) for _, _, _, digest in chunk]
    missing = [i for i, c in enumerate(codes) if c is None]
    if missing:
        fresh = codec.encode([chunk[i][2] for i in missing])
        for i, sample_codes in zip(missing, fresh, strict=True):
            cache.put(chunk[i][3], sample_codes)
            codes[i] = sample_codes
    return codes, len(chunk) - len(missing)  # type: ignore[return-value]


def _token_json(meta: dict[str, Any], info: dict[str, Any], codes: np.ndarray,
                digest: str) -> dict[str, Any]:
    """What the trainer needs beside the codes: text, task, provenance, and the codec."""
    extra = meta.get("extra") or {}
    return {
        "sample_id": meta.get("sample_id"), "input_id": meta.get("input_id"),
        "captions": meta.get("captions") or [], "task": meta.get("task"),
        "language": meta.get("language"), "source": meta.get("source"),
        "license": meta.get("license"), "conversations": extra.get("conversations"),
        "seconds": meta.get("seconds"), "frames": int(codes.shape[1]),
        "codebooks": int(codes.shape[0]), "codec_id": info["codec_id"],
        "bandwidth": info["bandwidth"], "frame_rate": info["frame_rate"],
        "checkpoint_sha256": info["checkpoint_sha256"],
        "random_weights": info["random_weights"], "audio_sha256": digest,
    }
