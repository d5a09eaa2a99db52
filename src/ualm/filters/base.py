"""The filter contract: a pure check of one sample that returns keep (None) or a reason.

Counting, writing rejects and accounting live once, in the pipeline; a check only decides.
Reasons are namespaced (`quality/silent`, `clap/below_threshold`) so funnels group by stage.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np


@dataclass(frozen=True)
class Rejection:
    """Why a sample was dropped: a namespaced reason and a human-readable detail."""

    reason: str
    detail: str = ""

    @property
    def stage(self) -> str:
        return self.reason.split("/", 1)[0]


class WindowCheck(Protocol):
    """A check of one window of mono float32 audio."""

    def __call__(self, samples: np.ndarray, sample_rate: int) -> Rejection | None: ...


def first_rejection(checks: Sequence[WindowCheck], samples: np.ndarray,
                    sample_rate: int) -> Rejection | None:
    """Runs checks in order and returns the first reason, so each sample has exactly one."""
    for check in checks:
        rejection = check(samples, sample_rate)
        if rejection is not None:
            return rejection
    return None
