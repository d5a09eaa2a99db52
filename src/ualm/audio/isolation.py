"""Bounded decoding: each input decodes in a separate, long-lived process of the worker's
(``ualm.audio.decode_process``), within a time and a memory limit, so that one crafted file
costs its input and never the worker.

A decoder that takes longer than ``seconds`` (counted while the worker waits for it) is killed and
the input is `decode/timeout`; one that needs more than ``memory_mb`` more address space is
`decode/too_large`; one that dies (a segmentation fault in a codec library) is `decode/crashed`.
The process is started again for the next input. Samples cross a pipe as raw float32, so an
input decodes to the same bits as in process.

    >>> from ualm.config import LimitsConfig
    >>> limits = LimitsConfig(decode_seconds=60, decode_memory_mb=1024)
    >>> clip = open_input(limits, "clip.wav", target_rate=24000)  # doctest: +SKIP
    >>> clip.info.sample_rate, sum(len(c) for c in clip.chunks())  # doctest: +SKIP
    (44100, 72000)
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import pickle
import select
import signal
import subprocess
import sys
import threading
import time
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ualm.audio import decode
from ualm.audio.decode_process import FAULTS_ENV, planted
from ualm.audio.errors import AudioRejected
from ualm.audio.frames import CHUNK, END, HEADER, INFO, READY, REJECT, REQUEST, STOP, write_frame
from ualm.audio.sources import AudioInfo

START_SECONDS = 120.0
"""How long a decode process may take to start (a loaded machine imports slowly); not counted
against any input."""
_PIPE_BYTES = 1 << 20  # room for ~10 one-second chunks in flight: the decoder works ahead


class DecodeLimits(Protocol):
    """What one input may cost its decoder (`ualm.config.LimitsConfig` is one)."""

    @property
    def isolate(self) -> bool:
        """False decodes in the calling process, without limits."""

    @property
    def decode_seconds(self) -> float: ...

    @property
    def decode_memory_mb(self) -> int: ...


class InProcessInput:
    """An input decoding in the calling process, without limits."""

    def __init__(self, path: str | os.PathLike[str], args: dict[str, Any]) -> None:
        self.path, self.args = path, args
        self.info = decode.probe(path)

    def chunks(self) -> Iterator[np.ndarray]:
        return decode.iter_decoded(self.path, **self.args)


def open_input(limits: DecodeLimits, path: str | os.PathLike[str], *, target_rate: int,
               start: float = 0.0, end: float | None = None, block_seconds: float = 5.0
               ) -> InProcessInput | BoundedInput:
    """One input, probed (`info`) and ready to stream (`chunks()`, as
    `ualm.audio.decode.iter_decoded` gives them): in this thread's decode process within
    ``limits``, or in the calling process when ``limits.isolate`` is off. Raises AudioRejected
    as `probe` does, and `chunks()` part way as `iter_decoded` does."""
    if target_rate <= 0 or block_seconds <= 0 or start < 0 or (end is not None and end < start):
        raise ValueError(f"bad arguments: {target_rate=} {start=} {end=} {block_seconds=}")
    args = {"target_rate": target_rate, "start": start, "end": end,
            "block_seconds": block_seconds}
    return BoundedInput(limits, path, args) if limits.isolate else InProcessInput(path, args)


class BoundedInput:
    """An input decoding in this thread's decode process: one request, which answers the probe
    and then streams the samples (one round trip per input), within one time budget."""

    def __init__(self, limits: DecodeLimits, path: str | os.PathLike[str],
                 args: dict[str, Any]) -> None:
        self.limits, self.left = limits, float(limits.decode_seconds)
        self._frames = self._request(os.fspath(path), args)
        kind, payload = next(self._frames)
        if kind != INFO:
            raise RuntimeError(f"decode process: unexpected frame {kind!r} before the probe's")
        self.info: AudioInfo = pickle.loads(payload)

    def chunks(self) -> Iterator[np.ndarray]:
        for kind, payload in self._frames:
            if kind != CHUNK:
                raise RuntimeError(f"decode process: unexpected frame {kind!r} to a decode")
            yield payload

    def _request(self, path: str, args: dict[str, Any]) -> Iterator[tuple[bytes, Any]]:
        """The request's INFO and CHUNK frames; its END ends them, its REJECT raises. Left part
        way (an input found too long), the rest is stopped and drained, so that the process is
        ready for the next request."""
        process = _process()
        if process.busy is not None:  # an input left with its chunks unread: end it first
            process.busy.close()
            process = _process()
        process.busy = self._frames
        process.send(REQUEST, pickle.dumps({
            "path": path, "args": args, "memory_mb": self.limits.decode_memory_mb,
            "cwd": os.getcwd(),  # a relative path means what it means here
            "fault": planted(path, os.environ.get(FAULTS_ENV))}))
        finished = False
        try:
            while True:
                kind, payload = self._next(process)
                if kind == END:
                    finished = True
                    return
                if kind == REJECT:
                    finished = True
                    raise AudioRejected(*pickle.loads(payload))
                yield kind, payload
        finally:
            process.busy = None
            if not finished and process.alive:
                self._drain(process)

    def _next(self, process: DecodeProcess) -> tuple[bytes, Any]:
        started = time.monotonic()
        try:
            return process.read_frame(self.left)
        except TimeoutError:
            process.kill()
            seconds = self.limits.decode_seconds
            raise AudioRejected("decode/timeout", f"decoding took longer than {seconds:g} s "
                                                  "(limits.decode_seconds)") from None
        except EOFError:
            raise AudioRejected("decode/crashed", process.death()) from None
        finally:
            self.left -= time.monotonic() - started

    def _drain(self, process: DecodeProcess) -> None:
        """Asks the process to stop, then reads to the request's end (a few chunks at most)."""
        try:
            process.send(STOP, b"")
            while process.read_frame(max(self.left, 1.0))[0] not in (END, REJECT):
                pass
        except (TimeoutError, EOFError, OSError):
            process.kill()


class DecodeProcess:
    """A running ``ualm.audio.decode_process``, with pipes both ways."""

    def __init__(self) -> None:
        env = dict(os.environ)
        src = str(Path(__file__).resolve().parents[2])  # where this ualm is imported from
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [src, env.get("PYTHONPATH")]))
        env["MALLOC_ARENA_MAX"] = "2"  # a thread's 64 MB malloc arena counts as address space
        self.popen = subprocess.Popen(
            [sys.executable, "-m", "ualm.audio.decode_process"], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, env=env, close_fds=True)
        self.pid, self._in, self._out = os.getpid(), self.popen.stdin, self.popen.stdout
        self.alive = True
        self.busy: Iterator[tuple[bytes, Any]] | None = None  # the request in flight
        # at exit or when dropped: the closed pipe ends an idle process, the kill a busy one
        weakref.finalize(self, _end, self.popen)
        with contextlib.suppress(OSError):  # a smaller pipe only means less decoding ahead
            fcntl.fcntl(self._out.fileno(), fcntl.F_SETPIPE_SZ, _PIPE_BYTES)
        os.set_blocking(self._out.fileno(), False)  # a read that would wait selects instead
        try:
            kind, _ = self.read_frame(START_SECONDS)
        except (TimeoutError, EOFError):
            kind = None
        if kind != READY:
            detail = "no answer" if self.kill() else self.death()
            raise RuntimeError(f"the decode process did not start: {detail}")

    def send(self, kind: bytes, payload: bytes) -> None:
        write_frame(self._in.fileno(), kind, payload)

    def read_frame(self, seconds: float) -> tuple[bytes, Any]:
        """The next frame (a CHUNK's payload as float32 samples); TimeoutError when it takes
        longer than ``seconds`` in all, EOFError when the process has gone."""
        deadline = time.monotonic() + seconds
        kind, size = HEADER.unpack(self._read(bytearray(HEADER.size), deadline))
        if kind == CHUNK:  # read into the array the windows will use: no copy
            return kind, self._read(np.empty(size // 4, dtype=np.float32), deadline)
        return kind, self._read(bytearray(size), deadline)

    def _read(self, out: Any, deadline: float) -> Any:
        view, got, fd = memoryview(out).cast("B"), 0, self._out.fileno()
        while got < len(view):
            try:
                n = os.readv(fd, [view[got:]])
            except BlockingIOError:  # waits only when the decoder is behind: that time counts
                left = deadline - time.monotonic()
                if left <= 0 or not select.select([fd], [], [], left)[0]:
                    raise TimeoutError from None
                continue
            if n == 0:
                self.alive = False
                raise EOFError
            got += n
        return out

    def kill(self) -> bool:
        """Ends the process; True when it was still running."""
        running = self.popen.poll() is None
        if running:
            self.popen.kill()
        self.alive = False
        _end(self.popen)
        return running

    def death(self) -> str:
        """How the process ended, for a rejection's detail."""
        code = self.popen.wait()
        self.alive = False
        _end(self.popen)
        if code < 0:
            name = signal.Signals(-code).name
            hint = " (out of memory?)" if -code == signal.SIGKILL else ""
            return f"the decoder process died of {name}{hint}"
        return f"the decoder process exited with status {code}"


_local = threading.local()


def warm() -> None:
    """Starts this thread's decode process now (imports and all), so that the first input
    does not wait for it."""
    _process()


def _process() -> DecodeProcess:
    """This thread's decode process, started on first use and again after it was killed or died
    (between inputs too: the kernel's out-of-memory killer may pick it), or when this is a forked
    copy of the process that started it."""
    process: DecodeProcess | None = getattr(_local, "process", None)
    if (process is None or not process.alive or process.pid != os.getpid()
            or process.popen.poll() is not None):
        process = _local.process = DecodeProcess()
    return process


def _end(popen: subprocess.Popen[bytes]) -> None:
    """Closes the pipes (an idle process then ends) and reaps the process (killed if busy)."""
    for pipe in (popen.stdin, popen.stdout):
        if pipe is not None:
            with contextlib.suppress(OSError):
                pipe.close()
    try:
        popen.wait(timeout=1.0)
    except subprocess.TimeoutExpired:
        popen.kill()
        popen.wait()
