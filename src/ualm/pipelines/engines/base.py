"""The engine contract: run a stage function over its work units and return results in order.

Engines only decide where units run. Stage functions are module-level, take one picklable task
and write their own outputs, so every engine produces the same bytes.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class Engine(ABC):
    """Runs `fn` over tasks; calls `on_result` as each finishes (for progress)."""

    name: str = "engine"

    @abstractmethod
    def map(self, fn: Callable[[T], R], tasks: Sequence[T], label: str,
            on_result: Callable[[R], None] | None = None) -> list[R]: ...

    def close(self) -> None:
        """Releases workers; engines that hold none do nothing."""
        return None

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
