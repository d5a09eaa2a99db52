"""Re-cut a stream of decoded chunks into fixed-length windows, in bounded memory."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np


def iter_windows(
    chunks: Iterable[np.ndarray], window_samples: int | None
) -> Iterator[tuple[int, np.ndarray]]:
    """Yields (index, window) for consecutive windows of exactly ``window_samples``, then the
    final partial window (the tail) if samples remain.

    ``window_samples=None`` yields one window (index 0) with everything, even when empty, so
    every input gets exactly one window. Otherwise memory stays within one window + one chunk:
    chunks are only joined once enough of them are pending to fill a window.
    """
    if window_samples is None:
        parts = [np.asarray(chunk) for chunk in chunks]
        yield 0, np.concatenate(parts) if parts else np.zeros(0, dtype=np.float32)
        return
    if window_samples <= 0:
        raise ValueError(f"window_samples must be positive, got {window_samples}")
    pending: list[np.ndarray] = []
    buffered = 0
    index = 0
    for chunk in chunks:
        chunk = np.asarray(chunk)
        if not chunk.size:
            continue
        pending.append(chunk)
        buffered += len(chunk)
        if buffered < window_samples:
            continue
        joined = np.concatenate(pending) if len(pending) > 1 else pending[0]
        full = len(joined) // window_samples * window_samples
        for at in range(0, full, window_samples):
            yield index, joined[at : at + window_samples]
            index += 1
        rest = joined[full:]
        # Copy the remainder so it does not keep the whole joined block alive.
        pending = [rest.copy()] if len(rest) else []
        buffered = len(rest)
    if buffered:
        yield index, np.concatenate(pending)
