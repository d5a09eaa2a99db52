"""The engine contract: run a stage function over its work units, and run keyed reduces.

Engines only decide where units run. Stage functions are module-level, take one picklable task
and write their own outputs, so every engine produces the same bytes.

Two shapes cover every stage:
- `map(fn, tasks)`: one call per work unit (ingest, shard writing, tokenization);
- `map_reduce(emit, tasks, reduce, keys)`: a global step (dedup). `emit` turns each task into
  (key, value) pairs; the engine groups the values by key with its own shuffle (a Dask bag
  groupby, a Beam GroupByKey) and calls `reduce(key, values)` once per key, so no process ever
  holds every value. Values reach `reduce` in no particular order: reduces sort what they need.

A unit that raises is retried (a bounded number of attempts, where the engine decides how); one
that fails every attempt comes back as `UnitFailed` in its place, for the stage to record its
inputs as rejected. It never disappears, and it never ends the job for the other units.
"""

from __future__ import annotations

import os
import traceback
from abc import ABC, abstractmethod
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")
R = TypeVar("R")
K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

DEFAULT_RETRIES = 2
"""Attempts after the first for a unit that raises (or whose worker dies)."""


@dataclass(frozen=True)
class UnitFailed:
    """A work unit that raised on every attempt."""

    error: str
    """The last attempt's exception, as `Type: message`."""
    attempts: int
    errno: int | None = None
    """The errno of the last attempt's OSError (its own, or the one it was raised from), so the
    stage can tell a full disk, which no retry or reject fixes, from one unit's bad input."""
    filename: str | None = None
    """That OSError's file, when it named one."""

    @classmethod
    def of(cls, exc: BaseException, attempts: int) -> UnitFailed:
        """The failure of a unit whose last attempt raised `exc`."""
        os_error = _os_error(exc)
        filename = None if os_error is None or os_error.filename is None else str(
            os_error.filename)
        return cls(describe(exc), attempts, None if os_error is None else os_error.errno,
                   filename)


class Engine(ABC):
    """Runs stage functions over work units; calls `on_result` as each unit finishes."""

    name: str = "engine"
    retries: int = DEFAULT_RETRIES

    @abstractmethod
    def map(self, fn: Callable[[T], R], tasks: Sequence[T], label: str,
            on_result: Callable[[R | UnitFailed], None] | None = None,
            scratch: str | os.PathLike[str] | None = None) -> list[R | UnitFailed]:
        """fn over every task; results in task order. `scratch` is a folder that workers and
        the driver both see (the corpus's `_work`), for engines that pass results through files."""

    @abstractmethod
    def map_reduce(self, emit: Callable[[T], Iterable[tuple[K, V]]], tasks: Sequence[T],
                   reduce: Callable[[K, list[V]], R], keys: Sequence[K], label: str,
                   on_result: Callable[[R | UnitFailed], None] | None = None,
                   scratch: str | os.PathLike[str] | None = None) -> list[R | UnitFailed]:
        """reduce(key, values) for every key in `keys` (values [] where none was emitted);
        results in the order of `keys`. Pairs whose key is not in `keys` are dropped."""

    def prepare(self, fn: Callable[[], Any]) -> None:
        """Runs `fn` once on every worker, in the thread that will run its units, without
        waiting: a warm-up (imports, a decode process) that overlaps the driver's own work
        (listing, planning) instead of delaying each worker's first unit. A hint: engines whose
        units run in the calling process or in workers they do not address ignore it."""
        return None

    def close(self) -> None:
        """Releases workers; engines that hold none do nothing."""
        return None

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def machine_cores() -> int:
    """Cores this process may run on (a container's or taskset's limit, not the host's)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def describe(exc: BaseException) -> str:
    """`Type: message` plus the innermost frame, enough to find the bug from a rejects table."""
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" (at {frames[-1].filename.rsplit('/', 1)[-1]}:{frames[-1].lineno})" if frames else ""
    return f"{type(exc).__name__}: {exc}{where}"


def _os_error(exc: BaseException | None) -> OSError | None:
    """The first OSError with an errno in exc's chain (a library may wrap it in its own error)."""
    seen = 0
    while exc is not None and seen < 8:
        if isinstance(exc, OSError) and exc.errno is not None:
            return exc
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return None


def call_with_retries(fn: Callable[..., R], *args: Any, retries: int) -> R | UnitFailed:
    """fn(*args), retried in this process; the last error is returned, not raised."""
    last: BaseException | None = None
    for _ in range(retries + 1):
        try:
            return fn(*args)
        except Exception as exc:  # any failure of one unit: retry, then report it
            last = exc
    assert last is not None
    return UnitFailed.of(last, retries + 1)


def group_values(pairs: Iterable[tuple[K, V]], keys: Sequence[K]) -> dict[K, list[V]]:
    """{key: values} for every key in `keys`, in emission order; other keys dropped."""
    grouped: dict[K, list[V]] = {k: [] for k in keys}
    for key, value in pairs:
        if key in grouped:
            grouped[key].append(value)
    return grouped
