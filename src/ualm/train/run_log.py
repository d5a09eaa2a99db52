"""The run's CSV log across resumes. Lightning's CSVLogger deletes `logs/metrics.csv` when it
finds the folder not empty, so a resumed run kept only the steps it trained itself: the loss
curve and the held-out history began again at the resume, and a resume with no step left to
train reported no loss at all. Here the rows a resumed run inherits (those logged before the
step of the checkpoint it resumes from) are put back, with their columns, before it logs."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any


def resumable_csv_logger(out: Path, resume_step: int | None) -> Any:
    """A CSVLogger writing `out/logs/metrics.csv`; with `resume_step`, the rows logged before
    that step (and its held-out row) are kept: the others were logged after the checkpoint was
    saved, and the resumed run logs them again."""
    from lightning.pytorch.loggers import CSVLogger

    path = out / "logs" / "metrics.csv"
    kept, header = _rows_until(path, resume_step) if resume_step is not None else ([], [])
    logger = CSVLogger(out, name="logs", version="")
    writer = logger.experiment  # created now (rank 0 only): this is when it deletes the file
    if kept and hasattr(writer, "metrics_keys"):
        with open(path, "w", newline="") as handle:
            table = csv.DictWriter(handle, fieldnames=header)
            table.writeheader()
            table.writerows(kept)
        writer.metrics_keys = list(header)  # new columns then rewrite the file, not drop it
    return logger


def _rows_until(path: Path, step: int) -> tuple[list[dict[str, str]], list[str]]:
    if not path.is_file():
        return [], []
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        rows = [r for r in reader if r.get("step") and _inherited(r, int(float(r["step"])), step)]
        return rows, list(reader.fieldnames or [])


def _inherited(row: dict[str, str], at: int, step: int) -> bool:
    """Training rows are logged at the step count before their optimizer step, so the resumed
    run logs `step` again; a held-out row at `step` was measured after the checkpoint was
    saved at that step (the checkpoint callback runs first) and is not measured again."""
    if at != step:
        return at < step
    return not any(v for k, v in row.items() if k.startswith("train/"))
