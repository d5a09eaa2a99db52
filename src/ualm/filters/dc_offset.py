"""DC offset: a window whose mean sits far from zero comes from a broken converter or a bad
edit, and wastes codec capacity on a constant. Reason: `dc_offset/too_high`.

>>> import numpy as np
>>> DcOffsetCheck(0.05)(np.full(2400, 0.2, dtype=np.float32), 24000).reason
'dc_offset/too_high'
>>> DcOffsetCheck(0.05)(np.sin(np.arange(2400, dtype=np.float32)), 24000) is None
True
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ualm.filters.base import Rejection


@dataclass(frozen=True)
class DcOffsetCheck:
    max_offset: float = 0.05
    """Largest absolute mean (full scale 1.0) a window may have."""

    def __call__(self, samples: np.ndarray, sample_rate: int) -> Rejection | None:
        if samples.size == 0:
            return None
        offset = float(np.mean(samples, dtype=np.float64))
        if abs(offset) > self.max_offset:
            return Rejection("dc_offset/too_high", f"mean {offset:+.3f} > ±{self.max_offset:g}")
        return None
