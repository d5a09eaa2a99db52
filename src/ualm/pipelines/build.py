"""`ualm build`: list inputs → ingest units (map) → exact dedup (reduce by fingerprint bucket)
→ shard plan (global, deterministic) → shard writers (map) → corpus.json.

Each stage skips units whose completion record is valid, so a rerun after a crash redoes only
what was unfinished and ends with the same bytes as a clean run.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from ualm import __version__
from ualm.config import SCHEMA_VERSION, BuildConfig
from ualm.engines import Engine, make_engine
from ualm.errors import UalmError
from ualm.inputs.listing import InputListing, list_inputs
from ualm.manifests.card import write_card
from ualm.manifests.inspect import summarize
from ualm.manifests.layout import CorpusLayout, atomic_write_json, read_done
from ualm.pipelines import caption_dedup, near_dedup
from ualm.pipelines.caption_dedup import (
    CaptionTask,
    emit_caption_bands,
    merge_caption_groups,
    reduce_caption_bucket,
)
from ualm.pipelines.dedup import FingerprintTask, emit_fingerprints, reduce_bucket
from ualm.pipelines.ingest import IngestTask, fail_ingest_unit, run_ingest_unit
from ualm.pipelines.near_dedup import (
    BandTask,
    emit_bands,
    merge_near_duplicates,
    reduce_near_bucket,
)
from ualm.pipelines.shard import plan as plan_shards
from ualm.pipelines.shard import run_shard
from ualm.pipelines.stages import run_pending, run_pending_reduce


@dataclass(frozen=True)
class BuildResult:
    corpus: Path
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
    Returns once `corpus.json` is written."""
    config = config or BuildConfig()
    layout = CorpusLayout(out)
    listing = list_inputs(inputs, allow_roots, config.crawl)
    _prepare_output(layout, config, listing)
    if config.tokenize.enabled:
        from ualm.pipelines.tokens import check_codec

        check_codec(config.tokenize)  # a bad codec fails now, not after the audio stage
    started = time.time()
    owned = not isinstance(engine, Engine)
    runner = (make_engine(engine, scheduler, workers, beam_runner, beam_options, report=progress)
              if owned else engine)
    try:
        if layout.corpus_file.is_file():
            skipped, summary = _count_units(listing, config), summarize(layout.root)
        else:
            skipped = _run_stages(runner, layout, config, listing, progress)
            summary = _finalize(layout, config, listing)
            _log_run(layout, runner.name, started, skipped)
        tokens = None
        if config.tokenize.enabled:
            from ualm.pipelines.tokens import tokenize_corpus

            tokens = tokenize_corpus(layout.root, config.tokenize, engine=runner, progress=progress)
    finally:
        if owned:
            runner.close()
    return BuildResult(layout.root, summary, skipped, tokens)


def _count_units(listing: InputListing, config: BuildConfig) -> int:
    return -(-len(listing.records) // config.work.unit_size)


def _run_stages(engine: Engine, layout: CorpusLayout, config: BuildConfig,
                listing: InputListing, progress: bool) -> int:
    size = config.work.unit_size
    units = _count_units(listing, config)
    ingest = [
        IngestTask(str(layout.root), u, config.to_dict(),
                   tuple(r.to_dict() for r in listing.records[u * size:(u + 1) * size]))
        for u in range(units)
    ]
    skipped = run_pending(engine, "ingest", run_ingest_unit, ingest, layout, progress,
                          index=lambda t: t.unit, on_failure=fail_ingest_unit)
    fingerprints = [FingerprintTask(str(layout.root), u) for u in range(units)]
    skipped += run_pending_reduce(
        engine, "dedup", emit_fingerprints, fingerprints, partial(reduce_bucket, str(layout.root)),
        list(range(config.work.dedup_buckets)), layout, progress, index=int)
    if config.near_dedup.enabled:
        skipped += _near_dedup(engine, layout, config, units, progress)
    if config.caption_dedup.enabled:
        skipped += _caption_dedup(engine, layout, config, units, progress)
    shards = plan_shards(layout, config, units)
    skipped += run_pending(engine, "shard", run_shard, shards, layout, progress,
                           index=lambda t: t.stage_index)
    return skipped


def _near_dedup(engine: Engine, layout: CorpusLayout, config: BuildConfig, units: int,
                progress: bool) -> int:
    tasks = [BandTask(str(layout.root), u, config.to_dict()) for u in range(units)]
    reduce = partial(reduce_near_bucket, str(layout.root), config.near_dedup.max_bit_error)
    return _lsh_step(engine, layout, config, progress, near_dedup.STAGE, emit_bands, tasks,
                     reduce, config.near_dedup.buckets, near_dedup.MERGE_STAGE,
                     merge_near_duplicates)


def _caption_dedup(engine: Engine, layout: CorpusLayout, config: BuildConfig, units: int,
                   progress: bool) -> int:
    tasks = [CaptionTask(str(layout.root), u, config.to_dict()) for u in range(units)]
    reduce = partial(reduce_caption_bucket, str(layout.root), config.caption_dedup.threshold)
    return _lsh_step(engine, layout, config, progress, caption_dedup.STAGE, emit_caption_bands,
                     tasks, reduce, config.caption_dedup.buckets, caption_dedup.MERGE_STAGE,
                     merge_caption_groups)


def _lsh_step(engine: Engine, layout: CorpusLayout, config: BuildConfig, progress: bool,
              stage: str, emit: Callable[[Any], Any], tasks: list[Any],
              reduce: Callable[[int, list[Any]], dict[str, Any]], buckets: int, merge_stage: str,
              merge: Callable[[CorpusLayout, BuildConfig], Any]) -> int:
    """A global near-duplicate step: the keyed reduce over LSH buckets, then the driver-side
    merge of the pairs it found into groups; both skip themselves when an earlier run
    finished them. Returns how many units were skipped."""
    skipped = run_pending_reduce(engine, stage, emit, tasks, reduce, list(range(buckets)),
                                 layout, progress, index=int)
    if read_done(layout, merge_stage, 0) is None:
        merge(layout, config)
    else:
        skipped += 1
    return skipped


def _prepare_output(layout: CorpusLayout, config: BuildConfig, listing: InputListing) -> None:
    """Creates the folder, or checks that an existing one belongs to the same inputs and config."""
    try:
        layout.work.mkdir(parents=True, exist_ok=True)
        probe = layout.work / f".write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise UalmError(f"cannot write to output folder {layout.root}: {exc.strerror}",
                        fix="choose a writable --out folder") from exc
    state = {"config_hash": config.hash(), "inputs_digest": listing.digest,
             "inputs": len(listing.records)}
    if layout.plan_file.is_file():
        previous = json.loads(layout.plan_file.read_text())
        if previous != state:
            raise UalmError(
                f"{layout.root} holds a corpus built from other inputs or another config",
                fix="use a new --out folder, or delete the old one to rebuild",
            )
    elif any(p.name != "_work" for p in layout.root.iterdir()):
        raise UalmError(f"output folder {layout.root} is not empty and holds no ualm build",
                        fix="choose an empty or new --out folder")
    else:
        atomic_write_json(layout.plan_file, state)


def _finalize(layout: CorpusLayout, config: BuildConfig, listing: InputListing) -> dict[str, Any]:
    summary = summarize(layout.root, expected_inputs=len(listing.records))
    corpus = {
        "schema_version": SCHEMA_VERSION,
        "ualm_version": __version__,
        "config": config.audio_dict(),
        "config_hash": config.hash(),
        "inputs": {"description": listing.description, "digest": listing.digest,
                   "rows": len(listing.records)},
        "counts": {k: summary[k] for k in ("inputs", "kept", "rejected", "duplicates",
                                           "samples", "hours", "shards", "text_shards")},
        "reasons": summary["reasons"],
    }
    write_card(layout, corpus, summary)
    atomic_write_json(layout.corpus_file, corpus)
    for unit in range(_count_units(listing, config)):
        layout.unit_payload(unit).unlink(missing_ok=True)  # staged bytes now live in the shards
    return summary


def _log_run(layout: CorpusLayout, engine: str, started: float, skipped: int) -> None:
    line = json.dumps({"engine": engine, "started": started, "seconds": time.time() - started,
                       "skipped_units": skipped, "ualm_version": __version__})
    with open(layout.runs_log, "a") as handle:
        handle.write(line + "\n")
