"""Held-out loss while training: every `run.val_every` steps, one pass (at most
`run.val_batches` batches) over held-out corpora, logged as `val/loss` and `val/loss_<task>`
next to the training loss (metrics.csv, loss.png, `ualm report`).

Every rank evaluates the same batches, so a sharded model (FSDP) gathers its weights on all of
them; rank 0 logs. The pass reads the shards in order with no shuffling or condition dropout
(`ualm.train.model.evaluate`), so the numbers at a step do not depend on the run's data order.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
import torch

from ualm.train.model.evaluate import evaluate


class HeldoutLoss(L.Callback):
    def __init__(self, corpora: Sequence[str | Path], every: int, seq_len: int,
                 batch_size: int, codec_id: str | None = None,
                 max_batches: int | None = None) -> None:
        self.corpora, self.every = [str(c) for c in corpora], every
        self.seq_len, self.batch_size = seq_len, batch_size
        self.codec_id, self.max_batches = codec_id, max_batches
        self._last = 0
        """The step measured last (micro-batches of one step all end at that step)."""
        self.latest: tuple[int, dict[str, float]] | None = None
        """That step and its losses (the training bar prints them)."""

    def measure(self, model: Any) -> dict[str, float]:
        """{'loss': ..., 'loss_<task>': ...} of `model` on the held-out corpora."""
        was_training = model.training
        model.eval()
        with torch.no_grad():
            result = evaluate(model, self.corpora, self.seq_len, self.batch_size,
                              self.codec_id, self.max_batches)
        model.train(was_training)
        out = {f"loss_{task}": row["loss"] for task, row in result["tasks"].items()}
        if result["loss"] is not None:
            out["loss"] = result["loss"]
        return out

    def on_train_batch_end(self, trainer: L.Trainer, module: Any, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        step = trainer.global_step
        if step % self.every or step == self._last:
            return
        self._last = step
        losses = self.measure(module.model)
        self.latest = (step, losses)
        if trainer.is_global_zero and trainer.logger is not None:
            trainer.logger.log_metrics({f"val/{k}": v for k, v in losses.items()}, step=step)
