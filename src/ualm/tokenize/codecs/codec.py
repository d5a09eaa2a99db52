"""The codec interface, and its two implementations: the encodec package and transformers'
EncodecModel. Both encode through the shared streaming encoder (built from the same canonical
weights), so the same weights give the same codes; each decodes with its own model."""

from __future__ import annotations

import threading
import warnings
from abc import abstractmethod
from collections.abc import Sequence

import numpy as np
import torch

from ualm.errors import UalmError
from ualm.tokenize.codecs import keymap
from ualm.tokenize.codecs._encodec_import import new_encodec_model
from ualm.tokenize.codecs.base import AudioCodec
from ualm.tokenize.codecs.engine import HOP, StreamingEncoder, encode_streams
from ualm.tokenize.codecs.info import CODEBOOK_SIZE, SAMPLE_RATE, CodecInfo

CPU_ROWS = 32
"""Clips encoded side by side on CPU: on 2 cores 32 rows ran 3-5% faster per clip than 8-16
(buffers: about 460 MiB). A call with fewer clips runs fewer rows (at least 2), and rows are
dropped as clips end: on CPU the codes do not depend on the row count (tested)."""
CUDA_ROWS = 64  # a start, halved on out-of-memory; fixed per codec, so shapes never vary


class Codec(AudioCodec):
    """EnCodec 24 kHz at one bandwidth: mono float32 audio at 24 kHz <-> int16 codes."""

    backend = ""

    def __init__(self, info: CodecInfo, state: dict[str, torch.Tensor], device: torch.device,
                 batch_size: int | None) -> None:
        self.info = info
        self.device = device
        self._engine = StreamingEncoder(state, info.codebooks, device)
        self._adaptive = batch_size is None
        default = CUDA_ROWS if device.type == "cuda" else CPU_ROWS
        # At least 2 rows: oneDNN's LSTM rounds a batch of one differently from larger ones.
        self.batch_size = max(2, batch_size or default)
        self._lock = threading.Lock()  # the streaming encoder's buffers serve one call at a time

    def encode(self, clips: Sequence[np.ndarray]) -> list[np.ndarray]:
        """One int16 array [codebooks, ceil(len / 320)] per clip.

        Clips run `batch_size` at a time through fixed-shape 0.4 s steps, so a clip's codes do
        not depend on the other clips, and a long clip takes no more memory than a short one.
        """
        arrays = [_as_clip(clip, i) for i, clip in enumerate(clips)]
        with self._lock:
            return self._encode_adapting(arrays)

    def _encode_adapting(self, arrays: list[np.ndarray]) -> list[np.ndarray]:
        """Encodes; with an adaptive batch size, halves it on out-of-memory and retries."""
        while True:
            try:
                rows, cpu = self.batch_size, self.device.type == "cpu"
                if cpu:  # fewer rows for fewer clips: on CPU the row count changes no code
                    rows = max(2, min(rows, sum(1 for a in arrays if len(a))))
                return encode_streams(self._engine, arrays, rows, self.device, shrink=cpu)
            except (torch.OutOfMemoryError, RuntimeError) as exc:
                self._shrink(exc, smallest=2)

    def decode(self, codes: np.ndarray) -> np.ndarray:
        """int16 codes [codebooks, frames] -> mono float32 audio at 24 kHz, frames * 320 samples
        (the original length rounded up to a whole frame)."""
        codes = np.asarray(codes)
        if codes.ndim != 2 or not 1 <= codes.shape[0] <= 32 or codes.dtype.kind not in "iu":
            raise UalmError(f"codes of shape {codes.shape} and type {codes.dtype} cannot be "
                            "decoded", fix="pass integer codes [codebooks, frames] from encode()")
        if codes.size and (codes.min() < 0 or codes.max() >= CODEBOOK_SIZE):
            raise UalmError("codes outside 0..1023 cannot be decoded",
                            fix="pass codes made by an EnCodec 24 kHz codec")
        if codes.shape[1] == 0:
            return np.zeros(0, np.float32)
        tensor = torch.from_numpy(codes.astype(np.int64)).to(self.device)
        with torch.inference_mode():
            audio = self._decode(tensor)
        return audio.float().cpu().numpy()[: codes.shape[1] * HOP]

    def encode_reference(self, clip: np.ndarray) -> np.ndarray:
        """The backend's own one-pass, one-clip encoder (slow; for checks against `encode`)."""
        tensor = torch.from_numpy(_as_clip(clip, 0)).to(self.device)
        with torch.inference_mode():
            codes = self._encode_reference(tensor[None, None])
        return codes.cpu().numpy().astype(np.int16)

    @abstractmethod
    def state_dict(self) -> dict[str, torch.Tensor]:
        """The weights, under the encodec package's (canonical) names."""

    @abstractmethod
    def _decode(self, codes: torch.Tensor) -> torch.Tensor:
        """[codebooks, frames] int64 -> [frames * 320] float audio."""

    @abstractmethod
    def _encode_reference(self, audio: torch.Tensor) -> torch.Tensor:
        """[1, 1, samples] -> [codebooks, frames]."""


class EncodecPackageCodec(Codec):
    """Weights in the encodec package's model (a .th checkpoint, or the random codec)."""

    backend = "encodec"

    def __init__(self, info: CodecInfo, state: dict[str, torch.Tensor], device: torch.device,
                 batch_size: int | None) -> None:
        super().__init__(info, state, device, batch_size)
        model = new_encodec_model()
        model.load_state_dict(state)
        model.set_target_bandwidth(info.bandwidth)
        self._model = model.to(device).eval()

    def state_dict(self) -> dict[str, torch.Tensor]:
        return dict(self._model.state_dict())

    def _decode(self, codes: torch.Tensor) -> torch.Tensor:
        return self._model.decode([(codes[None], None)])[0, 0]

    def _encode_reference(self, audio: torch.Tensor) -> torch.Tensor:
        return self._model.encode(audio)[0][0][0]


class TransformersCodec(Codec):
    """Weights in transformers' EncodecModel (a Hugging Face folder)."""

    backend = "transformers"

    def __init__(self, info: CodecInfo, state: dict[str, torch.Tensor], device: torch.device,
                 batch_size: int | None) -> None:
        super().__init__(info, state, device, batch_size)
        from transformers import EncodecConfig, EncodecModel

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = EncodecModel(EncodecConfig())  # the loader checked the folder's config is this
        model.load_state_dict(keymap.to_transformers(state), strict=True)
        self._model = model.to(device).eval()

    def state_dict(self) -> dict[str, torch.Tensor]:
        return keymap.from_transformers(self._model.state_dict())

    def _decode(self, codes: torch.Tensor) -> torch.Tensor:
        return self._model.decode(codes[None, None], [None], return_dict=False)[0][0, 0]

    def _encode_reference(self, audio: torch.Tensor) -> torch.Tensor:
        out = self._model.encode(audio, bandwidth=self.info.bandwidth, return_dict=False)
        return out[0][0, 0]


def _as_clip(clip: np.ndarray, index: int) -> np.ndarray:
    array = np.asarray(clip)
    if array.ndim != 1 or array.dtype.kind != "f":
        raise UalmError(f"clip {index} has shape {array.shape} and type {array.dtype}",
                        fix=f"pass mono float32 arrays of shape (samples,) at {SAMPLE_RATE} Hz")
    array = np.ascontiguousarray(array, dtype=np.float32)
    if not np.isfinite(array).all():
        raise UalmError(f"clip {index} has NaN or infinite samples",
                        fix="drop or repair the clip before tokenizing")
    return array

