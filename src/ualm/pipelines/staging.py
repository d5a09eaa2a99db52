"""Unit payload files: the encoded bytes of every kept window, staged between the ingest map and
the shard writers. Written in bounded row groups so a 2-hour input never sits in memory whole."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from ualm.manifests.layout import temporary_sibling
from ualm.manifests.schema import UNIT_PAYLOAD

FLUSH_BYTES = 16 * 1024 * 1024


class PayloadWriter:
    """Appends (key, bytes) rows; flushes a row group every FLUSH_BYTES; renames on close."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._tmp = temporary_sibling(path)
        path.parent.mkdir(parents=True, exist_ok=True)
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
        os.replace(self._tmp, self.path)

    def abort(self) -> None:
        self._writer.close()
        self._tmp.unlink(missing_ok=True)

    def __enter__(self) -> PayloadWriter:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def read_payloads(path: Path, keys: set[str]) -> Iterator[tuple[str, bytes]]:
    """Yields the payloads of `keys` one row group at a time (others are skipped unread)."""
    parquet = pq.ParquetFile(path)
    for group in range(parquet.num_row_groups):
        names = parquet.read_row_group(group, columns=["key"]).column("key").to_pylist()
        if not keys.intersection(names):
            continue
        rows = parquet.read_row_group(group)
        for key, payload in zip(rows.column("key").to_pylist(), rows.column("payload").to_pylist(),
                                strict=True):
            if key in keys:
                yield key, payload
