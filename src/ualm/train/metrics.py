"""Reading a run's metrics back: Lightning's CSV log as numbers, and the loss curves in it."""

from __future__ import annotations

import csv
from pathlib import Path


def read_metrics(metrics: Path) -> list[dict[str, float]]:
    """Lightning's CSV log as numbers; a row holds only the columns logged at its step."""
    if not metrics.is_file():
        return []
    rows = []
    with open(metrics, newline="") as handle:
        for raw in csv.DictReader(handle):
            row = {}
            for k, v in raw.items():
                try:
                    row[k] = float(v)
                except (TypeError, ValueError):
                    continue
            rows.append(row)
    return rows


def loss_series(metrics: list[dict[str, float]], prefix: str) -> dict[str, list[tuple[int, float]]]:
    """{'loss': [(step, value)], 'loss_generation': [...], ...} for columns `prefix/loss*`
    (prefix `train` or `val`), each sorted by step."""
    series: dict[str, list[tuple[int, float]]] = {}
    for row in metrics:
        for column, value in row.items():
            if column.startswith(f"{prefix}/loss") and "step" in row:
                series.setdefault(column.split("/", 1)[1], []).append((int(row["step"]), value))
    return {k: sorted(v) for k, v in sorted(series.items())}
