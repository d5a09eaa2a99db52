"""Atomic writes of local files (a temporary sibling, then a rename) and hashing while writing.
`CorpusLayout` writes corpus files through these on a local folder; files outside a corpus (a
report, a blend spec, a reply cache) use them directly."""

from __future__ import annotations

import hashlib
import json
import os
import re
import uuid
from pathlib import Path
from typing import Any, BinaryIO

import pyarrow as pa
import pyarrow.parquet as pq


def temporary_sibling(path: str | Path) -> Path:
    """A unique temporary name next to `path`: two attempts at the same unit never collide."""
    path = Path(path)
    return path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")


_TEMPORARY = re.compile(r"^\..+\.\d+\.[0-9a-f]{8}\.tmp$")


def remove_temporaries(root: str | Path, keep: str | Path, local: bool = True) -> int:
    """Deletes the temporary siblings under the folder `root` (but not under `keep`, the work
    area) that writers killed before their rename left: a shard's partial tar, a manifest's
    partial part. Nothing reads them, but they are not the corpus's: a crashed run, rerun, must
    end with a clean run's files. Run where no writer of this build is left (its commit). A
    store (`local` False) has no temporary names: nothing to do. Returns how many went."""
    if not local:
        return 0
    keep = Path(keep)
    gone = 0
    for path in Path(root).rglob(".*.tmp"):
        if _TEMPORARY.match(path.name) and keep not in path.parents and path.is_file():
            path.unlink(missing_ok=True)
            gone += 1
    return gone


def json_bytes(obj: Any) -> bytes:
    return (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode()


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Readers see the old file or the whole new one, never a part. No fsync: the failure this
    guards against is a killed process or worker (the rename is atomic), and a flush per unit
    would stall every worker on the disk; a host crash is recovered by rebuilding the corpus."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_sibling(path)
    with open(tmp, "wb") as handle:
        handle.write(data)
    os.replace(tmp, path)


def atomic_write_json(path: str | Path, obj: Any) -> None:
    atomic_write_bytes(path, json_bytes(obj))


def write_parquet(table: pa.Table, where: Any) -> None:
    """Parquet with no writer-specific metadata, so equal tables give equal bytes."""
    pq.write_table(table.replace_schema_metadata(None), where, compression="zstd")


def atomic_write_table(path: str | Path, table: pa.Table) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_sibling(path)
    write_parquet(table, tmp)
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


def sha256_stream(handle: BinaryIO, block: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    while chunk := handle.read(block):
        digest.update(chunk)
    return digest.hexdigest()


def sha256_file(path: str | Path, block: int = 1 << 20) -> str:
    with open(path, "rb") as handle:
        return sha256_stream(handle, block)
