"""EBU R128 integrated loudness (ITU-R BS.1770, via `pyloudnorm`) and loudness normalisation.

Pure functions of one window of mono float32 audio.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

MIN_SECONDS = 0.4
"""BS.1770 gates over 400 ms blocks: shorter audio has no integrated loudness."""


@lru_cache(maxsize=4)
def _meter(sample_rate: int):  # -> pyloudnorm.Meter (untyped)
    import pyloudnorm

    return pyloudnorm.Meter(sample_rate)


def integrated_loudness(samples: np.ndarray, sample_rate: int) -> float | None:
    """LUFS, or None where it is undefined (under 400 ms, or all blocks gated away: silence)."""
    if len(samples) < MIN_SECONDS * sample_rate:
        return None
    import warnings

    with warnings.catch_warnings():  # pyloudnorm warns on possible clipping; we check that
        warnings.simplefilter("ignore")
        value = float(_meter(sample_rate).integrated_loudness(samples.astype(np.float64)))
    return round(value, 3) if math.isfinite(value) else None


def normalisation_gain(loudness: float, target_lufs: float, peak: float, max_peak: float
                       ) -> float:
    """Linear gain that brings `loudness` to `target_lufs`, reduced so the peak stays under
    `max_peak` (a window with strong transients ends quieter than the target, never clipped)."""
    gain = 10.0 ** ((target_lufs - loudness) / 20.0)
    if peak > 0 and peak * gain > max_peak:
        gain = max_peak / peak
    return gain
