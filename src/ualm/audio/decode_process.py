"""The decode process: ``python -m ualm.audio.decode_process``, started and fed by
``ualm.audio.isolation``. It decodes one input at a time, so that a decoder that hangs,
allocates without bound or crashes in native code costs that input, not the worker.

Requests come on stdin; frames (``ualm.audio.frames``) go out on the descriptor that was stdout,
and stdout itself is pointed at stderr, so that a library's stray print cannot corrupt a frame.
Each request runs under an address-space limit (RLIMIT_AS) of what the process held when the
request came plus the request's ``memory_mb``: an allocation past it fails, and the request is
answered `decode/too_large`.

Test hook: ``UALM_DECODE_FAULTS="clip-3.wav=hang, *.mp3=segv"`` (read by the worker at each
request) plants a decoder that misbehaves once it has sent its first chunk of an input
whose file name matches the pattern: `hang` sleeps forever, `alloc` allocates without bound,
`segv` dies of a segmentation fault in native code.
"""

from __future__ import annotations

import ctypes
import fnmatch
import os
import pickle
import resource
import select
import signal
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ualm.errors import UalmError

FAULTS_ENV = "UALM_DECODE_FAULTS"
_IN = 0


def main() -> None:
    out = os.dup(1)
    os.dup2(2, 1)
    _die_with_parent()
    import av  # noqa: F401  # imported now, so that no input's time limit pays for it
    import soundfile  # noqa: F401

    from ualm.audio import decode  # noqa: F401
    from ualm.audio.frames import READY, write_frame

    write_frame(out, READY)
    try:
        while (request := _next_request()) is not None:
            _serve(request, out)
    except BrokenPipeError:
        pass  # the worker stopped reading: it gave up on this process
    # at end of file the worker closed the pipe: it is gone or done


def _die_with_parent() -> None:
    """Linux: the kernel kills this process when the thread that started it ends, so a killed
    worker leaves no decoder behind (the closed pipe does that too, but not for a hung one)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if os.getppid() == 1:  # the worker died before prctl took effect
        sys.exit(0)


def _next_request() -> dict[str, Any] | None:
    """The next request; a STOP that comes after its request finished is skipped."""
    from ualm.audio.frames import HEADER, REQUEST, read_exact

    while True:
        header = read_exact(_IN, HEADER.size)
        if header is None:
            return None
        kind, size = HEADER.unpack(header)
        payload = read_exact(_IN, size) if size else b""
        if payload is None:
            return None
        if kind == REQUEST:
            return pickle.loads(payload)


def _stop_asked() -> bool:
    """Whether the worker asked to stop this request (checked between chunks, without waiting).
    Only a STOP can come while a request runs: the worker sends the next request only after
    this one's END or REJECT."""
    from ualm.audio.frames import HEADER, read_exact

    if not select.select([_IN], [], [], 0)[0]:
        return False
    header = read_exact(_IN, HEADER.size)
    if header is not None:
        read_exact(_IN, HEADER.unpack(header)[1])  # a STOP carries nothing, but read it whole
    return True


def _serve(request: dict[str, Any], out: int) -> None:
    from ualm.audio.decode import iter_decoded, probe
    from ualm.audio.errors import AudioRejected
    from ualm.audio.frames import CHUNK, END, INFO, REJECT, write_frame

    path, memory_mb, fault = request["path"], request["memory_mb"], request["fault"]
    if os.getcwd() != request["cwd"]:
        os.chdir(request["cwd"])
    try:
        with _memory_limit(memory_mb):
            write_frame(out, INFO, pickle.dumps(probe(path)))  # then the samples, unasked
            for chunk in iter_decoded(path, **request["args"]):
                write_frame(out, CHUNK, memoryview(chunk))
                if fault:  # planted: misbehaves once the worker holds part of the input
                    _misbehave(fault)
                if _stop_asked():
                    break
            if fault:
                _misbehave(fault)
            write_frame(out, END)
    except AudioRejected as exc:
        write_frame(out, REJECT, pickle.dumps((exc.reason, exc.detail)))
    except MemoryError:
        write_frame(out, REJECT, pickle.dumps(
            ("decode/too_large", f"decoding needed more than {memory_mb} MB "
                                 "(limits.decode_memory_mb)")))
    except Exception as exc:  # as an in-process decode reports it (pipelines.ingest)
        write_frame(out, REJECT, pickle.dumps(
            ("decode/unexpected_error", f"{type(exc).__name__}: {exc}")))


def _address_space() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[0]) * resource.getpagesize()


@contextmanager
def _memory_limit(memory_mb: int) -> Iterator[None]:
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    limit = _address_space() + memory_mb * 1024 * 1024
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def planted(path: str, spec: str | None) -> str | None:
    """The action UALM_DECODE_FAULTS plants for this file, if any (read by the worker, so that
    a bad rule fails there, with a message)."""
    for item in filter(None, (part.strip() for part in (spec or "").split(","))):
        pattern, _, action = item.rpartition("=")
        if action not in ("hang", "alloc", "segv"):
            raise UalmError(f"bad {FAULTS_ENV} rule {item!r}", fix="use PATTERN=hang, "
                            "PATTERN=alloc or PATTERN=segv (PATTERN a file name glob)")
        if fnmatch.fnmatch(Path(path).name, pattern):
            return action
    return None


def _misbehave(action: str) -> None:
    if action == "hang":
        while True:
            time.sleep(3600)
    if action == "alloc":
        held = []
        while True:
            held.append(bytearray(16 * 1024 * 1024))
    ctypes.string_at(0)  # segv: a read of address 0 in native code


if __name__ == "__main__":
    main()
