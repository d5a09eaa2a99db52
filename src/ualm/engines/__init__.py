"""Engines decide where work units run; stage logic never knows which one called it."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator, Sequence

from ualm.engines.base import Engine, UnitFailed
from ualm.engines.local import LocalEngine
from ualm.errors import UalmError

ENGINES = ("local", "dask", "beam")


def make_engine(name: str, scheduler: str | None = None, workers: int | None = None,
                runner: str | None = None, options: Sequence[str] = (),
                report: bool = True) -> Engine:
    """Builds an engine by name; heavy engines import their framework only when chosen.
    `runner` and `options` (Beam pipeline options, passed through unchanged) are Beam's."""
    if scheduler and name != "dask":
        raise UalmError("--scheduler only applies to the dask engine", fix="add --engine dask")
    if (runner or options) and name != "beam":
        raise UalmError(f"--runner and pipeline options only apply to the beam engine "
                        f"(got {' '.join([*(['--runner', runner] if runner else []), *options])})",
                        fix="add --engine beam, or drop them")
    if name == "local":
        return LocalEngine()
    if name == "dask":
        from ualm.engines.dask import DaskEngine

        return DaskEngine(scheduler=scheduler, workers=workers)
    if name == "beam":
        from ualm.engines.beam import BeamEngine

        return BeamEngine(runner or "DirectRunner", options, workers=workers,
                          report=sys.stderr if report else None)
    raise UalmError(f"unknown engine {name!r}", fix=f"choose one of: {', '.join(ENGINES)}")


@contextlib.contextmanager
def engine_for(engine: str | Engine, scheduler: str | None = None, workers: int | None = None,
               runner: str | None = None, options: Sequence[str] = (),
               report: bool = True) -> Iterator[Engine]:
    """The engine to run on: `engine` itself when given one (whoever made it closes it), else
    one made here by name and closed on the way out."""
    if isinstance(engine, Engine):
        yield engine
        return
    made = make_engine(engine, scheduler, workers, runner, options, report)
    try:
        yield made
    finally:
        made.close()


__all__ = ["ENGINES", "Engine", "LocalEngine", "UnitFailed", "engine_for", "make_engine"]
