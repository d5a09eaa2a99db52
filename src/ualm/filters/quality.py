"""Signal-level quality checks: non-finite samples, digital silence, heavy clipping.

Each is a small callable built from `QualityConfig`; all are pure functions of one window.

>>> import numpy as np
>>> SilenceCheck(-60.0)(np.zeros(24000, dtype=np.float32), 24000).reason
'quality/silent'
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ualm.config import QualityConfig
from ualm.filters.base import Rejection, WindowCheck

_TINY = 1e-12


def rms_dbfs(samples: np.ndarray) -> float:
    """RMS level in dB relative to full scale (a full-scale sine is about -3 dBFS)."""
    if samples.size == 0:
        return float("-inf")
    rms = float(np.sqrt(np.mean(np.square(samples, dtype=np.float64))))
    return 20.0 * float(np.log10(max(rms, _TINY)))


@dataclass(frozen=True)
class FiniteCheck:
    def __call__(self, samples: np.ndarray, sample_rate: int) -> Rejection | None:
        bad = int(samples.size - np.count_nonzero(np.isfinite(samples)))
        if bad:
            return Rejection("quality/non_finite", f"{bad} NaN or infinite samples")
        return None


@dataclass(frozen=True)
class SilenceCheck:
    threshold_dbfs: float

    def __call__(self, samples: np.ndarray, sample_rate: int) -> Rejection | None:
        level = rms_dbfs(samples)
        if level < self.threshold_dbfs:
            return Rejection("quality/silent", f"rms {level:.1f} dBFS < {self.threshold_dbfs:g}")
        return None


@dataclass(frozen=True)
class ClippingCheck:
    level: float
    max_fraction: float

    def __call__(self, samples: np.ndarray, sample_rate: int) -> Rejection | None:
        if samples.size == 0:
            return None
        fraction = float(np.count_nonzero(np.abs(samples) >= self.level)) / samples.size
        if fraction > self.max_fraction:
            return Rejection(
                "quality/clipped", f"{fraction:.1%} of samples at full scale > {self.max_fraction:.1%}"
            )
        return None


def quality_checks(config: QualityConfig) -> list[WindowCheck]:
    """The default chain, cheapest and most fundamental first."""
    return [
        FiniteCheck(),
        SilenceCheck(config.silence_dbfs),
        ClippingCheck(config.clip_level, config.max_clipped_fraction),
    ]
