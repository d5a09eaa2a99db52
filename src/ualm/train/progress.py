"""The training bar: optimizer steps out of `run.max_steps`, with the rate, the ETA and the
training loss, and a line with the held-out loss at each validation.

Lightning's own bar counts batches of an epoch; the trainer streams an iterable dataset that
has no length and stops by steps, so that bar read `Epoch 0/-2` with a batch count that is not
the step count under gradient accumulation.
"""

from __future__ import annotations

from typing import Any, TextIO

from lightning.pytorch.callbacks import ProgressBar

from ualm.engines.progress import stage_bar


def heldout_line(step: int, total: int | None, losses: dict[str, float]) -> str:
    """One validation's line: the held-out loss and the loss per task.

    >>> heldout_line(50, 300, {"loss": 4.5, "loss_text": 3.25})
    'step 50/300: held-out loss 4.5000 (text 3.2500)'
    """
    tasks = ", ".join(f"{k.removeprefix('loss_')} {v:.4f}" for k, v in sorted(losses.items())
                      if k != "loss")
    where = f"{step}/{total}" if total else str(step)
    return (f"step {where}: held-out loss {losses.get('loss', float('nan')):.4f}"
            + (f" ({tasks})" if tasks else ""))


class StepBar(ProgressBar):
    """Lightning's progress bar slot, filled with the pipeline's stage bar counting steps.
    `heldout` is the run's `HeldoutLoss` callback, if any: its latest losses are printed
    once per validation."""

    def __init__(self, heldout: Any = None, label: str = "train:",
                 stream: TextIO | None = None) -> None:
        super().__init__()
        self.heldout, self.label, self.stream = heldout, label, stream
        self._enabled = True
        self._bar: Any = None
        self._reported = -1

    def disable(self) -> None:
        self._enabled = False

    def enable(self) -> None:
        self._enabled = True

    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        if not (self._enabled and trainer.is_global_zero):
            return
        total = trainer.max_steps if trainer.max_steps and trainer.max_steps > 0 else None
        bar = stage_bar(self.label, total, "steps", True, self.stream)
        # a resumed run starts where it stopped; the rate counts only this run's steps
        bar.n = bar.last_print_n = bar.initial = trainer.global_step
        self._bar = bar

    def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        bar, step = self._bar, trainer.global_step
        if bar is None or step == bar.n:  # a micro-batch inside an accumulated step
            return
        latest = getattr(self.heldout, "latest", None)
        if latest is not None and latest[0] != self._reported:
            self._reported = latest[0]
            bar.write(heldout_line(latest[0], bar.total, latest[1]), file=bar.fp)
        postfix = []
        loss = trainer.progress_bar_metrics.get("train/loss")
        if loss is not None:
            postfix.append(f"loss {float(loss):.3f}")
        if latest is not None and "loss" in latest[1]:
            postfix.append(f"held-out {latest[1]['loss']:.3f}")
        bar.set_postfix_str(" · ".join(postfix), refresh=False)
        bar.update(step - bar.n)

    def on_train_end(self, trainer: Any, pl_module: Any) -> None:
        if self._bar is not None:
            self._bar.close()
