"""The two decoding backends: each reads native-rate ``(frames, channels)`` float32 blocks.

libsndfile (soundfile) and PyAV (FFmpeg) sources share one interface (``info``, ``position``,
``blocks``, ``close``), so the caller's downmix + resample path never depends on the backend.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from itertools import chain
from pathlib import Path
from typing import Any

import numpy as np

from ualm.audio.errors import AudioRejected

# Lossless containers whose header frame count is exact, so a short read means damage.
_EXACT_LENGTH = frozenset({"wav", "rf64", "w64", "flac", "aiff", "caf", "au"})
LOSSLESS_CONTAINERS = _EXACT_LENGTH
"""Containers that hold lossless audio here (PCM or FLAC): a better copy than a lossy one."""
# Containers with reliable timestamps, where PyAV may seek instead of decoding from 0.
_AV_SEEKABLE = frozenset({"mp4", "webm", "asf"})
# Seek this far before `start`: lossy decoders need a few frames to settle (MDCT overlap).
_AV_PREROLL_SECONDS = 0.25


@dataclass(frozen=True)
class AudioInfo:
    """What the header says about a file."""

    sample_rate: int
    channels: int
    seconds: float | None
    container: str
    backend: str


class SoundfileSource:
    """libsndfile reader; ``position`` is the native frame reached, for error details."""

    def __init__(self, path: Path, container: str) -> None:
        import soundfile as sf

        self._file = sf.SoundFile(str(path))
        f = self._file
        seconds = f.frames / f.samplerate if f.frames > 0 and f.samplerate > 0 else None
        self.info = AudioInfo(f.samplerate, f.channels, seconds, container, "soundfile")
        self.position = 0

    def close(self) -> None:
        self._file.close()

    def blocks(self, start: int, stop: int | None, block: int) -> Iterator[np.ndarray]:
        f = self._file
        stop = f.frames if stop is None else min(stop, f.frames)
        if start >= stop:
            return
        if start:
            f.seek(start)
        self.position = start
        while self.position < stop:
            try:
                data = f.read(min(block, stop - self.position), dtype="float32", always_2d=True)
            except Exception:
                self.position = max(self.position, f.tell())  # where libsndfile gave up
                raise
            if not len(data):
                if self.info.container in _EXACT_LENGTH:
                    raise RuntimeError(
                        f"data ends before the {f.frames} frames the header declares"
                    )
                return
            self.position += len(data)
            yield data


class AvSource:
    """FFmpeg reader; converts sample format only, so resampling stays on the shared path."""

    def __init__(self, path: Path, container: str | None) -> None:
        import av

        self._path = path
        self._open()
        cc = self._stream.codec_context
        tb = self._stream.time_base
        seconds = None
        if self._stream.duration is not None and tb:
            seconds = float(self._stream.duration * tb)
        elif self._container.duration is not None:
            seconds = self._container.duration / av.time_base
        name = container or self._container.format.name.split(",")[0]
        self.info = AudioInfo(cc.sample_rate, cc.channels, seconds, name, "av")
        self.position = 0

    def _open(self) -> None:
        import av

        self._container = av.open(str(self._path))
        if not self._container.streams.audio:
            self._container.close()
            raise AudioRejected("decode/no_audio_stream", f"{self._path}: no audio stream")
        self._stream = self._container.streams.audio[0]

    def close(self) -> None:
        self._container.close()

    def _frames(self, start: int, seek: bool = True) -> Iterator[tuple[int, np.ndarray]]:
        """Yields (native frame position, (n, channels) float32), starting at or before start."""
        import av

        rate, stream = self.info.sample_rate, self._stream
        origin = stream.start_time or 0
        at = start / rate - _AV_PREROLL_SECONDS
        seek = seek and at > 0 and self.info.container in _AV_SEEKABLE
        if seek:
            try:
                self._container.seek(origin + int(at / stream.time_base), stream=stream)
            except av.FFmpegError:  # unseekable after all: decode from the top instead
                yield from self._restart(start)
                return
        resampler = av.AudioResampler(format="fltp", layout=stream.codec_context.layout, rate=rate)
        pos: int | None = None if seek else 0
        for frame in chain(self._container.decode(stream), [None]):
            if pos is None:  # first frame after a seek: its pts says where we landed
                pts = None if frame is None else frame.pts
                pos = None if pts is None else round((pts - origin) * stream.time_base * rate)
                if pos is None or pos > start:  # landed after start: decode from the top
                    yield from self._restart(start)
                    return
            for out in resampler.resample(frame):
                data = _planar_float(out)
                yield pos, data
                pos += len(data)

    def _restart(self, start: int) -> Iterator[tuple[int, np.ndarray]]:
        self._container.close()
        self._open()
        yield from self._frames(start, seek=False)

    def blocks(self, start: int, stop: int | None, block: int) -> Iterator[np.ndarray]:
        duration = self._stream.duration
        if self.info.container == "mp4" and duration is not None:
            # mp4 edit lists give the exact length; the decoder would add AAC end padding.
            exact = round(duration * self._stream.time_base * self.info.sample_rate)
            stop = exact if stop is None else min(stop, exact)
        pending: list[np.ndarray] = []
        buffered = 0
        for pos, data in self._frames(start):
            self.position = pos + len(data)
            lo = max(start - pos, 0)
            hi = len(data) if stop is None else min(len(data), stop - pos)
            if hi > lo:
                pending.append(data[lo:hi])
                buffered += hi - lo
            if buffered >= block:
                yield np.concatenate(pending)
                pending, buffered = [], 0
            if stop is not None and self.position >= stop:
                break
        if pending:
            yield np.concatenate(pending)


def _planar_float(frame: Any) -> np.ndarray:
    """A planar float32 frame as (samples, channels): `to_ndarray().T` without its `vstack`, a
    third of the per-frame cost for codecs with short frames (MP3, AAC, Opus)."""
    planes = [np.frombuffer(plane, dtype=np.float32, count=frame.samples)
              for plane in frame.planes]
    return planes[0][:, None] if len(planes) == 1 else np.stack(planes, axis=1)
