"""X-codec, DAC and Mimi behind the codec interface, through transformers' model classes.

Encoding pads each clip with zeros to a whole bucket (`Kind.bucket_hops` frames), groups clips
of one padded length, runs `batch_size` of them per forward pass, and trims each clip's codes
to ceil(len / hop) frames. Every clip thus sees the same input whether it is encoded alone or
beside others, so its codes do not depend on the rest of the call (a test checks it).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from ualm.errors import UalmError
from ualm.tokenize.codecs.base import AudioCodec
from ualm.tokenize.codecs.codec import _as_clip
from ualm.tokenize.codecs.info import CodecInfo
from ualm.tokenize.codecs.kinds import Kind

CPU_BATCH = 8  # clips per forward pass on CPU; the small models gain little past this
CUDA_BATCH = 64  # a start, halved on out-of-memory


def hf_info(kind: Kind, config: Any, codebooks: int, checkpoint_sha256: str,
            weights_sha256: str, random_weights: bool) -> CodecInfo:
    """The identity of a transformers codec; its bandwidth is what `codebooks` codebooks take."""
    rate = kind.sample_rate(config)
    frame_rate = rate / kind.hop(config)
    size = kind.codebook_size(config)
    bandwidth = round(codebooks * math.log2(size) * frame_rate / 1000, 6)
    return CodecInfo(f"{kind.name}_{rate // 1000}khz", "transformers", bandwidth, rate,
                     frame_rate, codebooks, size, checkpoint_sha256, random_weights,
                     weights_sha256)


class HFCodec(AudioCodec):
    """A transformers codec model (XcodecModel, DacModel, MimiModel) at one codebook count."""

    backend = "transformers"

    def __init__(self, kind: Kind, model: Any, info: CodecInfo, device: torch.device,
                 batch_size: int | None) -> None:
        self.kind, self.info, self.device = kind, info, device
        self._model = model.to(device).eval()
        self.hop = kind.hop(model.config)
        self._adaptive = batch_size is None
        self.batch_size = batch_size or (CUDA_BATCH if device.type == "cuda" else CPU_BATCH)
        self._lock = threading.Lock()  # one call at a time: the batch size may shrink

    def padded_length(self, samples: int) -> int:
        bucket = self.hop * self.kind.bucket_hops
        return math.ceil(samples / bucket) * bucket

    def encode(self, clips: Sequence[np.ndarray]) -> list[np.ndarray]:
        arrays = [_as_clip(clip, i) for i, clip in enumerate(clips)]
        out = [np.zeros((self.info.codebooks, 0), np.int16) for _ in arrays]
        groups: dict[int, list[int]] = {}
        for i, array in enumerate(arrays):
            if len(array):
                groups.setdefault(self.padded_length(len(array)), []).append(i)
        with self._lock:
            for length, members in sorted(groups.items()):
                self._encode_group(arrays, members, length, out)
        return out

    def _encode_group(self, arrays: list[np.ndarray], members: list[int], length: int,
                      out: list[np.ndarray]) -> None:
        start = 0
        while start < len(members):
            part = members[start : start + self.batch_size]
            batch = np.zeros((len(part), 1, length), np.float32)
            for row, i in enumerate(part):
                batch[row, 0, : len(arrays[i])] = arrays[i]
            try:
                codes = self._encode_batch(torch.from_numpy(batch))
            except (torch.OutOfMemoryError, RuntimeError) as exc:
                self._shrink(exc, smallest=1)
                continue
            for row, i in enumerate(part):
                frames = math.ceil(len(arrays[i]) / self.hop)
                out[i] = codes[row, :, :frames].astype(np.int16)
            start += len(part)

    def _encode_batch(self, batch: torch.Tensor) -> np.ndarray:
        with torch.inference_mode():
            codes = self.kind.encode(self._model, batch.to(self.device), self.info.codebooks)
        return codes.cpu().numpy()

    def decode(self, codes: np.ndarray) -> np.ndarray:
        codes = np.asarray(codes)
        if (codes.ndim != 2 or not 1 <= codes.shape[0] <= self.info.codebooks
                or codes.dtype.kind not in "iu"):
            raise UalmError(f"codes of shape {codes.shape} and type {codes.dtype} cannot be "
                            f"decoded by {self.info.codec_id}",
                            fix="pass integer codes [codebooks, frames] from encode()")
        if codes.size and (codes.min() < 0 or codes.max() >= self.info.codebook_size):
            raise UalmError(f"codes outside 0..{self.info.codebook_size - 1} cannot be decoded",
                            fix=f"pass codes made by {self.info.codec_id}")
        if codes.shape[1] == 0:
            return np.zeros(0, np.float32)
        tensor = torch.from_numpy(codes.astype(np.int64)).to(self.device)
        with torch.inference_mode():
            audio = self.kind.decode(self._model, tensor)
        audio = audio.float().cpu().numpy()[: codes.shape[1] * self.hop]
        # DAC's decoder returns a few samples short of whole frames: pad, so lengths agree
        return np.pad(audio, (0, codes.shape[1] * self.hop - len(audio)))

    def encode_reference(self, clip: np.ndarray) -> np.ndarray:
        tensor = torch.from_numpy(_as_clip(clip, 0)).to(self.device)
        with torch.inference_mode():
            codes = self.kind.encode(self._model, tensor[None, None], self.info.codebooks)
        return codes[0].cpu().numpy().astype(np.int16)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return dict(self._model.state_dict())
