"""Reading WebDataset tars fast: one read of the file, headers parsed with slicing, members
grouped into samples by key. The trainer's shards are small (codes and JSON), so a whole shard
fits in memory, and skipping `tarfile`'s per-member objects is what lets decoding, mixing and
packing keep pace with a bare `tarfile` loop.

>>> import tempfile, pathlib
>>> from ualm.manifests.shards import TarShardWriter
>>> path = pathlib.Path(tempfile.mkdtemp()) / "s.tar"
>>> with TarShardWriter(path) as w:
...     w.write({"__key__": "a", "json": b"{}", "npy": b"x"})
...     w.write({"__key__": "b", "json": b"[]"})
>>> [(k, sorted(v)) for k, v in iter_samples(path)]
[('a', ['json', 'npy']), ('b', ['json'])]
"""

from __future__ import annotations

import functools
import io
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ualm.errors import UalmError
from ualm.manifests import storage

BLOCK = 512


def _size(field: bytes) -> int:
    if field[0] & 0x80:  # GNU base-256 for members of 8 GiB and more
        return int.from_bytes(field[1:], "big")
    return int(field.rstrip(b"\0 ") or b"0", 8)


def read_shard(path: str | Path) -> bytes:
    """A shard's bytes: a path, or a URL of a published corpus, fetched in one read."""
    try:
        return storage.read_bytes(path)
    except FileNotFoundError as exc:
        raise UalmError(f"shard {path} is missing", fix="rebuild or re-download the corpus") from exc


def iter_members(path: str | Path) -> Iterator[tuple[str, memoryview]]:
    """(name, data) of every regular file in the tar, in order."""
    yield from members_of(read_shard(path))


def members_of(data: bytes) -> Iterator[tuple[str, memoryview]]:
    """(name, data) of every regular file of a tar held in memory."""
    view = memoryview(data)
    at, end, long_name = 0, len(data), None
    while at + BLOCK <= end:
        header = data[at : at + BLOCK]
        if header[0] == 0:
            break
        size = _size(header[124:136])
        kind = header[156:157]
        body = view[at + BLOCK : at + BLOCK + size]
        at += BLOCK + -(-size // BLOCK) * BLOCK
        if kind == b"L":  # GNU long name of the next member
            long_name = bytes(body).rstrip(b"\0").decode()
            continue
        if kind == b"x":  # pax header: only `path` matters here
            for record in bytes(body).decode().splitlines():
                if " path=" in record:
                    long_name = record.split(" path=", 1)[1]
            continue
        name = long_name or header[:100].rstrip(b"\0").decode()
        prefix = header[345:500].rstrip(b"\0")
        if prefix and long_name is None and header[257:262] == b"ustar":
            name = prefix.decode() + "/" + name
        long_name = None
        if kind in (b"0", b"\0"):
            yield name, body


def iter_samples(path: str | Path) -> Iterator[tuple[str, dict[str, memoryview]]]:
    """(key, {extension: data}) per sample: consecutive members sharing a key."""
    yield from samples_of(iter_members(path))


def samples_of(members: Iterator[tuple[str, memoryview]]
               ) -> Iterator[tuple[str, dict[str, memoryview]]]:
    """Members grouped into samples by key."""
    key: str | None = None
    parts: dict[str, memoryview] = {}
    for name, body in members:
        slash = name.rfind("/")
        dot = name.find(".", slash + 1)
        member_key, ext = name[:dot], name[dot + 1 :]
        if member_key != key:
            if key is not None:
                yield key, parts
            key, parts = member_key, {}
        parts[ext] = body
    if key is not None:
        yield key, parts


_NPY_HEADER = re.compile(
    rb"^\{'descr': '([<>|]?[a-z]\d+)', 'fortran_order': False, 'shape': \(([\d, ]*)\), \}")


@functools.lru_cache(maxsize=4096)
def _npy_header(header: bytes) -> tuple[np.dtype, tuple[int, ...]] | None:
    """(dtype, shape) of a C-order header (clips of one length share it: hence the cache)."""
    match = _NPY_HEADER.match(header)
    if not match:
        return None
    shape = tuple(int(d) for d in match.group(2).split(b",") if d.strip())
    return np.dtype(match.group(1).decode()), shape


def load_npy(data: memoryview | bytes) -> np.ndarray:
    """An .npy payload as a read-only view of `data` (no copy). The header NumPy writes for
    C-order arrays is parsed with a regular expression; anything else goes through NumPy's own
    reader, whose header parsing (`ast.literal_eval`) cost more than the rest of a sample. (The
    trainer decodes one array per sample drawn: the few slices here are its per-sample cost.)"""
    view = memoryview(data)
    lead = bytes(view[:10])  # magic, version, and a version 1 header's length
    if lead[:7] == b"\x93NUMPY\x01":
        start, size = 10, int.from_bytes(lead[8:10], "little")
    elif lead[:7] == b"\x93NUMPY\x02":
        start, size = 12, int.from_bytes(view[8:12], "little")
    else:
        start = size = 0
    parsed = _npy_header(bytes(view[start : start + size])) if start else None
    if parsed is not None:
        dtype, shape = parsed
        return np.ndarray(shape, dtype, buffer=view, offset=start + size)
    return np.lib.format.read_array(io.BytesIO(data), allow_pickle=False)


def load_json(data: memoryview | bytes) -> Any:
    return json.loads(bytes(data))
