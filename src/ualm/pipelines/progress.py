"""Progress on the terminal while units finish: units done, clips and hours kept and rejected.

On a terminal the line rewrites itself; in a log (CI, a batch job) a line is printed at most
every few seconds and at the end, so logs stay short.
"""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO


class Progress:
    def __init__(self, label: str, total: int, stream: TextIO | None = None,
                 enabled: bool = True, every_seconds: float = 5.0) -> None:
        self.label, self.total, self.done = label, total, 0
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.tty = self.stream.isatty()
        self.every = every_seconds
        self.kept = self.rejected = self.samples = 0
        self.seconds = 0.0
        self._last = 0.0
        self._start = time.monotonic()

    def update(self, summary: dict[str, Any]) -> None:
        self.done += 1
        self.kept += summary.get("kept_inputs", 0)
        self.rejected += summary.get("rejected_inputs", 0)
        self.samples += summary.get("kept_samples", summary.get("samples", 0))
        self.seconds += summary.get("kept_seconds", summary.get("seconds", 0.0))
        now = time.monotonic()
        if self.done == self.total or now - self._last >= (0.2 if self.tty else self.every):
            self._last = now
            self._emit(final=self.done == self.total)

    def _emit(self, final: bool) -> None:
        if not self.enabled:
            return
        rate = self.done / max(time.monotonic() - self._start, 1e-9)
        line = (f"[{self.label}] {self.done}/{self.total} units · {self.samples} samples "
                f"({self.seconds / 3600:.2f} h) kept")
        if self.kept or self.rejected:
            line += f" · inputs kept {self.kept}, rejected {self.rejected}"
        elapsed = time.monotonic() - self._start
        line += f" · {elapsed:.1f} s" if final else f" · {rate:.1f} units/s"
        if self.tty:
            self.stream.write("\r" + line + ("\n" if final else ""))
        else:
            self.stream.write(line + "\n")
        self.stream.flush()
