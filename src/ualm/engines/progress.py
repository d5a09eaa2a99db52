"""Progress on the terminal, through tqdm: one bar per stage with its rate and ETA, and the
stage's own counts beside it (clips and hours kept and rejected; traces valid and rejected).

On a terminal the bar redraws itself; in a log (CI, a batch job) it writes at most every few
seconds and at the end, so logs stay short. `ualm synth` uses the same bar.
"""

from __future__ import annotations

import sys
from typing import Any, TextIO

from tqdm import tqdm

FORMAT = "{desc} {n_fmt}/{total_fmt} {unit} |{bar:20}|{postfix} [{elapsed}<{remaining}, {rate_fmt}]"


def stage_bar(label: str, total: int, unit: str, enabled: bool = True,
              stream: TextIO | None = None, log_every: float = 5.0) -> tqdm:
    """A bar named `label` over `total` items of `unit` (e.g. "units", "traces")."""
    stream = stream or sys.stderr
    tty = stream.isatty()
    return tqdm(total=total, desc=label, unit=unit, file=stream, disable=not enabled,
                bar_format=FORMAT, mininterval=0.2 if tty else log_every,
                maxinterval=0.2 if tty else log_every, dynamic_ncols=tty,
                ascii=not tty, leave=True)


class Progress:
    """Units of a build stage as they finish, with the clips and hours their summaries count."""

    def __init__(self, label: str, total: int, stream: TextIO | None = None,
                 enabled: bool = True, every_seconds: float = 5.0) -> None:
        self.bar = stage_bar(f"[{label}]", total, "units", enabled and total > 0, stream,
                             every_seconds)
        self.total, self.done = total, 0
        self.kept = self.rejected = self.samples = 0
        self.seconds = 0.0

    def update(self, summary: dict[str, Any]) -> None:
        self.done += 1
        self.kept += summary.get("kept_inputs", 0)
        self.rejected += summary.get("rejected_inputs", 0)
        self.samples += summary.get("kept_samples", summary.get("samples", 0))
        self.seconds += summary.get("kept_seconds", summary.get("seconds", 0.0))
        counts = f"{self.samples} samples ({self.seconds / 3600:.2f} h) kept"
        if self.kept or self.rejected:
            counts += f" · inputs kept {self.kept}, rejected {self.rejected}"
        self.bar.set_postfix_str(counts, refresh=False)
        self.bar.update(1)
        if self.done >= self.total:
            self.bar.close()

    def close(self) -> None:
        """Ends the bar's line (again is harmless): a stage stopped by an error leaves it
        finished before the error's line, not redrawn after it."""
        self.bar.close()
