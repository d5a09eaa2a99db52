"""The Dask engine: a `distributed.LocalCluster` sized to the machine, or an existing cluster.

Workers must see the corpus folder at the same path (one machine, or a shared filesystem).
A worker that dies mid-unit costs a retry of that unit, not data: unit outputs are written
under temporary names and renamed only when whole.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from ualm.errors import UalmError
from ualm.pipelines.engines.base import Engine

T = TypeVar("T")
R = TypeVar("R")


_SPAWN_ENV = "distributed.nanny.pre-spawn-environ"
# The worker's statistical profiler walks the task thread's stack every 10 ms, holding the GIL.
_PROFILER = "distributed.worker.profile.enabled"


def _worker_environ() -> dict[str, Any]:
    """Dask's worker environment without MALLOC_TRIM_THRESHOLD_. Setting it at all turns off
    glibc's dynamic mmap threshold, so every decoded block over 128 KiB is mapped and
    page-faulted anew: ingest ran 35-40 % slower in a worker than in-process until it was
    dropped. Memory stays bounded by design (streaming decode, flushed staging)."""
    import dask

    environ = dict(dask.config.get(_SPAWN_ENV, default={}) or {})
    environ.pop("MALLOC_TRIM_THRESHOLD_", None)
    return environ


def machine_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


class DaskEngine(Engine):
    """`DaskEngine()` starts a local cluster with one single-threaded worker process per core;
    `DaskEngine(scheduler="tcp://host:8786")` joins an existing one."""

    name = "dask"

    def __init__(self, scheduler: str | None = None, workers: int | None = None,
                 retries: int = 2) -> None:
        import dask
        from distributed import Client, LocalCluster

        self.retries = retries
        self._cluster: Any = None
        if scheduler:
            try:
                self._client = Client(scheduler, timeout="15s")
            except (OSError, TimeoutError) as exc:
                raise UalmError(f"cannot reach the Dask scheduler at {scheduler}: {exc}",
                                fix="check the address, or drop --scheduler to use a local cluster"
                                ) from exc
        else:
            with dask.config.set({_SPAWN_ENV: _worker_environ(), _PROFILER: False}):
                self._cluster = LocalCluster(
                    n_workers=workers or machine_cores(), threads_per_worker=1, processes=True,
                    dashboard_address=None, silence_logs=logging.ERROR,
                )
            self._client = Client(self._cluster)

    @property
    def workers(self) -> int:
        return len(self._client.scheduler_info(n_workers=-1)["workers"])

    def map(self, fn: Callable[[T], R], tasks: Sequence[T], label: str,
            on_result: Callable[[R], None] | None = None) -> list[R]:
        from distributed import as_completed

        if not tasks:
            return []
        keys = [f"ualm-{label}-{i}-{os.getpid()}-{id(tasks)}" for i in range(len(tasks))]
        futures = self._client.map(fn, tasks, key=keys, pure=False, retries=self.retries)
        for future in as_completed(futures):
            result = future.result()
            if on_result is not None:
                on_result(result)
        return [future.result() for future in futures]

    def run_on_workers(self, fn: Callable[[], Any]) -> dict[str, Any]:
        """Runs fn once in every worker process (used by benchmarks to read worker memory)."""
        return self._client.run(fn)

    def close(self) -> None:
        self._client.close()
        if self._cluster is not None:
            self._cluster.close()
