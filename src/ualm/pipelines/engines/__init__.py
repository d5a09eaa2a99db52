"""Engines decide where work units run; stage logic never knows which one called it."""

from __future__ import annotations

from ualm.errors import UalmError
from ualm.pipelines.engines.base import Engine
from ualm.pipelines.engines.local import LocalEngine

ENGINES = ("local", "dask")


def make_engine(name: str, scheduler: str | None = None, workers: int | None = None) -> Engine:
    """Builds an engine by name; heavy engines import their framework only when chosen."""
    if name == "local":
        if scheduler:
            raise UalmError("--scheduler only applies to the dask engine", fix="add --engine dask")
        return LocalEngine()
    if name == "dask":
        from ualm.pipelines.engines.dask import DaskEngine

        return DaskEngine(scheduler=scheduler, workers=workers)
    raise UalmError(f"unknown engine {name!r}", fix=f"choose one of: {', '.join(ENGINES)}")


__all__ = ["ENGINES", "Engine", "LocalEngine", "make_engine"]
