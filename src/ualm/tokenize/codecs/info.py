"""What identifies a loaded codec: name, bandwidth, and a checksum of its weights."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from ualm.errors import UalmError

NAME = "encodec_24khz"
SAMPLE_RATE = 24_000
FRAME_RATE = 75.0
HOP = 320  # samples per frame
CODEBOOK_SIZE = 1024
BANDWIDTHS = (1.5, 3.0, 6.0, 12.0, 24.0)
"""kbps; each codebook carries log2(1024) bits x 75 frames/s = 0.75 kbps."""


def codebooks_for(bandwidth: float) -> int:
    """Codebooks used at `bandwidth` kbps (2, 4, 8, 16 or 32)."""
    return int(bandwidth * 1000 // (FRAME_RATE * math.log2(CODEBOOK_SIZE)))


def check_bandwidth(bandwidth: object) -> float:
    """The bandwidth as a float, or a UalmError naming the supported ones."""
    try:
        value = float(bandwidth)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        value = math.nan
    if value not in BANDWIDTHS:
        supported = ", ".join(f"{b:g}" for b in BANDWIDTHS)
        raise UalmError(f"unsupported bandwidth {bandwidth!r} kbps for {NAME}",
                        fix=f"use one of: {supported}")
    return value


@dataclass(frozen=True)
class CodecInfo:
    """A loaded codec's identity. Two loads of the same weights at the same bandwidth share
    `codec_id`, whichever backend (and whichever file format) they came from."""

    name: str
    backend: str  # "encodec" (the encodec package) or "transformers" (HF EncodecModel)
    bandwidth: float  # kbps
    sample_rate: int
    frame_rate: float
    codebooks: int
    codebook_size: int
    checkpoint_sha256: str  # the checkpoint file(s) as given; for "random", = weights_sha256
    random_weights: bool
    weights_sha256: str = ""  # the weights themselves, independent of file format and backend

    @property
    def codec_id(self) -> str:
        """Stable and filesystem-safe, e.g. "encodec_24khz-6kbps-1a2b3c4d5e6f"."""
        return f"{self.name}-{self.bandwidth:g}kbps-{self.weights_sha256[:12]}"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "codec_id": self.codec_id}


def make_info(backend: str, bandwidth: float, checkpoint_sha256: str, weights_sha256: str,
              random_weights: bool = False) -> CodecInfo:
    return CodecInfo(NAME, backend, bandwidth, SAMPLE_RATE, FRAME_RATE, codebooks_for(bandwidth),
                     CODEBOOK_SIZE, checkpoint_sha256, random_weights, weights_sha256)
