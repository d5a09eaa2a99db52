"""In-memory FLAC for storing decoded clips compactly (shards, caches)."""

from __future__ import annotations

import io

import numpy as np
import soundfile as sf

from ualm.audio.errors import AudioRejected


def to_pcm16(samples: np.ndarray) -> np.ndarray:
    """Float in [-1, 1] -> int16 with one explicit rule (x * 32768, rounded, clipped).

    libsndfile's own float -> int conversion differs between WAV and FLAC, so everything that
    must agree bit for bit (FLAC shards, lossless duplicates) quantises here first.
    """
    # float32 is exact here: scaling by a power of two, then rounding to an integer below 2**24.
    x = np.multiply(samples, np.float32(32768.0), dtype=np.float32)
    if not np.isfinite(x).all():
        raise ValueError("cannot quantise NaN or inf samples to PCM")
    np.rint(x, out=x)
    np.clip(x, -32768, 32767, out=x)
    return x.astype(np.int16)


def encode_flac(samples: np.ndarray, sample_rate: int) -> bytes:
    """Mono float32 in [-1, 1] -> FLAC bytes, PCM_16; same input gives the same bytes."""
    if samples.ndim != 1:
        raise ValueError(f"expected mono samples of shape (n,), got {samples.shape}")
    buf = io.BytesIO()
    sf.write(buf, to_pcm16(samples), sample_rate, format="FLAC", subtype="PCM_16")
    return buf.getvalue()


def decode_flac(data: bytes) -> tuple[np.ndarray, int]:
    """FLAC bytes -> (float32 mono samples, sample_rate); channels are averaged."""
    try:
        samples, rate = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    except Exception as exc:  # libsndfile raises several classes for damaged data
        raise AudioRejected("decode/corrupt", f"flac bytes: {exc}") from exc
    if samples.shape[1] == 1:
        return np.ascontiguousarray(samples[:, 0]), int(rate)
    return samples.mean(axis=1, dtype=np.float32), int(rate)
