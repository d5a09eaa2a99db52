"""The framing between a worker and its decode process (``ualm.audio.isolation``): one kind byte
and an 8-byte little-endian length, then the payload, over a pipe."""

from __future__ import annotations

import os
import struct

HEADER = struct.Struct("<cQ")

# from the decode process
READY = b"R"  # started: the libraries are imported
INFO = b"I"  # a probe's answer: a pickled AudioInfo
CHUNK = b"C"  # decoded float32 samples, raw
END = b"E"  # the request is done
REJECT = b"X"  # the request failed: a pickled (reason, detail)
# to the decode process
REQUEST = b"Q"  # a pickled request
STOP = b"S"  # the reader wants no more chunks of the current request


def write_frame(fd: int, kind: bytes, payload: bytes | memoryview = b"") -> None:
    """Writes the whole frame (a blocking pipe may take it in parts)."""
    body = memoryview(payload).cast("B")  # a float32 view counts samples: count bytes
    parts = [memoryview(HEADER.pack(kind, len(body))), body]
    while parts:
        written = os.writev(fd, parts)
        while parts and written >= len(parts[0]):
            written -= len(parts[0])
            parts.pop(0)
        if parts:
            parts[0] = parts[0][written:]


def read_exact(fd: int, size: int) -> bytes | None:
    """Blocks for ``size`` bytes; None at end of file."""
    out = bytearray(size)
    view, got = memoryview(out), 0
    while got < size:
        n = os.readv(fd, [view[got:]])
        if n == 0:
            return None
        got += n
    return bytes(out)
