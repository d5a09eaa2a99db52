"""A token cache keyed by (decoded-audio hash, codec id): a rerun, or another corpus that shares
clips, finds codes already computed. One `.npy` per clip under a folder per codec, written
atomically, so concurrent workers can share it without locks.

>>> import tempfile, numpy as np
>>> cache = TokenCache(tempfile.mkdtemp(), "encodec_24khz-6kbps-abc")
>>> cache.get("00ff") is None
True
>>> cache.put("00ff", np.zeros((8, 75), dtype=np.int16)); cache.get("00ff").shape
(8, 75)
"""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

import numpy as np

from ualm.manifests.layout import atomic_write_bytes


def default_cache_dir() -> Path:
    return Path(os.environ.get("UALM_CACHE") or Path.home() / ".cache" / "ualm")


def audio_hash(pcm16: np.ndarray, sample_rate: int) -> str:
    """Identity of decoded audio: its 16-bit samples and rate (not the container's bytes)."""
    digest = hashlib.sha256(f"pcm16/{sample_rate}/".encode())
    digest.update(np.ascontiguousarray(pcm16, dtype="<i2").tobytes())
    return digest.hexdigest()


def npy_bytes(codes: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(codes, dtype=np.int16), allow_pickle=False)
    return buffer.getvalue()


class TokenCache:
    def __init__(self, root: str | Path | None, codec_id: str) -> None:
        self.folder = Path(root or default_cache_dir()) / "tokens" / codec_id

    def _path(self, key: str) -> Path:
        return self.folder / key[:2] / f"{key}.npy"

    def get(self, key: str) -> np.ndarray | None:
        try:
            return np.load(self._path(key), allow_pickle=False)
        except (OSError, ValueError):  # absent, or a damaged entry: recompute it
            return None

    def put(self, key: str, codes: np.ndarray) -> None:
        atomic_write_bytes(self._path(key), npy_bytes(codes))
