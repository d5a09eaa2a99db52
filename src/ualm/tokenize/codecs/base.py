"""What every codec offers the tokenize stage, `ualm listen` and `ualm generate`: its identity,
batched encoding and decoding. EnCodec (`codec.Codec`) and the transformers codecs
(`hf_codec.HFCodec`: X-codec, DAC, Mimi) implement it."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

import numpy as np
import torch

from ualm.errors import UalmError
from ualm.tokenize.codecs.info import CodecInfo


class AudioCodec(ABC):
    """Mono float32 audio at `info.sample_rate` <-> int16 codes [codebooks, frames]."""

    info: CodecInfo
    device: torch.device
    batch_size: int
    _adaptive: bool
    """Whether the batch size was chosen for the user (then halved on out-of-memory)."""

    def _shrink(self, exc: BaseException, smallest: int) -> None:
        """Halves an adaptive batch size on out-of-memory, down to `smallest`; re-raises
        anything else."""
        if not out_of_memory(exc):
            raise exc
        if not self._adaptive or self.batch_size <= smallest:
            raise UalmError(f"out of memory encoding {self.batch_size} clips at a time on "
                            f"{self.device}", fix="pass a smaller batch_size") from None
        self.batch_size //= 2
        if self.device.type == "cuda":
            torch.cuda.empty_cache()

    @abstractmethod
    def encode(self, clips: Sequence[np.ndarray]) -> list[np.ndarray]:
        """One int16 array [codebooks, ceil(len / hop)] per clip; a clip's codes do not depend
        on the other clips of the call."""

    @abstractmethod
    def decode(self, codes: np.ndarray) -> np.ndarray:
        """int16 codes [codebooks, frames] -> mono float32 audio, frames * hop samples."""

    @abstractmethod
    def encode_reference(self, clip: np.ndarray) -> np.ndarray:
        """The model's own one-clip encoder, unpadded (slow; for checks against `encode`)."""

    @abstractmethod
    def state_dict(self) -> dict[str, torch.Tensor]:
        """The weights."""


def out_of_memory(exc: BaseException) -> bool:
    return isinstance(exc, torch.OutOfMemoryError) or "can't allocate memory" in str(exc)
