"""Running one stage's work units on an engine, skipping those already complete."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from ualm.manifests.layout import CorpusLayout, read_done
from ualm.pipelines.engines import Engine
from ualm.pipelines.progress import Progress


def run_pending(engine: Engine, stage: str, fn: Callable[[Any], dict[str, Any]],
                tasks: Sequence[Any], layout: CorpusLayout, progress: bool,
                index: Callable[[Any], int]) -> int:
    """Runs the tasks whose completion record is missing or invalid; returns how many were
    skipped because an earlier run finished them."""
    pending = [t for t in tasks if read_done(layout, stage, index(t)) is None]
    meter = Progress(stage.split("-", 1)[0], len(pending), enabled=progress)
    if pending:
        engine.map(fn, pending, stage, meter.update)
    return len(tasks) - len(pending)
