"""The Apache Beam engine: each stage a labelled composite transform, run on any Beam runner.

`BeamEngine("DirectRunner")` runs locally with one worker process per core (multi-processing
mode); `BeamEngine("FlinkRunner", ["--flink_master=host:8081"])`, `SparkRunner`,
`PortableRunner` and `DataflowRunner` take their own pipeline options, passed through unchanged.

Each stage is one pipeline: `Create(units) | Reshuffle | ParDo(stage fn)`, or for a global step
`... | FlatMap(emit) | GroupByKey | ParDo(reduce)`. Stage functions write their own outputs (as
on every engine); what they return, a small summary per unit, goes to a results folder that the
driver reads while the pipeline runs (for progress) and after it (for the results), so workers
must see that folder: inside the corpus's own `_work`, which they must see anyway, a folder or
a prefix in the corpus's bucket (`beam_results`). Stage
counters (units, kept and rejected inputs by reason, seconds of audio) are Beam metrics, shown
at the end of each stage and in the runner's own UI.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
import uuid
from collections.abc import Callable, Hashable, Iterable, Sequence
from typing import Any, TextIO, TypeVar

import apache_beam as beam
from apache_beam.metrics import Metrics
from apache_beam.options.pipeline_options import PipelineOptions

from ualm.engines.base import (
    DEFAULT_RETRIES,
    Engine,
    UnitFailed,
    call_with_retries,
    machine_cores,
)
from ualm.engines.beam_metrics import counters_of, format_metrics, query_counters
from ualm.engines.beam_results import ResultFolder, ResultWatcher
from ualm.engines.beam_watch import run_watched
from ualm.errors import UalmError
from ualm.manifests import storage

T = TypeVar("T")
R = TypeVar("R")
K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

RUNNERS = ("DirectRunner", "PortableRunner", "FlinkRunner", "SparkRunner", "DataflowRunner")


class BeamEngine(Engine):
    name = "beam"

    def __init__(self, runner: str = "DirectRunner", options: Sequence[str] = (),
                 workers: int | None = None, retries: int = DEFAULT_RETRIES,
                 report: TextIO | None = sys.stderr) -> None:
        direct = _check_runner(runner) in ("SwitchingDirectRunner", "DirectRunner", "FnApiRunner")
        args, given = ["--runner", runner, *options], " ".join(options)
        if "default_sdk_harness_log_level" not in given:  # workers' INFO lines drown progress
            args.append("--default_sdk_harness_log_level=ERROR")
        if direct:  # one worker process per core, as the Dask engine's local cluster
            if "direct_num_workers" not in given:
                args.append(f"--direct_num_workers={workers or machine_cores()}")
            if "direct_running_mode" not in given:
                args.append("--direct_running_mode=multi_processing")
        self.options = PipelineOptions(args)
        # The local job service relays every worker warning (about options it does not use,
        # a missing staging folder) into this process's log; they are not the user's business.
        logging.getLogger("apache_beam.runners.portability.local_job_service").setLevel(
            logging.ERROR)
        self.runner, self.retries, self.report = runner, retries, report
        self.metrics: dict[str, dict[str, int]] = {}
        """Counters of each stage run so far, by label."""

    def map(self, fn: Callable[[T], R], tasks: Sequence[T], label: str,
            on_result: Callable[[R | UnitFailed], None] | None = None,
            scratch: str | os.PathLike[str] | None = None) -> list[R | UnitFailed]:
        if not tasks:
            return []
        return self._run(label, len(tasks), on_result, scratch,
                         lambda pipeline, folder: pipeline | label >> RunUnits(
                             fn, list(tasks), label, folder, self.retries))

    def map_reduce(self, emit: Callable[[T], Iterable[tuple[K, V]]], tasks: Sequence[T],
                   reduce: Callable[[K, list[V]], R], keys: Sequence[K], label: str,
                   on_result: Callable[[R | UnitFailed], None] | None = None,
                   scratch: str | os.PathLike[str] | None = None) -> list[R | UnitFailed]:
        if not keys:
            return []
        return self._run(label, len(keys), on_result, scratch,
                         lambda pipeline, folder: pipeline | label >> ReduceByKey(
                             emit, list(tasks), reduce, list(keys), label, folder, self.retries))

    def _run(self, label: str, count: int, on_result: Callable[[Any], None] | None,
             scratch: str | os.PathLike[str] | None,
             build: Callable[[Any, ResultFolder], Any]) -> list[Any]:
        parent = str(scratch) if scratch is not None else tempfile.gettempdir()
        folder = ResultFolder(storage.join(parent, f"beam-{label}-{uuid.uuid4().hex[:12]}"))
        folder.create()
        watcher = ResultWatcher(folder, on_result)
        watcher.start()
        try:
            pipeline = beam.Pipeline(options=self.options)
            build(pipeline, folder)
            result = run_watched(lambda: _run_to_end(pipeline), label)
        except UalmError:
            raise
        except Exception as exc:
            raise UalmError(f"the Beam pipeline for {label} failed on {self.runner}: "
                            f"{type(exc).__name__}: {str(exc).splitlines()[0][:500]}",
                            fix="see the runner's log; finished units are kept, so rerun") from exc
        finally:
            watcher.stop()
        try:
            results = watcher.collect(count)
        finally:
            folder.remove()
        self.metrics[label] = query_counters(result, label)
        if self.report is not None:
            self.report.write(format_metrics(label, self.metrics[label]) + "\n")
        return results


def _run_to_end(pipeline: Any) -> Any:
    result = pipeline.run()
    result.wait_until_finish()
    return result


def _check_runner(runner: str) -> str:
    """The runner's class name; a clear error for names Beam does not know."""
    from apache_beam.runners.runner import create_runner

    try:
        return type(create_runner(runner)).__name__
    except ValueError as exc:
        raise UalmError(f"unknown Beam runner {runner!r}",
                        fix=f"one of: {', '.join(RUNNERS)}") from exc
    except ImportError as exc:  # e.g. DataflowRunner without apache-beam[gcp]
        raise UalmError(f"the Beam runner {runner} cannot load: {exc}",
                        fix="install its extra, e.g. pip install 'apache-beam[gcp]'") from exc


class RunUnits(beam.PTransform):
    """A map stage: spread the units over workers, run the stage function on each."""

    def __init__(self, fn: Callable[[Any], Any], tasks: list[Any], label: str,
                 folder: ResultFolder,
                 retries: int) -> None:
        super().__init__()
        self.fn, self.tasks, self.label, self.folder, self.retries = (
            fn, tasks, label, folder, retries)

    def expand(self, pipeline: Any) -> Any:
        return (pipeline
                | "Units" >> beam.Create(list(range(len(self.tasks))))
                | "Spread" >> beam.Reshuffle()
                | "Run" >> beam.ParDo(_RunUnit(self.fn, self.tasks, self.label, self.folder,
                                               self.retries)))


class ReduceByKey(beam.PTransform):
    """A global stage: emit (key, value) per unit, GroupByKey, reduce per key. One marker per
    key makes keys with no values reduce too (to an empty result, written like any other)."""

    def __init__(self, emit: Callable[[Any], Iterable[tuple[Any, Any]]], tasks: list[Any],
                 reduce: Callable[[Any, list[Any]], Any], keys: list[Any], label: str,
                 folder: ResultFolder, retries: int) -> None:
        super().__init__()
        self.emit, self.tasks, self.reduce, self.keys = emit, tasks, reduce, keys
        self.label, self.folder, self.retries = label, folder, retries

    def expand(self, pipeline: Any) -> Any:
        wanted = set(self.keys)
        emitted = (pipeline
                   | "Map units" >> beam.Create(list(range(len(self.tasks))))
                   | "Spread" >> beam.Reshuffle()
                   | "Emit" >> beam.FlatMap(_emit_tagged, self.emit, self.tasks, wanted))
        markers = pipeline | "Markers" >> beam.Create(
            [(key, (False, None)) for key in self.keys])
        index = {key: i for i, key in enumerate(self.keys)}
        return ((emitted, markers)
                | "Join" >> beam.Flatten()
                | "Shuffle" >> beam.GroupByKey()
                | "Reduce" >> beam.ParDo(_ReduceGroup(self.reduce, index, self.label,
                                                      self.folder, self.retries)))


def _emit_tagged(unit: int, emit: Callable[[Any], Iterable[tuple[Any, Any]]], tasks: list[Any],
                 wanted: set[Any]) -> Iterable[tuple[Any, tuple[bool, Any]]]:
    for key, value in emit(tasks[unit]):
        if key in wanted:
            yield key, (True, value)


class _Recording(beam.DoFn):
    """Writes each unit's result where the driver reads it, and counts it in Beam metrics."""

    def __init__(self, label: str, folder: ResultFolder, retries: int) -> None:
        self.label, self.folder, self.retries = label, folder, retries

    def setup(self) -> None:
        from ualm.redact import redact_logs

        redact_logs()  # the SDK worker's log records (a failed bundle's traceback) masked too

    def record(self, index: int, result: Any) -> None:
        self.folder.put(index, result)  # a retried bundle rewrites the same result: harmless
        Metrics.counter(self.label, "units").inc()
        if isinstance(result, UnitFailed):
            Metrics.counter(self.label, "failed_units").inc()
        elif isinstance(result, dict):
            for name, value in counters_of(result).items():
                Metrics.counter(self.label, name).inc(value)


class _RunUnit(_Recording):
    def __init__(self, fn: Callable[[Any], Any], tasks: list[Any], label: str,
                 folder: ResultFolder,
                 retries: int) -> None:
        super().__init__(label, folder, retries)
        self.fn, self.tasks = fn, tasks

    def process(self, unit: int) -> Iterable[int]:
        self.record(unit, call_with_retries(self.fn, self.tasks[unit], retries=self.retries))
        yield unit


class _ReduceGroup(_Recording):
    def __init__(self, reduce: Callable[[Any, list[Any]], Any], index: dict[Any, int],
                 label: str, folder: ResultFolder, retries: int) -> None:
        super().__init__(label, folder, retries)
        self.reduce, self.index = reduce, index

    def process(self, group: tuple[Any, Iterable[tuple[bool, Any]]]) -> Iterable[int]:
        key, tagged = group
        values = [value for real, value in tagged if real]
        self.record(self.index[key], call_with_retries(self.reduce, key, values,
                                                       retries=self.retries))
        yield self.index[key]
