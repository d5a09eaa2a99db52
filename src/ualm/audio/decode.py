"""Open any audio file and stream it as float32 mono at a target rate, in bounded memory.

The container is sniffed from magic bytes, so the backend never depends on the file name:
libsndfile (soundfile) reads what it knows, PyAV (FFmpeg) the rest and anything libsndfile
refuses. Both backends hand native-rate ``(frames, channels)`` float32 blocks to one shared
downmix + soxr path, so a file decodes the same whichever backend opened it.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import chain
from pathlib import Path

import numpy as np
import soxr

from ualm.audio.errors import AudioRejected

MAX_SAMPLE_RATE = 768_000
MAX_CHANNELS = 64
_HEAD_BYTES = 64
# Containers libsndfile reads; PyAV gets everything else (and these when libsndfile refuses).
# Not mp3: libsndfile 1.2.2 garbles the first ~0.1-0.3 s after every sf_read boundary.
_SOUNDFILE = frozenset({"wav", "rf64", "w64", "flac", "ogg", "aiff", "caf", "au"})
# Lossless containers whose header frame count is exact, so a short read means damage.
_EXACT_LENGTH = frozenset({"wav", "rf64", "w64", "flac", "aiff", "caf", "au"})
# Containers with reliable timestamps, where PyAV may seek instead of decoding from 0.
_AV_SEEKABLE = frozenset({"mp4", "webm", "asf"})
# Seek this far before `start`: lossy decoders need a few frames to settle (MDCT overlap).
_AV_PREROLL_SECONDS = 0.25
_MAGIC: tuple[tuple[int, bytes, str], ...] = (
    (0, b"fLaC", "flac"),
    (0, b"OggS", "ogg"),
    (0, b"RF64", "rf64"),
    (0, b"BW64", "bw64"),
    (0, b"riff.\x91\xcf\x11", "w64"),
    (0, b"caff", "caf"),
    (0, b".snd", "au"),
    (4, b"ftyp", "mp4"),
    (0, b"\x1aE\xdf\xa3", "webm"),
    (0, b"0&\xb2u\x8ef\xcf\x11", "asf"),
    (0, b"#!AMR", "amr"),
    (0, b"MAC ", "ape"),
    (0, b"wvpk", "wavpack"),
    (0, b"MPCK", "mpc"),
    (0, b"TTA1", "tta"),
)


@dataclass(frozen=True)
class AudioInfo:
    """What the header says about a file."""

    sample_rate: int
    channels: int
    seconds: float | None
    container: str
    backend: str


def sniff(head: bytes) -> str | None:
    """Names the container from a file's first bytes, or None when nothing matches."""
    for offset, magic, name in _MAGIC:
        if head[offset : offset + len(magic)] == magic:
            return name
    if head[:4] == b"RIFF":
        return {b"WAVE": "wav", b"AVI ": "avi"}.get(head[8:12])
    if head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC"):
        return "aiff"
    if len(head) < 4 or head[0] != 0xFF or head[1] & 0xE0 != 0xE0:
        return None
    if (head[1] >> 1) & 3 == 0:  # layer 0 is ADTS AAC, not MPEG audio
        return "aac" if head[1] & 0xF0 == 0xF0 else None
    # Reject reserved version / bitrate / rate fields so random bytes rarely pass as mp3.
    if (head[1] >> 3) & 3 == 1 or head[2] >> 4 == 15 or (head[2] >> 2) & 3 == 3:
        return None
    return "mp3"


def _read_head(path: Path) -> str | None:
    """Checks the path, then sniffs the container, looking past a leading ID3v2 tag."""
    try:
        mode = path.stat()
    except FileNotFoundError as exc:
        raise AudioRejected("input/missing_file", str(path)) from exc
    except OSError as exc:  # permission denied on a parent, a loop of links, ...
        raise AudioRejected("input/unreadable", f"{path}: {exc}") from exc
    if not stat.S_ISREG(mode.st_mode):
        raise AudioRejected("input/not_a_file", str(path))
    if mode.st_size == 0:
        raise AudioRejected("decode/empty_file", str(path))
    try:
        with open(path, "rb") as fh:
            head = fh.read(_HEAD_BYTES)
            if head[:3] != b"ID3" or len(head) < 10:
                return sniff(head)
            size = (head[6] << 21) | (head[7] << 14) | (head[8] << 7) | head[9]
            fh.seek(10 + size + (10 if head[5] & 0x10 else 0))
            return sniff(fh.read(_HEAD_BYTES)) or "mp3"
    except OSError as exc:
        raise AudioRejected("input/unreadable", f"{path}: {exc}") from exc


class _SoundfileSource:
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


class _AvSource:
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
                data = out.to_ndarray().T
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


_Source = _SoundfileSource | _AvSource


def _open_av(path: Path, container: str | None, failure: str | None) -> _AvSource:
    """Opens with PyAV; any failure becomes ``failure`` (or the source's own reason)."""
    try:
        return _AvSource(path, container)
    except AudioRejected as exc:
        raise AudioRejected(failure or exc.reason, exc.detail) from exc
    except Exception as exc:  # FFmpeg errors come in many classes; all mean "cannot open"
        raise AudioRejected(failure or "decode/bad_header", f"{path}: {exc}") from exc


def _open_source(path: str | os.PathLike[str]) -> _Source:
    path = Path(path)
    container = _read_head(path)
    if container is None:
        src: _Source = _open_av(path, None, "decode/not_audio")
    elif container in _SOUNDFILE:
        try:
            src = _SoundfileSource(path, container)
        except Exception as exc:  # libsndfile refused: FFmpeg may still read it
            try:
                src = _AvSource(path, container)
            except Exception:
                raise AudioRejected("decode/bad_header", f"{container}: {exc}") from exc
    else:
        src = _open_av(path, container, None)
    info = src.info
    if not (0 < info.sample_rate <= MAX_SAMPLE_RATE and 0 < info.channels <= MAX_CHANNELS):
        src.close()
        detail = f"{info.container}: {info.sample_rate} Hz, {info.channels} channels"
        raise AudioRejected("decode/bad_header", detail)
    return src


def probe(path: str | os.PathLike[str]) -> AudioInfo:
    """Reads only the header. Raises AudioRejected."""
    src = _open_source(path)
    src.close()
    return src.info


def _downmix(block: np.ndarray) -> np.ndarray:
    if block.shape[1] == 1:
        return np.ascontiguousarray(block[:, 0], dtype=np.float32)
    return block.mean(axis=1, dtype=np.float32)


def iter_decoded(
    path: str | os.PathLike[str],
    *,
    target_rate: int,
    start: float = 0.0,
    end: float | None = None,
    block_seconds: float = 5.0,
) -> Iterator[np.ndarray]:
    """Streams [start, end) seconds as float32 mono chunks at ``target_rate``.

    Memory is bounded by ``block_seconds`` whatever the file length. Raises AudioRejected
    before the first chunk when the file cannot be opened, and ``decode/corrupt`` part way
    when decoding fails. NaN / inf samples pass through for the quality checks to judge.
    """
    if target_rate <= 0 or block_seconds <= 0 or start < 0 or (end is not None and end < start):
        raise ValueError(f"bad arguments: {target_rate=} {start=} {end=} {block_seconds=}")
    src = _open_source(path)
    try:
        rate = src.info.sample_rate
        first = round(start * rate)
        stop = None if end is None else round(end * rate)
        block = max(1, round(block_seconds * rate))
        stream = None
        if rate != target_rate:
            stream = soxr.ResampleStream(rate, target_rate, 1, dtype="float32", quality="HQ")
        try:
            for native in src.blocks(first, stop, block):
                mono = _downmix(native)
                out = mono if stream is None else stream.resample_chunk(mono)
                if out.size:
                    yield out
        except AudioRejected:
            raise
        except Exception as exc:  # backend errors of any class mean the data is damaged
            reached = src.position / rate
            raise AudioRejected(
                "decode/corrupt", f"decode error after {reached:.2f} s: {exc}"
            ) from exc
        if stream is not None:
            tail = stream.resample_chunk(np.zeros(0, dtype=np.float32), last=True)
            if tail.size:
                yield tail
    finally:
        src.close()
