"""Parquet schemas of the corpus manifests (public: pandas, polars and duckdb read them) and of the
internal unit outputs. Tables are built from lists of dicts through these schemas, so column
order and types never depend on the data."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pyarrow as pa

ANNOTATIONS = [
    ("speech_ratio", pa.float64()),  # Silero VAD, when enabled
    ("speech_segments", pa.list_(pa.list_(pa.float64()))),  # [start, end] s in the window
    ("loudness_lufs", pa.float64()),  # EBU R128 integrated loudness of the decoded window
    ("loudness_gain_db", pa.float64()),  # gain applied by loudness normalisation
    ("spoken_language", pa.string()),  # Whisper's language guess ...
    ("spoken_language_probability", pa.float64()),  # ... and its probability
    ("transcript", pa.string()),  # Whisper's greedy transcript
    ("clap_embedding", pa.list_(pa.float32())),  # CLAP audio embedding (unit length)
]
MANIFEST_ONLY = frozenset({"clap_embedding"})
"""Annotations too large for every sample's shard JSON: they live in the manifests only."""
"""Per-sample annotations of the optional filters: null where a filter is off."""

SAMPLES = pa.schema([
    ("key", pa.string()),
    ("sample_id", pa.string()),
    ("input_id", pa.string()),
    ("input_index", pa.int64()),
    ("segment", pa.int32()),
    ("modality", pa.string()),
    ("offset", pa.float64()),
    ("seconds", pa.float64()),
    ("sample_rate", pa.int32()),
    ("captions", pa.list_(pa.string())),
    ("clap_scores", pa.list_(pa.float64())),  # CLAP score of each caption; null: not scored
    ("source", pa.string()),
    ("license", pa.string()),
    ("task", pa.string()),
    ("language", pa.string()),
    ("path", pa.string()),
    ("url", pa.string()),
    ("rms_dbfs", pa.float64()),
    ("peak", pa.float64()),
    *ANNOTATIONS,
    ("caption_group", pa.string()),  # caption near-dedup: the group's first input id
    ("caption_group_size", pa.int32()),
    ("fingerprint", pa.string()),
    ("shard", pa.string()),
    ("payload_sha256", pa.string()),
    ("config_hash", pa.string()),
    ("extra", pa.string()),
])

REJECTS = pa.schema([
    ("input_id", pa.string()),
    ("input_index", pa.int64()),
    ("key", pa.string()),
    ("level", pa.string()),
    ("stage", pa.string()),
    ("reason", pa.string()),
    ("detail", pa.string()),
    ("seconds", pa.float64()),
    ("source", pa.string()),
    ("path", pa.string()),
])

DUPLICATES = pa.schema([
    ("input_id", pa.string()),
    ("input_index", pa.int64()),
    ("duplicate_of", pa.string()),
    ("duplicate_of_index", pa.int64()),
    ("kind", pa.string()),  # dedup/exact or dedup/near_duplicate
    ("bit_error_rate", pa.float64()),  # near duplicates: fingerprint distance to the survivor
    ("fingerprint", pa.string()),
    ("seconds", pa.float64()),
    ("captions", pa.list_(pa.string())),
    ("source", pa.string()),
    ("path", pa.string()),
])

TOKENS = pa.schema([
    ("key", pa.string()),
    ("sample_id", pa.string()),
    ("input_id", pa.string()),
    ("shard", pa.string()),
    ("audio_shard", pa.string()),
    ("seconds", pa.float64()),
    ("frames", pa.int32()),
    ("codebooks", pa.int32()),
    ("codec_id", pa.string()),
    ("codec", pa.string()),
    ("bandwidth", pa.float64()),
    ("frame_rate", pa.float64()),
    ("checkpoint_sha256", pa.string()),
    ("random_weights", pa.bool_()),
    ("audio_sha256", pa.string()),
])

# Internal: one row per input of a unit, after the unit's own checks (before global dedup).
UNIT_INPUTS = pa.schema([
    ("input_index", pa.int64()),
    ("input_id", pa.string()),
    ("status", pa.string()),
    ("reason", pa.string()),
    ("seconds", pa.float64()),
    ("kept_seconds", pa.float64()),
    ("kept_segments", pa.int32()),
    ("fingerprint", pa.string()),
    ("bucket", pa.int32()),
    ("chromaprint", pa.list_(pa.uint32())),  # near-dedup only
    ("lossless", pa.bool_()),
    ("native_rate", pa.int32()),
    ("native_channels", pa.int32()),
    ("record", pa.string()),
])

# Internal: kept segments of a unit (metadata; the payload bytes sit in a file of their own).
UNIT_SEGMENTS = pa.schema([
    ("key", pa.string()),
    ("sample_id", pa.string()),
    ("input_index", pa.int64()),
    ("segment", pa.int32()),
    ("modality", pa.string()),
    ("offset", pa.float64()),
    ("seconds", pa.float64()),
    ("rms_dbfs", pa.float64()),
    ("peak", pa.float64()),
    *ANNOTATIONS,
    ("payload_bytes", pa.int64()),
    ("payload_sha256", pa.string()),
])

UNIT_PAYLOAD = pa.schema([("key", pa.string()), ("payload", pa.large_binary())])

DEDUP = pa.schema([
    ("input_index", pa.int64()),
    ("keeper_index", pa.int64()),
    ("captions", pa.list_(pa.string())),
    ("caption_scores", pa.list_(pa.float64())),  # aligned with captions; null: not scored
])


def table(rows: Iterable[dict[str, Any]], schema: pa.Schema) -> pa.Table:
    """A table with exactly `schema`'s columns; missing keys become nulls."""
    rows = list(rows)
    columns = {name: [row.get(name) for row in rows] for name in schema.names}
    return pa.table(columns, schema=schema)
