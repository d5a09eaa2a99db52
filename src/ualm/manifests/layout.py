"""Where everything lives in a corpus folder, and the two write primitives every stage uses:
atomic writes (temporary name, then rename) and completion records (hashes of what a unit wrote).

    corpus/
      corpus.json                    written last: its presence means the corpus is complete
      README.md                      dataset card
      audio/audio-000000.tar         WebDataset shards: <key>.flac + <key>.json
      text/text-000000.tar           text-only samples: <key>.json
      tokens/<codec id>/tokens-000000.tar  codec tokens: <key>.npy (int16 [codebooks, frames]) + <key>.json
      manifests/samples/part-*.parquet     kept samples, one part per shard
      manifests/rejects/part-*.parquet     rejected inputs and dropped windows, one part per unit
      manifests/duplicates/part-*.parquet  duplicate inputs, one part per dedup bucket
      manifests/tokens/<codec id>/part-*.parquet  token rows, one part per token shard
      _work/                         unit outputs, completion records, run log (internal)
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any, BinaryIO

import pyarrow as pa
import pyarrow.parquet as pq

CORPUS_FILE = "corpus.json"
WORK = "_work"


class CorpusLayout:
    """Paths of one corpus folder; pure naming, no I/O.

    >>> CorpusLayout("/data/c").audio_shard(3).name
    'audio-000003.tar'
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    @property
    def corpus_file(self) -> Path:
        return self.root / CORPUS_FILE

    @property
    def work(self) -> Path:
        return self.root / WORK

    @property
    def plan_file(self) -> Path:
        return self.work / "plan.json"

    @property
    def runs_log(self) -> Path:
        return self.work / "runs.jsonl"

    def done_record(self, stage: str, index: int) -> Path:
        return self.work / "done" / f"{stage}-{index:06d}.json"

    def unit_records(self, unit: int) -> Path:
        return self.work / "listing" / f"unit-{unit:06d}.jsonl"

    def unit_inputs(self, unit: int) -> Path:
        return self.work / "ingest" / f"unit-{unit:06d}.inputs.parquet"

    def unit_segments(self, unit: int) -> Path:
        return self.work / "ingest" / f"unit-{unit:06d}.segments.parquet"

    def unit_payload(self, unit: int) -> Path:
        return self.work / "ingest" / f"unit-{unit:06d}.payload.parquet"

    def dedup_bucket(self, bucket: int) -> Path:
        return self.work / "dedup" / f"bucket-{bucket:04d}.parquet"

    @property
    def near_dedup_decisions(self) -> Path:
        return self.work / "near-dedup" / "decisions.parquet"

    @property
    def caption_dedup_decisions(self) -> Path:
        return self.work / "caption-dedup" / "decisions.parquet"

    @property
    def caption_groups(self) -> Path:
        return self.work / "caption-dedup" / "groups.parquet"

    def rejects_part(self, unit: int) -> Path:
        return self.root / "manifests" / "rejects" / f"part-{unit:06d}.parquet"

    def duplicates_part(self, bucket: int) -> Path:
        return self.root / "manifests" / "duplicates" / f"part-{bucket:06d}.parquet"

    def samples_part(self, modality: str, shard: int) -> Path:
        return self.root / "manifests" / "samples" / f"{modality}-{shard:06d}.parquet"

    def audio_shard(self, shard: int) -> Path:
        return self.root / "audio" / f"audio-{shard:06d}.tar"

    def text_shard(self, shard: int) -> Path:
        return self.root / "text" / f"text-{shard:06d}.tar"

    def shard(self, modality: str, shard: int) -> Path:
        return self.audio_shard(shard) if modality == "audio" else self.text_shard(shard)

    def token_shard(self, codec_id: str, shard: int) -> Path:
        return self.root / "tokens" / codec_id / f"tokens-{shard:06d}.tar"

    def tokens_part(self, codec_id: str, shard: int) -> Path:
        return self.root / "manifests" / "tokens" / codec_id / f"part-{shard:06d}.parquet"

    def relative(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()


def temporary_sibling(path: Path) -> Path:
    """A unique temporary name next to `path`: two attempts at the same unit never collide."""
    return path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Readers see the old file or the whole new one, never a part. No fsync: the failure this
    guards against is a killed process or worker (the rename is atomic), and a flush per unit
    would stall every worker on the disk; a host crash is recovered by rebuilding the corpus."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_sibling(path)
    with open(tmp, "wb") as handle:
        handle.write(data)
    os.replace(tmp, path)


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())


def atomic_write_table(path: Path, table: pa.Table) -> None:
    """Parquet with no writer-specific metadata, so equal tables give equal bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_sibling(path)
    pq.write_table(table.replace_schema_metadata(None), tmp, compression="zstd")
    os.replace(tmp, path)


class HashingWriter:
    """A write-only file wrapper that hashes what passes through it."""

    def __init__(self, handle: BinaryIO) -> None:
        self._handle = handle
        self._digest = hashlib.sha256()

    def write(self, data: bytes) -> int:
        self._digest.update(data)
        return self._handle.write(data)

    def tell(self) -> int:
        return self._handle.tell()

    def flush(self) -> None:
        self._handle.flush()

    def close(self) -> None:
        self._handle.close()

    def hexdigest(self) -> str:
        return self._digest.hexdigest()


def sha256_file(path: Path, block: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(block):
            digest.update(chunk)
    return digest.hexdigest()


def write_done(layout: CorpusLayout, stage: str, index: int, outputs: Iterable[Path],
               summary: dict[str, Any] | None = None,
               known_hashes: dict[Path, str] | None = None) -> None:
    """Records that a unit finished, with the hash and size of every file it wrote
    (`known_hashes` spares re-reading files whose hash was taken while writing)."""
    known = known_hashes or {}
    files = {
        layout.relative(p): {"sha256": known.get(p) or sha256_file(p), "bytes": p.stat().st_size}
        for p in sorted(outputs)
    }
    atomic_write_json(layout.done_record(stage, index), {"files": files, "summary": summary or {}})


def read_done(layout: CorpusLayout, stage: str, index: int) -> dict[str, Any] | None:
    """The completion record of a unit if it is valid (every file present with its size)."""
    record_path = layout.done_record(stage, index)
    try:
        record = json.loads(record_path.read_text())
    except (OSError, ValueError):
        return None
    for rel, meta in record.get("files", {}).items():
        target = layout.root / rel
        if not target.is_file() or target.stat().st_size != meta["bytes"]:
            return None
    return record
