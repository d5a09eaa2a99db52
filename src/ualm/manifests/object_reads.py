"""Reads from a store that spare requests: several objects in one round of concurrent GETs,
and small objects opened as files read whole in one GET. On S3 each request costs a round trip
(and, against a server on the same machine, CPU that the workers need), so these count.
"""

from __future__ import annotations

import io
from typing import Any

from ualm.manifests.storage import fs_read_bytes, is_s3, remote_errors


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
    """A file of a (non-local) filesystem. Read from S3: one ranged GET of the first
    WHOLE_READ bytes, whose Content-Range gives the size (no HEAD first): a small object is then
    in memory whole; a larger one is a file that serves those bytes from memory and the rest
    from ranged reads."""
    if mode != "rb" or not is_s3(fs):
        return fs.open(inner, mode)
    with remote_errors(name):
        try:
            head, size, etag = _first_bytes(fs, inner, WHOLE_READ)
        except FileNotFoundError:
            raise
        except OSError as exc:  # an empty object has no first byte to ask for (416)
            if _invalid_range(exc):
                return io.BytesIO(b"")  # it exists (else NoSuchKey), and holds no byte
            return io.BytesIO(fs_read_bytes(fs, inner, name))
    if len(head) >= size:
        return io.BytesIO(head)
    return io.BufferedReader(_HeadThenRest(head, size, lambda: _rest(fs, inner, size, etag)))


def _invalid_range(exc: BaseException) -> bool:
    """Whether the store answered 416 (InvalidRange): for bytes 0-N, only an empty object."""
    response = getattr(exc.__cause__, "response", None) or {}
    return response.get("Error", {}).get("Code") in ("InvalidRange", "416")


def _first_bytes(fs: Any, inner: str, count: int) -> tuple[bytes, int, str | None]:
    """(the object's first `count` bytes, its size, its ETag) in one GET."""
    from fsspec.asyn import sync

    bucket, key, _ = fs.split_path(inner)

    async def get() -> tuple[bytes, int, str | None]:
        response = await fs._call_s3("get_object", Bucket=bucket, Key=key,
                                     Range=f"bytes=0-{count - 1}")
        try:
            data = await response["Body"].read()
        finally:
            response["Body"].close()
        size = int(response["ContentRange"].rsplit("/", 1)[1])
        return data, size, response.get("ETag")

    return sync(fs.loop, get)


def _rest(fs: Any, inner: str, size: int, etag: str | None) -> Any:
    """s3fs's file for the bytes past the first GET, told the size and ETag that GET saw (it
    would HEAD for them), so a read of an object replaced meanwhile fails, not mixes."""
    handle = fs.open(inner, "rb", size=size)
    handle.details = {"name": inner, "size": size, "type": "file", "ETag": etag}
    return handle


class _HeadThenRest(io.RawIOBase):
    """A read-only file of `size` bytes whose first bytes are already in memory; the rest is
    read through the file `open_rest` makes, opened on first need."""

    def __init__(self, head: bytes, size: int, open_rest: Any) -> None:
        self._head, self._size, self._open_rest = head, size, open_rest
        self._rest: Any = None
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        want = min(len(view), self._size - self._pos)
        if want <= 0:
            return 0
        if self._pos < len(self._head):
            data = self._head[self._pos:self._pos + want]
        else:
            if self._rest is None:
                self._rest = self._open_rest()
            self._rest.seek(self._pos)
            data = self._rest.read(want)
        view[:len(data)] = data
        self._pos += len(data)
        return len(data)

    def close(self) -> None:
        if self._rest is not None:
            self._rest.close()
        super().close()


def _read_or_error(fs: Any, path: str) -> Any:
    try:
        return fs.cat_file(path)
    except FileNotFoundError as exc:
        return exc
