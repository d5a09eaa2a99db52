"""The single-process engine: for debugging, and the reference every other engine must match."""

from __future__ import annotations

import os
from collections.abc import Callable, Hashable, Iterable, Sequence
from itertools import chain
from typing import TypeVar

from ualm.engines.base import (
    DEFAULT_RETRIES,
    Engine,
    UnitFailed,
    call_with_retries,
    group_values,
)

T = TypeVar("T")
R = TypeVar("R")
K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class LocalEngine(Engine):
    name = "local"

    def __init__(self, retries: int = DEFAULT_RETRIES) -> None:
        self.retries = retries

    def map(self, fn: Callable[[T], R], tasks: Sequence[T], label: str,
            on_result: Callable[[R | UnitFailed], None] | None = None,
            scratch: str | os.PathLike[str] | None = None) -> list[R | UnitFailed]:
        results = []
        for task in tasks:
            result = call_with_retries(fn, task, retries=self.retries)
            if on_result is not None:
                on_result(result)
            results.append(result)
        return results

    def map_reduce(self, emit: Callable[[T], Iterable[tuple[K, V]]], tasks: Sequence[T],
                   reduce: Callable[[K, list[V]], R], keys: Sequence[K], label: str,
                   on_result: Callable[[R | UnitFailed], None] | None = None,
                   scratch: str | os.PathLike[str] | None = None) -> list[R | UnitFailed]:
        grouped = group_values(chain.from_iterable(emit(t) for t in tasks), keys)
        results = []
        for key in keys:
            result = call_with_retries(reduce, key, grouped.pop(key), retries=self.retries)
            if on_result is not None:
                on_result(result)
            results.append(result)
        return results
