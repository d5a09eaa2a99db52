"""Open any audio file and stream it as float32 mono at a target rate, in bounded memory.

The container is sniffed from magic bytes, so the backend never depends on the file name:
libsndfile (soundfile) reads what it knows, PyAV (FFmpeg) the rest and anything libsndfile
refuses. Both backends hand native-rate ``(frames, channels)`` float32 blocks to one shared
downmix + soxr path, so a file decodes the same whichever backend opened it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import soxr

from ualm.audio.errors import AudioRejected
from ualm.audio.sniff import read_head, sniff
from ualm.audio.sources import AudioInfo, AvSource, SoundfileSource

__all__ = ["MAX_CHANNELS", "MAX_SAMPLE_RATE", "MIN_SAMPLE_RATE", "AudioInfo", "iter_decoded",
           "probe", "sniff"]

MAX_SAMPLE_RATE = 768_000
MIN_SAMPLE_RATE = 1000
"""No real recording is sampled slower; a crafted header's 1 Hz would have every sample read
resampled into 24,000 (the fuzz corpus's slowest input: a 0.4 MB file decoding for 40 s)."""
MAX_CHANNELS = 64
# Containers libsndfile reads; PyAV gets everything else (and these when libsndfile refuses).
# Not mp3: libsndfile 1.2.2 garbles the first ~0.1-0.3 s after every sf_read boundary.
# Not opus: FFmpeg decodes it 2.8x faster than libsndfile (measured on the benchmark's clips).
_SOUNDFILE = frozenset({"wav", "rf64", "w64", "flac", "ogg", "aiff", "caf", "au"})


_Source = SoundfileSource | AvSource


def _open_av(path: Path, container: str | None, failure: str | None) -> AvSource:
    """Opens with PyAV; any failure becomes ``failure`` (or the source's own reason)."""
    try:
        return AvSource(path, container)
    except AudioRejected as exc:
        raise AudioRejected(failure or exc.reason, exc.detail) from exc
    except Exception as exc:  # FFmpeg errors come in many classes; all mean "cannot open"
        raise AudioRejected(failure or "decode/bad_header", f"{path}: {exc}") from exc


def _open_source(path: str | os.PathLike[str]) -> _Source:
    path = Path(path)
    container = read_head(path)
    if container is None:
        src: _Source = _open_av(path, None, "decode/not_audio")
    elif container in _SOUNDFILE:
        try:
            src = SoundfileSource(path, container)
        except Exception as exc:  # libsndfile refused: FFmpeg may still read it
            try:
                src = AvSource(path, container)
            except Exception:
                raise AudioRejected("decode/bad_header", f"{container}: {exc}") from exc
    else:
        src = _open_av(path, container, None)
    info = src.info
    if not (MIN_SAMPLE_RATE <= info.sample_rate <= MAX_SAMPLE_RATE
            and 0 < info.channels <= MAX_CHANNELS):
        src.close()
        detail = f"{info.container}: {info.sample_rate} Hz, {info.channels} channels"
        raise AudioRejected("decode/bad_header", detail)
    return src


def probe(path: str | os.PathLike[str]) -> AudioInfo:
    """Reads only the header. Raises AudioRejected."""
    src = _open_source(path)
    src.close()
    return src.info


SEQUENTIAL_MEAN_CHANNELS = 7
"""Up to this many channels NumPy sums a row one channel after another (from 8 it sums in
pairs), so adding the columns in order gives its mean bit for bit."""


def _downmix(block: np.ndarray) -> np.ndarray:
    channels = block.shape[1]
    if channels == 1:
        return np.ascontiguousarray(block[:, 0], dtype=np.float32)
    if channels > SEQUENTIAL_MEAN_CHANNELS or block.dtype != np.float32:
        return block.mean(axis=1, dtype=np.float32)
    # NumPy's mean along a short axis is ~30x slower than adding the columns: for up to 7
    # float32 channels it also adds them one after another, so the samples are the same bits
    mono = block[:, 0].copy()
    for channel in range(1, channels):
        mono += block[:, channel]
    mono /= np.float32(channels)
    return mono


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
        except (AudioRejected, MemoryError):  # a memory limit is not damage (audio.isolation)
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
