"""A streaming EnCodec 24 kHz encoder that runs many clips side by side in fixed-shape steps.

Each step takes `CHUNK` samples of each of `rows` clips. Causal convolutions carry their left
context and the LSTM its state from step to step, so a clip of any length is encoded in bounded
memory. The arithmetic a clip sees depends on its own samples only: every step of a given
`rows` has the same tensor shapes, and no operation mixes rows. So a clip's codes are the same
whether it is encoded alone or beside any other clips.

`encode_streams` feeds clips through it, refilling a row as soon as its clip ends (continuous
batching: no padding to a batch's longest clip, only to a step's end).

Clip starts and ends follow EnCodec's own padding (reflect on the left, and on the right where a
strided conv needs a full last window), so the codes are the reference model's up to float
rounding: the embeddings agree to about 1e-7, and a code differs only where two codewords are
that close to a tie.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ualm.tokenize.codecs.layers import CausalConv, Row

CHUNK = 9_600
"""Samples per step (0.4 s, 30 frames): a constant, so shapes (and so rounding) never vary.
Short, so a clip's last, part-filled step wastes little; 0.4-1 s steps run equally fast."""
HOP = 320
STRIDES = (2, 4, 5, 8)  # the encoder's downsampling, in order
ENC = "encoder.model"

__all__ = ["CHUNK", "HOP", "Row", "StreamingEncoder", "encode_streams"]


class StreamingEncoder:
    """EnCodec 24 kHz encoder + residual quantizer as a step function over fixed-shape chunks.

    Layout of `encoder.model`: 0 conv; per stage a residual block (1, 4, 7, 10), an ELU and a
    strided conv (3, 6, 9, 12); 13 the LSTM, 14 an ELU, 15 the last conv.
    """

    def __init__(self, state: dict[str, torch.Tensor], n_q: int, device: torch.device) -> None:
        s = {k: v.to(device, torch.float32) for k, v in state.items()}
        self.device, self.n_q = device, n_q
        self.convs = {"0": CausalConv.from_state(s, f"{ENC}.0", 1, 1)}
        rate = 1
        for at, stride in zip((1, 4, 7, 10), STRIDES, strict=True):
            for key, part in (("a", "block.1"), ("b", "block.3"), ("s", "shortcut")):
                self.convs[f"{at}{key}"] = CausalConv.from_state(s, f"{ENC}.{at}.{part}", 1, rate)
            self.convs[str(at + 2)] = CausalConv.from_state(s, f"{ENC}.{at + 2}", stride, rate)
            rate *= stride
        self.convs["15"] = CausalConv.from_state(s, f"{ENC}.15", 1, rate)
        self.lstm = nn.LSTM(512, 512, 2, batch_first=True).to(device).eval()
        prefix = f"{ENC}.13.lstm."
        self.lstm.load_state_dict({k[len(prefix) :]: v for k, v in s.items()
                                   if k.startswith(prefix)})
        self.codebooks = [s[f"quantizer.vq.layers.{i}._codebook.embed"] for i in range(n_q)]
        # |e|^2 as the reference computes it (a sum over a transposed view), bit for bit.
        self.codebook_norms = [e.t().pow(2).sum(0, keepdim=True) for e in self.codebooks]
        self._buffers: dict[str, tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]] = {}
        self._allocated = self._active = 0  # rows the buffers hold; rows in use (a prefix)
        self._lstm_state = (torch.zeros(0), torch.zeros(0))

    def reset(self, rows: int) -> None:
        """Ready for `rows` parallel streams. Buffers are kept between calls with the same rows:
        fresh ones cost a page fault per 4 KiB, and every row's state is rebuilt when its first
        clip starts anyway."""
        if self._allocated != rows:
            self._buffers = {k: c.buffers(rows, CHUNK, self.device, output=not k.endswith("s"))
                             for k, c in self.convs.items()}
            self._allocated = rows
        zeros = torch.zeros(2, rows, 512, device=self.device)
        self._lstm_state = (zeros, zeros.clone())
        self._active = rows

    def compact(self, keep: list[int]) -> None:
        """Goes on with only the rows in `keep`, moved to the front with their state, so that a
        call's last steps run no idle rows. Only valid where the row count does not change the
        arithmetic: oneDNN on CPU, as the tests check."""
        index = torch.tensor(keep, device=self.device)
        for key, (inputs, _, _) in self._buffers.items():
            pad = self.convs[key].pad
            if pad:  # only the left context carries over to the next step
                inputs[: len(keep), -pad:] = inputs[index, -pad:]
        h, c = self._lstm_state
        self._lstm_state = (h[:, index].contiguous(), c[:, index].contiguous())
        self._active = len(keep)

    @torch.inference_mode()
    def step(self, audio: torch.Tensor, rows: list[Row | None], quantize: bool = True
             ) -> torch.Tensor:
        """audio [rows, CHUNK] -> codes [n_q, rows, CHUNK // HOP] (int64) for this step, or with
        quantize=False the encoder's output [128, rows, CHUNK // HOP] (valid until next step)."""
        self._slot("0").copy_(audio.unsqueeze(-1))
        x = self._conv("0", rows)
        for at in (1, 4, 7, 10):
            torch.ops.aten.elu.out(x, out=self._slot(f"{at}a"))
            h = F.elu_(self._conv(f"{at}a", rows))
            y = self.convs[f"{at}b"].run(h, out=self._out(f"{at}b"))
            y = self.convs[f"{at}s"].run(x, into=y)  # the residual sum, in place
            torch.ops.aten.elu.out(y, out=self._slot(str(at + 2)))
            x = self._conv(str(at + 2), rows)
        y = self._lstm(x, rows)
        F.elu_(torch.add(y, x, out=self._slot("15")))  # LSTM skip connection, then ELU
        emb = self._conv("15", rows)
        return self._quantize(emb) if quantize else emb.permute(2, 0, 1)

    def _slot(self, key: str) -> torch.Tensor:
        """Where conv `key`'s input goes this step, behind its left context."""
        conv, inputs = self.convs[key], self._buffers[key][0][: self._active]
        conv.shift_context(inputs)
        return inputs[:, conv.pad :]

    def _out(self, key: str) -> torch.Tensor | None:
        out = self._buffers[key][1]
        return None if out is None else out[: self._active]

    def _conv(self, key: str, rows: list[Row | None]) -> torch.Tensor:
        """Conv `key` on its filled input buffer: [rows, time / stride, out]."""
        conv, (inputs, _, scratch) = self.convs[key], self._buffers[key]
        inputs, out = inputs[: self._active], self._out(key)
        conv.pad_clip_edges(inputs, rows)
        if scratch is not None and out is not None:
            scratch = scratch[: out.shape[0] * out.shape[1]]
        return conv.run(inputs, out=out, scratch=scratch)

    def _lstm(self, x: torch.Tensor, rows: list[Row | None]) -> torch.Tensor:
        h, c = self._lstm_state
        for r, row in enumerate(rows):
            if row is not None and row.offset == 0:
                h[:, r] = 0
                c[:, r] = 0
        y, self._lstm_state = self.lstm(x, (h, c))
        return y

    def _quantize(self, emb: torch.Tensor) -> torch.Tensor:
        """Residual VQ, consuming `emb`. The distance is the reference's expression
        -(|x|^2 - 2 x.e + |e|^2) regrouped without changing a bit (scaling by -2 is exact), so
        near-ties break as in the encodec package and transformers."""
        rows, frames, dim = emb.shape
        residual = emb.reshape(-1, dim)
        codes = []
        for embed, norms in zip(self.codebooks, self.codebook_norms, strict=True):
            square = residual.pow(2).sum(1, keepdim=True)
            index = torch.addmm(square, residual, embed.t(), alpha=-2).add_(norms).argmin(1)
            residual.sub_(embed[index])
            codes.append(index.view(rows, frames))
        return torch.stack(codes)


def encode_streams(engine: StreamingEncoder, clips: Sequence[np.ndarray], rows: int,
                   device: torch.device, quantize: bool = True, shrink: bool = False
                   ) -> list[np.ndarray]:
    """Codes [n_q, ceil(len / HOP)] (int16) for each clip; with quantize=False the encoder's
    output [128, ceil(len / HOP)] (float32) instead.

    Longest clips start first, so the last steps are not one long clip beside idle rows; with
    shrink=True (only where the row count does not change the arithmetic), rows whose clips
    have ended are dropped once no clip is left to start (keeping at least 2).
    """
    out: list[list[np.ndarray]] = [[] for _ in clips]
    queue = deque(sorted((i for i, c in enumerate(clips) if len(c)), key=lambda i: -len(clips[i])))
    slots: list[int | None] = [None] * rows  # clip index per row
    offsets = [0] * rows
    audio = torch.zeros(rows, CHUNK)
    engine.reset(rows)
    while True:
        for r in range(len(slots)):
            if slots[r] is None and queue:
                slots[r], offsets[r] = queue.popleft(), 0
        if all(slot is None for slot in slots):
            break
        audio.zero_()
        infos: list[Row | None] = []
        for r, slot in enumerate(slots):
            if slot is None:
                infos.append(None)
                continue
            part = clips[slot][offsets[r] : offsets[r] + CHUNK]
            audio[r, : len(part)] = torch.from_numpy(part)
            infos.append(Row(len(clips[slot]), offsets[r]))
        step = engine.step(audio.to(device), infos, quantize).cpu().numpy()
        for r, slot in enumerate(slots):
            if slot is None:
                continue
            length = len(clips[slot])
            frames = math.ceil(length / HOP) - offsets[r] // HOP
            part = step[:, r, : min(frames, CHUNK // HOP)]
            out[slot].append(part.astype(np.int16) if quantize else part.copy())
            offsets[r] += CHUNK
            if offsets[r] >= length:
                slots[r] = None
        busy = [r for r, slot in enumerate(slots) if slot is not None]
        if shrink and busy and not queue and max(2, len(busy)) < len(slots):
            idle = [r for r, slot in enumerate(slots) if slot is None]
            keep = (busy + idle)[: max(2, len(busy))]
            engine.compact(keep)
            slots, offsets = [slots[r] for r in keep], [offsets[r] for r in keep]
            audio = audio[: len(keep)]
    empty = np.zeros((engine.n_q, 0), np.int16) if quantize else np.zeros((128, 0), np.float32)
    return [np.concatenate(parts, axis=1) if parts else empty for parts in out]
