"""Stages as data: what a stage of `ualm build` is, and the one loop that runs a list of them.

A `Stage` declares its name, its kind, what it reads and writes in the corpus, and its
functions; the loop knows nothing of any particular stage. Kinds:

- `map`: one unit function call per task (`tasks(ctx)`), each leaving a completion record;
- `reduce`: `unit` emits (key, value) pairs per task, `reduce(ctx)` decides each key (bucket)
  and leaves its record; an optional `merge` then runs once in the driver;
- `commit`: runs once in the driver and writes `corpus.json`; the stages before it are skipped
  when the corpus is already committed (a rerun of a finished build does no work).

Every stage's `check` runs before any stage starts, so a bad setting (a codec that will not
load) fails at once, not after hours of audio work.

>>> Stage("echo", "map", reads=(), writes=(), tasks=lambda ctx: [], unit=print).kind
'map'
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ualm.config import BuildConfig
from ualm.engines import Engine
from ualm.manifests.layout import CorpusLayout, read_done
from ualm.pipelines.stages import run_pending, run_pending_reduce

KINDS = ("map", "reduce", "commit")


@dataclass
class Context:
    """What stages see: the corpus, the config, how many ingest units the inputs make, the
    listing (None when a stage runs on a finished corpus), and what stages hand back."""

    layout: CorpusLayout
    config: BuildConfig
    units: int = 0
    listing: Any = None
    fresh: bool = False
    """This run created the plan: no completion record can exist, so none is looked up (on a
    store, one GET per unit and stage saved; a build that joins later still checks them, and a
    unit run twice writes the same bytes and keeps the first record)."""
    outputs: dict[str, Any] = field(default_factory=dict)


def _always(config: BuildConfig) -> bool:
    return True


@dataclass(frozen=True)
class Stage:
    """One stage of a build. `record(ctx)` names its completion records (its name by default);
    `index` numbers a map task or a reduce key."""

    name: str
    kind: str
    reads: tuple[str, ...]
    writes: tuple[str, ...]
    tasks: Callable[[Context], Sequence[Any]]
    unit: Callable[[Any], Any]
    index: Callable[[Any], int] = int
    enabled: Callable[[BuildConfig], bool] = _always
    check: Callable[[Context], None] | None = None
    on_failure: Callable[[Any, Any], dict[str, Any]] | None = None
    reduce: Callable[[Context], Callable[[Any, list[Any]], dict[str, Any]]] | None = None
    keys: Callable[[Context], Sequence[int]] | None = None
    merge: tuple[str, Callable[[CorpusLayout, BuildConfig], Any]] | None = None
    """(name, fn): runs once after the reduce; its summary lands in `ctx.outputs[name]`."""
    """(completion record name, driver function) of a step that follows a reduce."""
    finish: Callable[[Context, int], None] | None = None
    """Runs in the driver after the units, given how many were skipped."""
    record: Callable[[Context], str] | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"stage {self.name}: kind {self.kind!r} is not one of {KINDS}")
        if self.kind == "reduce" and (self.reduce is None or self.keys is None):
            raise ValueError(f"stage {self.name}: a reduce needs reduce and keys")


def _run_map(stage: Stage, engine: Engine, ctx: Context, name: str, progress: bool) -> int:
    return run_pending(engine, name, stage.unit, stage.tasks(ctx), ctx.layout, progress,
                       index=stage.index, on_failure=stage.on_failure, fresh=ctx.fresh)


def _run_reduce(stage: Stage, engine: Engine, ctx: Context, name: str, progress: bool) -> int:
    assert stage.reduce is not None and stage.keys is not None
    skipped = run_pending_reduce(engine, name, stage.unit, stage.tasks(ctx), stage.reduce(ctx),
                                 stage.keys(ctx), ctx.layout, progress, index=stage.index,
                                 fresh=ctx.fresh)
    if stage.merge is not None:
        merge_name, merge = stage.merge
        record = None if ctx.fresh else read_done(ctx.layout, merge_name, 0)  # fresh: none
        if record is None:
            ctx.outputs[merge_name] = merge(ctx.layout, ctx.config)
        else:
            ctx.outputs[merge_name] = record["summary"]
            skipped += 1
    return skipped


def _run_commit(stage: Stage, engine: Engine, ctx: Context, name: str, progress: bool) -> int:
    stage.unit(ctx)
    return 0


_RUNNERS = {"map": _run_map, "reduce": _run_reduce, "commit": _run_commit}


def run_stages(stages: Sequence[Stage], engine: Engine, ctx: Context, progress: bool) -> int:
    """Checks every enabled stage, then runs them in order; returns how many units were
    skipped because an earlier run had finished them."""
    enabled = [s for s in stages if s.enabled(ctx.config)]
    for stage in enabled:
        if stage.check is not None:
            stage.check(ctx)
    commit = next((i for i, s in enumerate(enabled) if s.kind == "commit"), -1)
    committed = commit >= 0 and ctx.layout.is_complete()
    skipped = ctx.units if committed else 0  # a committed corpus: its build stages all finished
    for position, stage in enumerate(enabled):
        if committed and position <= commit:
            continue
        name = stage.record(ctx) if stage.record is not None else stage.name
        done = _RUNNERS[stage.kind](stage, engine, ctx, name, progress)
        if stage.finish is not None:
            stage.finish(ctx, done)
        skipped += done
    return skipped
