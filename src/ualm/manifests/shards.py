"""Reproducible WebDataset tars, and the rule that cuts an ordered list of samples into shards.

A sample is a dict with `__key__` and one bytes value per extension (`flac`, `json`, `npy`, ...).
Members are written as `<key>.<ext>`, extensions sorted, with fixed mtime, owner and mode, so equal
samples give equal bytes on every machine; `webdataset` and `datasets` read the tars as they are.

>>> import io, tarfile, tempfile, pathlib
>>> path = pathlib.Path(tempfile.mkdtemp()) / "s.tar"
>>> with TarShardWriter(path) as w:
...     w.write({"__key__": "a", "json": b"{}", "flac": b"x"})
>>> tarfile.open(path).getnames()
['a.flac', 'a.json']
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import shutil
import tarfile
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ualm.manifests.atomic import HashingWriter, temporary_sibling

FIXED_MTIME = 0
COPY_BUFFER = 8 << 20
_KEY = re.compile(r"^[A-Za-z0-9_\-:]+(/[A-Za-z0-9_\-:]+)*$")


class TarShardWriter:
    """Writes one tar atomically: members go to a temporary file, renamed on a clean exit. On a
    filesystem `fs` other than the local one (an object store: no rename), the temporary file is
    in a folder of this process's own and the finished tar is put under its deterministic name
    in one go (a stream cut off by a crash never sits under that name)."""

    def __init__(self, path: str | Path, fs: Any = None) -> None:
        self.path = Path(path)
        self._fs, self._name = fs, str(path)
        self.count = 0
        self.payload_bytes = 0
        self.ranges: dict[str, tuple[int, int]] = {}
        """Member name -> (offset of its data in the tar, size): what byte-range readers seek."""
        self._keys: set[str] = set()
        self._folder = tempfile.mkdtemp(prefix="ualm-shard-") if fs is not None else None
        self._tmp = temporary_sibling(self.path if self._folder is None
                                      else Path(self._folder) / self.path.name)
        self._tar: tarfile.TarFile | None = None

    def __enter__(self) -> TarShardWriter:
        self._tmp.parent.mkdir(parents=True, exist_ok=True)
        self._file = HashingWriter(open(self._tmp, "wb"))
        self._tar = tarfile.open(fileobj=self._file, mode="w", format=tarfile.GNU_FORMAT)
        # a member's data in one write, not in 16 KiB pieces (each hashed and written apart):
        # a third of the shard stage's time went to those pieces; the bytes are the same
        self._tar.copybufsize = COPY_BUFFER
        return self

    @property
    def sha256(self) -> str:
        """Hash of the finished tar, computed while writing (no second read of the file)."""
        return self._file.hexdigest()

    def write(self, sample: dict[str, Any]) -> None:
        assert self._tar is not None, "use TarShardWriter as a context manager"
        key = sample["__key__"]
        if not isinstance(key, str) or not _KEY.match(key) or "." in key:
            raise ValueError(f"invalid WebDataset key {key!r}: letters, digits, _ - : only")
        if key in self._keys:
            raise ValueError(f"duplicate key {key!r} in shard {self.path.name}")
        self._keys.add(key)
        for ext in sorted(k for k in sample if not k.startswith("__")):
            data = sample[ext]
            if not isinstance(data, bytes):
                raise TypeError(f"{key}.{ext} must be bytes, got {type(data).__name__}")
            info = tarfile.TarInfo(f"{key}.{ext}")
            info.size, info.mtime, info.mode = len(data), FIXED_MTIME, 0o644
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            self._tar.addfile(info, io.BytesIO(data))
            # the data ends where the tar now stands, before its padding to a whole block
            padded = -(-len(data) // tarfile.BLOCKSIZE) * tarfile.BLOCKSIZE
            self.ranges[info.name] = (self._tar.offset - padded, len(data))
            self.payload_bytes += len(data)
        self.count += 1

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        assert self._tar is not None
        self._tar.close()
        self._file.close()
        try:
            if exc_type is None and self._fs is not None:
                self._fs.put_file(str(self._tmp), self._name)
            elif exc_type is None:
                os.replace(self._tmp, self.path)
        finally:
            self._tmp.unlink(missing_ok=True)
            if self._folder is not None:
                shutil.rmtree(self._folder, ignore_errors=True)


def plan_shards(sizes: Iterable[int], max_samples: int, max_bytes: int) -> list[tuple[int, int]]:
    """Cuts samples (in their global order) into [start, stop) ranges: a shard closes when it
    holds max_samples, or before a sample that would take it past max_bytes. A single sample
    larger than max_bytes gets a shard of its own.

    >>> plan_shards([5, 5, 5, 5, 5], max_samples=2, max_bytes=100)
    [(0, 2), (2, 4), (4, 5)]
    >>> plan_shards([60, 60, 30, 200], max_samples=10, max_bytes=100)
    [(0, 1), (1, 3), (3, 4)]
    """
    cutter, ranges = ShardCutter(max_samples, max_bytes), []
    for size in sizes:
        if cutter.add(size):
            ranges.append(cutter.closed)
    if cutter.finish():
        ranges.append(cutter.closed)
    return ranges


class ShardCutter:
    """`plan_shards` one sample at a time, for plans that stream: `add` returns True when the
    sample opened a new shard, and `closed` is then the [start, stop) of the one it closed."""

    def __init__(self, max_samples: int, max_bytes: int) -> None:
        self.max_samples, self.max_bytes = max_samples, max_bytes
        self.start = self.count = self.used = 0
        self.closed = (0, 0)

    def add(self, size: int) -> bool:
        i = self.count
        full = i - self.start >= self.max_samples or (
            i > self.start and self.used + size > self.max_bytes)
        if full:
            self.closed = (self.start, i)
            self.start, self.used = i, 0
        self.used += size
        self.count += 1
        return full

    def finish(self) -> bool:
        """True when a last, partly filled shard remains (then in `closed`)."""
        if self.start < self.count:
            self.closed = (self.start, self.count)
            self.start = self.count
            return True
        return False


def safe_key(input_id: str) -> str:
    """A WebDataset-safe key for an input id: ids may hold dots and slashes, keys may not. When
    cleaning changes the id, a short hash keeps distinct ids distinct.

    >>> safe_key("speech/a.wav")
    'speech_a_wav-932b5b1c'
    >>> safe_key("clip_001")
    'clip_001'
    """
    clean = re.sub(r"[^A-Za-z0-9_\-]", "_", input_id)[:96]
    if clean == input_id:
        return clean
    return f"{clean}-{hashlib.sha1(input_id.encode()).hexdigest()[:8]}"
