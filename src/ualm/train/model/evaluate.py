"""`ualm eval`: held-out loss and accuracy per task, over one pass of every sample of the given
corpora (no condition dropout, no shuffling), packed as in training.

Accuracy is teacher-forced top-1: of the target text tokens (answers, messages) and, separately,
of the target codes (generation)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch

from ualm.train.data.sources import discover
from ualm.train.data.stream import PackedStream, Sample, StreamConfig
from ualm.train.model.model import UALMModel
from ualm.train.sequence.layout import TASK_IDS


class OnePass(PackedStream):
    """Every sample of the sources once, in shard order, then StopIteration."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._samples = self._every_sample()

    def _every_sample(self) -> Iterator[Sample]:
        for reader in self.readers:
            for unit in range(len(reader.units(0))):
                for ref, meta, codes in reader._read_from(0, unit, 0):
                    sample = self._accepted(ref, meta, codes)
                    if sample is not None:
                        yield sample

    def _next_sample(self) -> Sample:
        if self.carry is not None:
            sample, self.carry = self.carry, None
            return sample
        return next(self._samples)

    def each_batch(self) -> Iterator[dict[str, Any]]:
        while not self.exhausted:
            batch = self.next_batch()
            if (batch["task_ids"] >= 0).any():
                yield batch


@torch.inference_mode()
def evaluate(model: UALMModel, corpora: Sequence[str | Path], seq_len: int = 1024,
             batch_size: int = 8, codec_id: str | None = None,
             max_batches: int | None = None) -> dict[str, Any]:
    sources = discover(corpora, codec_id)
    config = StreamConfig(seq_len, batch_size, 1, 0, model.k, 0.0)
    stream = OnePass(sources, [1.0] * len(sources), config, model.tokenizer)
    device = next(model.parameters()).device
    totals: dict[str, torch.Tensor] = {}
    batches = 0
    for batch in stream.each_batch():
        out = model({k: torch.from_numpy(v).to(device) for k, v in batch.items()})
        for key in ("task_loss_sum", "task_weight", "task_right", "task_counted", "code_right",
                    "code_counted"):
            totals[key] = totals.get(key, 0) + out[key].cpu()
        batches += 1
        if max_batches and batches >= max_batches:
            break
    tasks = {}
    for task, i in TASK_IDS.items():
        if not totals or totals["task_weight"][i] <= 0:
            continue
        row = {"loss": float(totals["task_loss_sum"][i] / totals["task_weight"][i])}
        if totals["task_counted"][i] > 0:
            row["text_accuracy"] = float(totals["task_right"][i] / totals["task_counted"][i])
            row["text_tokens"] = int(totals["task_counted"][i])
        if totals["code_counted"][i] > 0:
            row["code_accuracy"] = float(totals["code_right"][i] / totals["code_counted"][i])
            row["codes"] = int(totals["code_counted"][i])
        tasks[task] = row
    weight = sum(float(totals["task_weight"][i]) for i in TASK_IDS.values()) if totals else 0.0
    loss = (float(totals["task_loss_sum"].sum()) / weight) if weight else None
    return {"loss": loss, "tasks": tasks, "batches": batches, "skipped": dict(stream.skipped),
            "samples": sum(c[0] for c in stream.counts.values())}
