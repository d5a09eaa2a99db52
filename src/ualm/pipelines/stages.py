"""Running one stage's work units on an engine, skipping those already complete.

A unit that fails every attempt is handed to the stage's `on_failure`, which records what the
unit's inputs became (rejected, with the error) and completes the unit, so the job goes on and
nothing goes missing. A stage with no such handler (one whose failure would lose data silently:
dedup, shard writing) stops the job with the unit's error instead.

A unit that failed for want of space or permission on the output (`resources.is_exhausted`)
stops the job as soon as the driver sees it, on every stage: a full disk is no input's fault,
so it must never turn a unit's inputs into rejects. It is raised as the OSError it was, for the
build to word (`resources.output_errors`).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Hashable, Iterable, Sequence
from typing import Any, TypeVar

from ualm.engines import Engine
from ualm.engines.base import UnitFailed
from ualm.engines.progress import Progress
from ualm.errors import UalmError
from ualm.manifests.layout import CorpusLayout, finished
from ualm.pipelines.resources import is_exhausted

T = TypeVar("T")
K = TypeVar("K", bound=Hashable)

Summary = dict[str, Any]


def run_pending(engine: Engine, stage: str, fn: Callable[[T], Summary], tasks: Sequence[T],
                layout: CorpusLayout, progress: bool, index: Callable[[T], int],
                on_failure: Callable[[T, UnitFailed], Summary] | None = None,
                fresh: bool = False) -> int:
    """Runs the tasks whose completion record is missing or invalid (all of them in a `fresh`
    build, whose records are not looked up); returns how many were skipped because an earlier
    run finished them."""
    done = _finished(layout, stage, [index(t) for t in tasks], fresh)
    pending = [t for t, d in zip(tasks, done, strict=True) if not d]
    meter = Progress(stage.split("-", 1)[0], len(pending), enabled=progress)
    if pending:
        with layout.scratch() as scratch, contextlib.closing(meter):
            results = engine.map(fn, pending, stage, _counting(meter, layout), scratch=scratch)
        for task, result in _unsettled(layout, stage, pending, results, index):
            _stop_if_exhausted(result, layout)  # engines that report results only at the end
            _handle_failure(stage, index(task), result, on_failure, task)
    return len(tasks) - len(pending)


def run_pending_reduce(engine: Engine, stage: str, emit: Callable[[T], Iterable[tuple[K, Any]]],
                       tasks: Sequence[T], reduce: Callable[[K, list[Any]], Summary],
                       keys: Sequence[K], layout: CorpusLayout, progress: bool,
                       index: Callable[[K], int], fresh: bool = False) -> int:
    """The keyed reduce of a global stage, for the keys whose completion record is missing;
    returns how many keys were skipped."""
    done = _finished(layout, stage, [index(k) for k in keys], fresh)
    pending = [k for k, d in zip(keys, done, strict=True) if not d]
    meter = Progress(stage.split("-", 1)[0], len(pending), enabled=progress)
    if pending:
        with layout.scratch() as scratch, contextlib.closing(meter):
            results = engine.map_reduce(emit, tasks, reduce, pending, stage,
                                         _counting(meter, layout), scratch=scratch)
        for key, result in _unsettled(layout, stage, pending, results, index):
            _stop_if_exhausted(result, layout)
            _handle_failure(stage, index(key), result, None, key)
    return len(keys) - len(pending)


def _finished(layout: CorpusLayout, stage: str, indexes: list[int], fresh: bool) -> list[bool]:
    return [False] * len(indexes) if fresh else finished(layout, stage, indexes)


def _unsettled(layout: CorpusLayout, stage: str, pending: Sequence[T], results: Sequence[Any],
               index: Callable[[T], int]) -> list[tuple[T, UnitFailed]]:
    """The failed units that no other build finished meanwhile: a second build into the same
    corpus can fail on objects the first one's commit removed, after that build completed the
    unit, whose completion record then settles it."""
    failed = [(t, r) for t, r in zip(pending, results, strict=True) if isinstance(r, UnitFailed)]
    if not failed:
        return []
    settled = finished(layout, stage, [index(t) for t, _ in failed])
    return [pair for pair, done in zip(failed, settled, strict=True) if not done]


def _counting(meter: Progress, layout: CorpusLayout) -> Callable[[Any], None]:
    def update(result: Any) -> None:
        _stop_if_exhausted(result, layout)  # at once: the other units would fail the same way
        meter.update(result if isinstance(result, dict) else {})

    return update


def _handle_failure(stage: str, unit: int, failure: UnitFailed,
                    on_failure: Callable[[Any, UnitFailed], Summary] | None, task: Any) -> None:
    if on_failure is None:
        raise UalmError(
            f"{stage} unit {unit} failed after {failure.attempts} attempts: {failure.error}",
            fix="fix the cause and rerun the same command: finished units are kept")
    on_failure(task, failure)


def _stop_if_exhausted(result: Any, layout: CorpusLayout) -> None:
    if isinstance(result, UnitFailed) and result.errno is not None and is_exhausted(
            result.errno, result.filename, result.error, layout):
        where = () if result.filename is None else (result.filename,)
        raise OSError(result.errno, os.strerror(result.errno), *where)
