"""Causal convolutions for the streaming encoder: preallocated buffers, channels-last layout.

Activations live as [rows, time, channels] (channels-last), which oneDNN convolves about twice
as fast as PyTorch's default [rows, channels, time]. Every conv reads a persistent input buffer
that keeps its left context in front, and writes a persistent output buffer: on CPU through
oneDNN's fused conv + add, so the step allocates nothing large. Fresh multi-megabyte tensors
each step would cost a page fault per 4 KiB page once glibc returns them to the system, which
measured as about a sixth of the encoder's time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

_FUSED = getattr(torch.ops.mkldnn, "_convolution_pointwise_", None)  # oneDNN conv + add, in place
BUFFERED_BYTES = 4 << 20
"""Conv outputs at least this large go to preallocated buffers; smaller ones are fresh tensors,
which glibc serves without faults, and oneDNN computes faster without the fused add."""


def _fused(target: torch.Tensor) -> bool:
    return _FUSED is not None and target.device.type == "cpu" and target.dtype == torch.float32


@dataclass
class Row:
    """Where one clip stands in the current step."""

    length: int  # the clip's total samples
    offset: int  # samples of the clip consumed before this step (a multiple of the step)


def nchw(x: torch.Tensor) -> torch.Tensor:
    """[rows, time, channels] memory seen as a channels-last [rows, channels, 1, time] image."""
    return x.permute(0, 2, 1).unsqueeze(2)


@dataclass
class CausalConv:
    """One of EnCodec's causal convolutions (dilation 1), weight norm already applied."""

    weight: torch.Tensor  # [out, in, 1, kernel], channels-last
    bias: torch.Tensor
    stride: int
    rate: int  # input samples per audio sample: the cumulative stride before this conv

    @property
    def pad(self) -> int:
        return self.weight.shape[-1] - self.stride  # EnCodec's causal left padding

    @classmethod
    def from_state(cls, state: dict[str, torch.Tensor], prefix: str, stride: int, rate: int
                   ) -> CausalConv:
        g, v = state[f"{prefix}.conv.conv.weight_g"], state[f"{prefix}.conv.conv.weight_v"]
        weight = torch._weight_norm(v, g, 0)  # what torch's weight_norm computes per call
        weight = weight.unsqueeze(2).contiguous(memory_format=torch.channels_last)
        return cls(weight, state[f"{prefix}.conv.conv.bias"], stride, rate)

    def buffers(self, rows: int, chunk: int, device: torch.device, output: bool = True
                ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """(input [rows, pad + time, in], output [rows, time / stride, out] or None, scratch).

        A conv without padding reads its producer's output directly (its input buffer stays
        empty). The output buffer is kept only where it is large and oneDNN can fill it in
        place (output=False: the conv adds into another's output). A conv of one input channel
        gets a scratch [rows * time / stride, kernel] for its windows, and always an output."""
        time, (cout, cin, _, kernel) = chunk // self.rate, self.weight.shape
        frames = time // self.stride
        inputs = torch.zeros(rows, self.pad + time if self.pad else 0, cin, device=device)
        out = torch.zeros(rows, frames, cout, device=device)
        keep = cin == 1 or (output and out.numel() * 4 >= BUFFERED_BYTES and _fused(out))
        scratch = torch.zeros(rows * frames, kernel, device=device) if cin == 1 else None
        return inputs, out if keep else None, scratch

    def run(self, x: torch.Tensor, out: torch.Tensor | None = None,
            into: torch.Tensor | None = None, scratch: torch.Tensor | None = None
            ) -> torch.Tensor:
        """conv(x) as [rows, time / stride, out] from x [rows, pad + time, in] (context in
        front): written to `out` if given, added to `into` if given, else a new tensor."""
        if scratch is not None and out is not None:  # one input channel: a small matmul
            windows = x[..., 0].unfold(1, scratch.shape[1], self.stride)
            scratch.view(*out.shape[:2], -1).copy_(windows)
            flat = out.view(-1, out.shape[-1])
            torch.addmm(self.bias, scratch, self.weight[:, 0, 0].t(), out=flat)
            return out
        target = into if into is not None else out
        if target is not None and _fused(target):
            if into is None:
                target.zero_()
            _FUSED.binary(nchw(target), nchw(x), self.weight, self.bias,  # type: ignore[union-attr]
                          [0, 0], [1, self.stride], [1, 1], 1, "add", 1.0, None, [], None)
            return target
        y = F.conv2d(nchw(x), self.weight, self.bias, (1, self.stride))
        if into is not None:
            return nchw(into).add_(y).squeeze(2).permute(0, 2, 1)
        return y.squeeze(2).permute(0, 2, 1)  # channels-last memory: [rows, time, out]

    def shift_context(self, inputs: torch.Tensor) -> None:
        """Before a step: the previous step's last `pad` input samples become the left context."""
        if self.pad:
            inputs[:, : self.pad] = inputs[:, inputs.shape[1] - self.pad :]

    def pad_clip_edges(self, inputs: torch.Tensor, rows: list[Row | None]) -> None:
        """After the input is in place: EnCodec's reflect padding where a clip starts, and where
        it ends mid-window of a strided conv (zeros instead where a clip is shorter than the pad,
        as EnCodec's `pad1d` does), so no row ever sees samples of another clip."""
        p = self.pad
        for r, row in enumerate(rows):
            if row is None or not p:
                continue
            total = math.ceil(row.length / self.rate)  # the clip's length at this layer
            if row.offset == 0:
                head = inputs[r, p + 1 : 2 * p + 1].clone()
                head[max(total - 1, 0) :] = 0
                inputs[r, :p] = head.flip(0)
            end = total - row.offset // self.rate  # where the clip ends in this step
            extra = -total % self.stride
            if extra and 0 < end <= inputs.shape[1] - p:
                at = p + end
                fill = inputs[r, at - 1 - extra : at - 1].flip(0) if total > p else 0.0
                inputs[r, at : at + extra] = fill
