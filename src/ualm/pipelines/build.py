"""`ualm build`: list the inputs, then run the stage list (`build_stages.BUILD_STAGES`: ingest,
exact, near and caption dedup, shard, commit, tokens) on one engine.

Each stage skips units whose completion record is valid, so a rerun after a crash redoes only
what was unfinished and ends with the same bytes as a clean run.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from ualm import __version__
from ualm.audio import isolation
from ualm.config import BuildConfig
from ualm.engines import Engine, engine_for
from ualm.errors import UalmError
from ualm.inputs.listing import InputListing, list_inputs
from ualm.inputs.units import auto_unit_size
from ualm.manifests.atomic import json_bytes
from ualm.manifests.inspect import summarize
from ualm.manifests.layout import WORK, CorpusLayout
from ualm.pipelines.build_stages import BUILD_STAGES
from ualm.pipelines.resources import check_output, output_errors, warn_if_short
from ualm.pipelines.stage_list import Context, run_stages


@dataclass(frozen=True)
class BuildResult:
    corpus: Path | str
    """The corpus folder, or its URL when it is in a store."""
    summary: dict[str, Any]
    skipped_units: int
    """Units found complete from an earlier run and not redone."""
    tokens: dict[str, Any] | None = None
    """The token set's record when the codec stage ran."""


def build_corpus(
    inputs: Sequence[str | Path],
    out: str | Path,
    config: BuildConfig | None = None,
    *,
    engine: str | Engine = "dask",
    scheduler: str | None = None,
    workers: int | None = None,
    beam_runner: str | None = None,
    beam_options: Sequence[str] = (),
    allow_roots: Sequence[str | Path] = (),
    progress: bool = True,
) -> BuildResult:
    """Builds (or resumes) a corpus, then tokenizes it unless `config.tokenize.enabled` is off.
    Returns once `corpus.json` is written. An unwritable output is refused before the inputs
    are listed (and before an engine starts); a full disk or a quota, met at any point, stops it
    with one line (`resources`)."""
    config = config or BuildConfig()
    layout = CorpusLayout(out)
    check_output(layout)
    with engine_for(engine, scheduler, workers, beam_runner, beam_options, progress) as runner:
        # the workers warm up (imports, decode processes) while the driver lists the inputs
        runner.prepare(partial(warm_worker, config.limits.isolate))
        listing = list_inputs(inputs, allow_roots, config.crawl, config.work.unit_size)
        config = resolved_for(config, listing.count)  # what every stage, the hash and corpus.json see
        with output_errors(layout, listing.count):
            fresh = _prepare_output(layout, config, listing)
            ctx = Context(layout, config, _count_units(listing, config), listing, fresh=fresh)
            committed = layout.is_complete()
            if not committed:
                warn_if_short(layout, listing.count)
            started = time.time()
            skipped = run_stages(BUILD_STAGES, runner, ctx, progress)
            if not committed:
                _log_run(layout, runner.name, started, skipped)
    summary = ctx.outputs.get("summary") or summarize(layout)
    where = Path(layout.root) if layout.local else layout.location
    return BuildResult(where, summary, skipped, ctx.outputs.get("tokens"))


def warm_worker(isolate: bool) -> None:
    """What a worker's first unit would otherwise wait for (`Engine.prepare`): the imports of
    every stage, made as the worker loads this function's module, and, when decoding is
    isolated, this thread's decode process. Never raises: a decode process that will not start
    fails the first unit instead, with its message."""
    if isolate:
        with contextlib.suppress(Exception):
            isolation.warm()


def plan_build(inputs: Sequence[str | Path], config: BuildConfig | None = None,
               allow_roots: Sequence[str | Path] = ()) -> dict[str, Any]:
    """What `build_corpus` would do with these inputs and config, from the listing's pass over
    the inputs' bytes (no row is parsed: rejects are known only once units run); writes
    nothing, starts no engine (`ualm build --dry-run`)."""
    config = config or BuildConfig()
    listing = list_inputs(inputs, allow_roots, config.crawl, config.work.unit_size)
    config = resolved_for(config, listing.count)
    return {"inputs": listing.count, "units": _count_units(listing, config),
            "unit_size": config.work.unit_size,
            "inputs_digest": listing.digest, "config_hash": config.hash(),
            "stages": [{"name": s.name, "kind": s.kind} for s in BUILD_STAGES
                       if s.enabled(config)]}


def resolved_for(config: BuildConfig, inputs: int) -> BuildConfig:
    """The config a build of `inputs` inputs hashes (an auto unit size resolved), e.g. to compare
    with the `config_hash` a corpus's plan recorded."""
    size = config.work.unit_size or auto_unit_size(inputs)
    return dataclasses.replace(config, work=dataclasses.replace(config.work, unit_size=size))


def _count_units(listing: InputListing, config: BuildConfig) -> int:
    return len(listing.units)


def _prepare_output(layout: CorpusLayout, config: BuildConfig, listing: InputListing) -> bool:
    """Creates the folder, or checks that an existing one belongs to the same inputs and config;
    True when this run created the plan (a fresh build: no unit can have finished before it).
    The plan file is created once (a conditional put on a store), so of two builds started into
    one prefix with different inputs, the second refuses (`check_output` ran before)."""
    state = {"config_hash": config.hash(), "inputs_digest": listing.digest,
             "inputs": listing.count}
    if not layout.exists(layout.plan_file):
        if any(name != WORK for name in layout.entries()):
            raise UalmError(f"output folder {layout.location} is not empty and holds no ualm "
                            "build", fix="choose an empty or new --out folder")
        if layout.write_once(layout.plan_file, json_bytes(state)):
            return True
    if layout.read_json(layout.plan_file) != state:
        raise UalmError(
            f"{layout.location} holds a corpus built from other inputs or another config",
            fix="use a new --out folder, or delete the old one to rebuild",
        )
    return False


def _log_run(layout: CorpusLayout, engine: str, started: float, skipped: int) -> None:
    line = json.dumps({"engine": engine, "started": started, "seconds": time.time() - started,
                       "skipped_units": skipped, "ualm_version": __version__})
    layout.append_line(layout.runs_log, line)
