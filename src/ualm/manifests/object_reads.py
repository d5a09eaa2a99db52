"""Reads from a store that spare requests: several objects in one round of concurrent GETs,
and small objects opened as files read whole in one GET. On S3 each request costs a round trip
(and, against a server on the same machine, CPU that the workers need), so these count.
"""

from __future__ import annotations

import io
from typing import Any

from ualm.manifests.storage import fs_read_bytes, fs_size, is_s3, remote_errors


def fs_read_many(fs: Any, inner: list[str], name: str, missing_ok: bool = False
                 ) -> list[Any]:
    """Several whole files, in the order given; on S3 one concurrent GET each. A missing one
    is None with `missing_ok`, else FileNotFoundError."""
    if not inner:
        return []
    with remote_errors(name):
        if is_s3(fs):
            found = fs.cat(list(inner), max_concurrency=1, on_error="return")
            out = [found[path] for path in inner]
        else:
            out = [_read_or_error(fs, path) for path in inner]
        for blob in out:
            if isinstance(blob, FileNotFoundError) and missing_ok:
                continue
            if isinstance(blob, BaseException):
                raise blob
        return [None if isinstance(blob, BaseException) else blob for blob in out]


WHOLE_READ = 64 * 2**20
"""An object up to this size is opened for reading with one GET of all of it (s3fs's file
reads a large parquet's footer and body in separate ranged GETs)."""


def fs_open(fs: Any, inner: str, name: str, mode: str = "rb") -> Any:
    """A file of a (non-local) filesystem. Read from S3: one HEAD for the size, then the whole
    object in one GET when it is small, else a streaming file that knows its size."""
    if mode != "rb" or not is_s3(fs):
        return fs.open(inner, mode)
    size = fs_size(fs, inner, name)
    if size <= WHOLE_READ:
        return io.BytesIO(fs_read_bytes(fs, inner, name))
    return fs.open(inner, "rb", size=size)


def _read_or_error(fs: Any, path: str) -> Any:
    try:
        return fs.cat_file(path)
    except FileNotFoundError as exc:
        return exc
