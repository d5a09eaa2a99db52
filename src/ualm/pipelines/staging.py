"""Unit payload files: the encoded bytes of every kept window, staged between the ingest map and
the shard writers. Written in bounded row groups so a 2-hour input never sits in memory whole,
into a temporary file that becomes the payload only when finished (renamed into a local corpus,
uploaded in one put to a corpus in a store)."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

import pyarrow as pa
import pyarrow.parquet as pq

from ualm.manifests.layout import CorpusLayout, temporary_sibling
from ualm.manifests.schema import UNIT_PAYLOAD

FLUSH_BYTES = 16 * 1024 * 1024


class PayloadWriter:
    """Appends (key, bytes) rows; flushes a row group every FLUSH_BYTES; puts the file under
    `path` (a corpus name) on close."""

    def __init__(self, layout: CorpusLayout, path: str) -> None:
        self.layout, self.path = layout, path
        # a local corpus: a sibling (the rename stays on one disk); a store: this process's own
        self._folder = None if layout.local else tempfile.mkdtemp(prefix="ualm-payload-")
        target = Path(path) if self._folder is None else Path(self._folder) / "payload.parquet"
        self._tmp = temporary_sibling(target)
        self._tmp.parent.mkdir(parents=True, exist_ok=True)
        self._writer = pq.ParquetWriter(self._tmp, UNIT_PAYLOAD, compression="none")
        self._keys: list[str] = []
        self._payloads: list[bytes] = []
        self._pending = 0

    def add(self, key: str, payload: bytes) -> None:
        self._keys.append(key)
        self._payloads.append(payload)
        self._pending += len(payload)
        if self._pending >= FLUSH_BYTES:
            self._flush()

    def _flush(self) -> None:
        if self._keys:
            batch = pa.table({"key": self._keys, "payload": self._payloads}, schema=UNIT_PAYLOAD)
            self._writer.write_table(batch)
        self._keys, self._payloads, self._pending = [], [], 0

    def close(self) -> None:
        self._flush()
        self._writer.close()
        try:
            self.layout.upload(self._tmp, self.path)
        finally:
            self._cleanup()

    def abort(self) -> None:
        self._writer.close()
        self._cleanup()

    def _cleanup(self) -> None:
        self._tmp.unlink(missing_ok=True)
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)

    def __enter__(self) -> PayloadWriter:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def read_payloads(source: BinaryIO, keys: set[str]) -> Iterator[tuple[str, bytes]]:
    """Yields the payloads of `keys` one row group at a time (others are skipped unread) from
    an open payload file (local or in a store)."""
    parquet = pq.ParquetFile(source)
    for group in range(parquet.num_row_groups):
        names = parquet.read_row_group(group, columns=["key"]).column("key").to_pylist()
        if not keys.intersection(names):
            continue
        rows = parquet.read_row_group(group)
        for key, payload in zip(rows.column("key").to_pylist(), rows.column("payload").to_pylist(),
                                strict=True):
            if key in keys:
                yield key, payload
