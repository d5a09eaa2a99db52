"""The Dask engine: a `distributed.LocalCluster` sized to the machine, or an existing cluster.

Workers must see the corpus: a folder at the same path (one machine, or a shared filesystem),
or a bucket, with no disk shared at all (each writes only in its own temporary folder: TMPDIR
and `--local-directory`; tests/test_shared_nothing.py).
A worker that dies mid-unit costs a retry of that unit, not data: unit outputs are written
under temporary names and renamed only when whole.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Hashable, Iterable, Sequence
from operator import itemgetter
from typing import Any, TypeVar

from ualm.engines.base import (
    DEFAULT_RETRIES,
    Engine,
    UnitFailed,
    call_with_retries,
    machine_cores,
)
from ualm.errors import DEBUG_ENV, UalmError

T = TypeVar("T")
R = TypeVar("R")
K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


_SPAWN_ENV = "distributed.nanny.pre-spawn-environ"
# The worker's statistical profiler walks the task thread's stack every 10 ms, holding the GIL.
_PROFILER = "distributed.worker.profile.enabled"


def _worker_log_level() -> int:
    """CRITICAL unless debugging: a worker logs each failed attempt of a unit at ERROR with its
    traceback (nine for three units on a full disk), while the driver already reports every
    failure, as a reject or as one line."""
    return logging.ERROR if os.environ.get(DEBUG_ENV) else logging.CRITICAL


def _worker_environ() -> dict[str, Any]:
    """Dask's worker environment without MALLOC_TRIM_THRESHOLD_. Setting it at all turns off
    glibc's dynamic mmap threshold, so every decoded block over 128 KiB is mapped and
    page-faulted anew: ingest ran 35-40 % slower in a worker than in-process until it was
    dropped. Memory stays bounded by design (streaming decode, flushed staging)."""
    import dask

    environ = dict(dask.config.get(_SPAWN_ENV, default={}) or {})
    environ.pop("MALLOC_TRIM_THRESHOLD_", None)
    return environ


def _redact_logs_plugin() -> Any:
    from distributed.diagnostics.plugin import WorkerPlugin

    class RedactLogs(WorkerPlugin):
        """Each worker, a restarted one too, masks credentials in every log record it makes
        (`--debug` shows workers' logs: a failed unit's arguments and traceback)."""

        def setup(self, worker: Any) -> None:
            from ualm.redact import redact_logs

            redact_logs()

    return RedactLogs


class DaskEngine(Engine):
    """`DaskEngine()` starts a local cluster with one single-threaded worker process per core;
    `DaskEngine(scheduler="tcp://host:8786")` joins an existing one."""

    name = "dask"

    def __init__(self, scheduler: str | None = None, workers: int | None = None,
                 retries: int = DEFAULT_RETRIES) -> None:
        import dask
        from distributed import Client, LocalCluster

        self.retries = retries
        self._cluster: Any = None
        self._prepared: list[Any] = []
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
                    dashboard_address=None, silence_logs=_worker_log_level(),
                )
            self._client = Client(self._cluster)
        self._client.register_plugin(_redact_logs_plugin()(), name="ualm-redact-logs")

    @property
    def workers(self) -> int:
        return len(self._client.scheduler_info(n_workers=-1)["workers"])

    def map(self, fn: Callable[[T], R], tasks: Sequence[T], label: str,
            on_result: Callable[[R | UnitFailed], None] | None = None,
            scratch: str | os.PathLike[str] | None = None) -> list[R | UnitFailed]:
        """One future per unit. Dask retries a unit that raised or whose worker died (the
        scheduler reschedules it on another worker); after the last retry it is UnitFailed."""
        from distributed import as_completed

        if not tasks:
            return []
        keys = [f"ualm-{label}-{i}-{os.getpid()}-{id(tasks)}" for i in range(len(tasks))]
        futures = self._client.map(fn, tasks, key=keys, pure=False, retries=self.retries)
        results: dict[str, R | UnitFailed] = {}
        for future in as_completed(futures):
            results[future.key] = self._outcome(future)
            if on_result is not None:
                on_result(results[future.key])
        return [results[f.key] for f in futures]

    def map_reduce(self, emit: Callable[[T], Iterable[tuple[K, V]]], tasks: Sequence[T],
                   reduce: Callable[[K, list[V]], R], keys: Sequence[K], label: str,
                   on_result: Callable[[R | UnitFailed], None] | None = None,
                   scratch: str | os.PathLike[str] | None = None) -> list[R | UnitFailed]:
        """A dask.bag pipeline: emit per task, a task-based shuffle (`groupby`) that moves each
        key's values between workers to the worker that reduces them, reduce per key. Every
        key gets one marker pair so that keys nothing was emitted for are reduced too."""
        import dask.bag as db
        from distributed import as_completed

        if not keys:
            return []
        wanted = set(keys)
        # A shuffle's task count grows with inputs x outputs: a few map partitions per worker
        # (each emitting several units) keep it small; 125 single-unit partitions made a
        # 2,000-clip dedup take 4.6 s instead of well under one.
        inputs = max(1, min(len(tasks), max(2 * self.workers, len(keys))))
        emitted = db.from_sequence(list(tasks), npartitions=inputs).map(
            _tagged, emit, wanted).flatten()
        markers = db.from_sequence([(k, (False, None)) for k in keys], npartitions=1)
        grouped = db.concat([emitted, markers]).groupby(
            itemgetter(0), shuffle="tasks", npartitions=min(len(keys), inputs + 1))
        reduced = grouped.map(_reduce_group, reduce, self.retries)
        futures = self._client.compute(reduced.to_delayed(), retries=self.retries)
        results: dict[K, R | UnitFailed] = {}
        for future in as_completed(futures):
            for key, result in self._outcome(future, many=True):
                results[key] = result
                if on_result is not None:
                    on_result(result)
        return [results[k] for k in keys]

    def _outcome(self, future: Any, many: bool = False) -> Any:
        if future.status == "finished":
            return future.result()
        error = UnitFailed.of(future.exception(), self.retries + 1)
        if many:  # a whole partition of reduces lost: it cannot be told apart, so it is fatal
            raise UalmError(f"a reduce partition failed after {error.attempts} attempts: "
                            f"{error.error}", fix="see the worker logs")
        return error

    def run_on_workers(self, fn: Callable[[], Any]) -> dict[str, Any]:
        """Runs fn once in every worker process (used by benchmarks to read worker memory)."""
        return self._client.run(fn)

    def prepare(self, fn: Callable[[], Any]) -> None:
        # a task pinned to each worker runs in its executor thread (client.run would use the
        # event loop's, where a thread-bound decode process would be of no use); the futures
        # are kept so that the scheduler does not drop them as unwanted
        workers = list(self._client.scheduler_info(n_workers=-1)["workers"])
        self._prepared = [self._client.submit(fn, workers=[w], allow_other_workers=False,
                                              pure=False, key=f"ualm-prepare-{w}")
                          for w in workers]

    def close(self) -> None:
        self._client.close()
        if self._cluster is not None:
            self._cluster.close()


def _tagged(task: Any, emit: Callable[[Any], Iterable[tuple[Any, Any]]], wanted: set[Any]
            ) -> list[tuple[Any, tuple[bool, Any]]]:
    return [(key, (True, value)) for key, value in emit(task) if key in wanted]


def _reduce_group(group: tuple[Any, list[tuple[Any, tuple[bool, Any]]]],
                  reduce: Callable[[Any, list[Any]], Any], retries: int) -> tuple[Any, Any]:
    key, pairs = group
    values = [value for _, (real, value) in pairs if real]
    return key, call_with_retries(reduce, key, values, retries=retries)
