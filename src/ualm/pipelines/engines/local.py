"""The single-process engine: for debugging, and the reference every other engine must match."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

from ualm.pipelines.engines.base import Engine

T = TypeVar("T")
R = TypeVar("R")


class LocalEngine(Engine):
    name = "local"

    def map(self, fn: Callable[[T], R], tasks: Sequence[T], label: str,
            on_result: Callable[[R], None] | None = None) -> list[R]:
        results = []
        for task in tasks:
            result = fn(task)
            if on_result is not None:
                on_result(result)
            results.append(result)
        return results
