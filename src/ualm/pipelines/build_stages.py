"""The stages of `ualm build`, in order: the list the build loop runs (`BUILD_STAGES`).

ids (reduce: unique input ids over id buckets) → ingest (map over input units) → exact dedup (reduce over fingerprint buckets) → near dedup and
caption dedup (reduces over LSH buckets, then a merge; each when its config enables it) →
evaluation decontamination (the evaluation sets' fingerprints and captions as one task, then a
map over input units; when `decontam.eval_sets` names any) → shard
(map over the shard plan) → commit (`corpus.json` and the card) → tokens (map over audio shards,
when `tokenize.enabled`). A new stage is one declaration here and one entry in the list.
"""

from __future__ import annotations

import dataclasses
from functools import partial
from typing import Any

from ualm import __version__
from ualm.config import SCHEMA_VERSION
from ualm.filters import chain as filter_chain
from ualm.manifests import names, remote
from ualm.manifests.card import write_card
from ualm.manifests.inspect import summarize
from ualm.manifests.layout import read_done
from ualm.pipelines import (
    caption_dedup,
    decontam,
    decontam_eval,
    dedup,
    ingest,
    input_ids,
    near_dedup,
    shard,
)
from ualm.pipelines.stage_list import Context, Stage
from ualm.pipelines.tokens import TOKENS
from ualm.pipelines.unit_records import write_unit_records
from ualm.redact import redact_text


def _id_tasks(ctx: Context) -> list[input_ids.IdTask]:
    """A task per unit: its reference. Inputs the driver lists record by record (CSV, sources)
    are written to their units' record files first."""
    plan = ctx.listing.units
    write_unit_records(ctx.layout, plan,
                       lambda u: read_done(ctx.layout, ingest.STAGE, u) is not None)
    buckets = ctx.config.work.dedup_buckets
    return [input_ids.IdTask(ctx.layout.location, ref, buckets) for ref in plan]


def _ingest_tasks(ctx: Context) -> list[ingest.IngestTask]:
    """A task per unit: its reference (its worker reads the rows and the id reduce's renames)."""
    config = ctx.config.to_dict()
    merged = ctx.outputs.get(input_ids.MERGE_STAGE)
    renamed = None if merged is None else set(merged["units"])
    return [ingest.IngestTask(ctx.layout.location, ref.unit, config, ref,
                              None if renamed is None else ref.unit in renamed)
            for ref in ctx.listing.units]


def _check_filters(ctx: Context) -> None:
    """Every filter the config names loads and takes its options, before any unit runs."""
    filter_chain.checks(dataclasses.asdict(ctx.config.filters))


IDS = Stage(
    input_ids.STAGE, "reduce", reads=("inputs",), writes=("id renames",),
    tasks=_id_tasks, unit=input_ids.emit_ids,
    reduce=lambda ctx: partial(input_ids.reduce_ids, ctx.layout.location),
    keys=lambda ctx: list(range(ctx.config.work.dedup_buckets)),
    merge=(input_ids.MERGE_STAGE, input_ids.merge_renames))

INGEST = Stage(
    "ingest", "map", reads=("inputs", "id renames"), writes=("unit segments", "unit payloads", "rejects"),
    tasks=_ingest_tasks, unit=ingest.run_ingest_unit, index=lambda t: t.unit,
    on_failure=ingest.fail_ingest_unit, check=_check_filters)

EXACT_DEDUP = Stage(
    dedup.STAGE, "reduce", reads=("unit segments",), writes=("dedup decisions",),
    tasks=lambda ctx: [dedup.FingerprintTask(ctx.layout.location, u) for u in range(ctx.units)],
    unit=dedup.emit_fingerprints,
    reduce=lambda ctx: partial(dedup.reduce_bucket, ctx.layout.location),
    keys=lambda ctx: list(range(ctx.config.work.dedup_buckets)))

NEAR_DEDUP = Stage(
    near_dedup.STAGE, "reduce", reads=("unit segments", "dedup decisions"),
    writes=("near-duplicate pairs", "near-duplicate groups"),
    tasks=lambda ctx: [near_dedup.BandTask(ctx.layout.location, u, ctx.config.to_dict())
                       for u in range(ctx.units)],
    unit=near_dedup.emit_bands,
    reduce=lambda ctx: partial(near_dedup.reduce_near_bucket, ctx.layout.location,
                               ctx.config.near_dedup.max_bit_error),
    keys=lambda ctx: list(range(ctx.config.near_dedup.buckets)),
    merge=(near_dedup.MERGE_STAGE, near_dedup.merge_near_duplicates),
    enabled=lambda config: config.near_dedup.enabled)

CAPTION_DEDUP = Stage(
    caption_dedup.STAGE, "reduce", reads=("unit segments", "dedup decisions"),
    writes=("caption pairs", "caption groups"),
    tasks=lambda ctx: [caption_dedup.CaptionTask(ctx.layout.location, u, ctx.config.to_dict())
                       for u in range(ctx.units)],
    unit=caption_dedup.emit_caption_bands,
    reduce=lambda ctx: partial(caption_dedup.reduce_caption_bucket, ctx.layout.location,
                               ctx.config.caption_dedup.threshold),
    keys=lambda ctx: list(range(ctx.config.caption_dedup.buckets)),
    merge=(caption_dedup.MERGE_STAGE, caption_dedup.merge_caption_groups),
    enabled=lambda config: config.caption_dedup.enabled)

DECONTAM_EVAL = Stage(
    decontam_eval.STAGE, "map", reads=("evaluation sets",), writes=("evaluation references",),
    tasks=lambda ctx: [decontam_eval.EvalTask(ctx.layout.location, ctx.config.to_dict())],
    unit=decontam_eval.prepare_eval_sets, index=lambda t: 0,
    check=lambda ctx: decontam_eval.check_eval_sets(ctx.config),
    enabled=lambda config: config.decontam.enabled)

DECONTAM = Stage(
    decontam.STAGE, "map", reads=("unit segments", "unit payloads", "dedup decisions",
                                  "evaluation references"),
    writes=("decontamination decisions", "rejects"),
    tasks=lambda ctx: [decontam.DecontamTask(ctx.layout.location, u, ctx.config.to_dict())
                       for u in range(ctx.units)],
    unit=decontam.run_decontam_unit, index=lambda t: t.unit,
    enabled=lambda config: config.decontam.enabled)

SHARD = Stage(
    shard.STAGE, "map", reads=("unit segments", "unit payloads", "dedup decisions"),
    writes=("audio and text shards", "samples manifests", "duplicates manifests"),
    tasks=lambda ctx: shard.plan(ctx.layout, ctx.config, ctx.units), unit=shard.run_shard,
    index=lambda t: t.stage_index)


def commit(ctx: Context) -> dict[str, Any]:
    """Writes `corpus.json` (the commit: readers trust only what it lists) and the card, then
    drops the staged payloads, whose bytes now live in the shards, and the units' record files,
    and on S3 aborts unfinished uploads under the prefix."""
    layout, config, listing = ctx.layout, ctx.config, ctx.listing
    summary = summarize(layout, expected_inputs=listing.count)
    corpus = {
        "schema_version": SCHEMA_VERSION,
        "ualm_version": __version__,
        "config": config.audio_dict(),
        "config_hash": config.hash(),
        "inputs": {"description": redact_text(listing.description), "digest": listing.digest,
                   "rows": listing.count},
        "counts": {k: summary[k] for k in ("inputs", "kept", "rejected", "duplicates",
                                           "samples", "hours", "shards", "text_shards")},
        "reasons": summary["reasons"],
    }
    if config.decontam.enabled:  # the sets checked against and what each reason removed
        corpus["decontamination"] = decontam.decontam_facts(layout, summary)
    declared = filter_chain.enabled(dataclasses.asdict(config.filters))
    if declared:  # provenance of the filters switched on by name (absent when none is)
        corpus["filters"] = [{"name": f.name, "description": f.description,
                              "reasons": list(f.reasons)} for f in declared]
    write_card(layout, corpus, summary)
    layout.commit(corpus)
    # the record files go too: a URL list's records hold the URLs as fetched, credentials and all
    layout.remove(*[layout.unit_payload(unit) for unit in range(ctx.units)],
                  *[layout.unit_records(unit) for unit in range(ctx.units)])
    if not layout.local:  # what killed workers' large puts left behind
        remote.abort_uploads(layout.fs, layout.root)
    ctx.outputs["summary"] = summary
    return summary


COMMIT = Stage("commit", "commit", reads=("manifests",), writes=(names.CORPUS_FILE, names.CARD),
               tasks=lambda ctx: [], unit=commit)

BUILD_STAGES = (IDS, INGEST, EXACT_DEDUP, NEAR_DEDUP, CAPTION_DEDUP, DECONTAM_EVAL, DECONTAM,
                SHARD, COMMIT, TOKENS)
"""What `ualm build` runs, in order; disabled stages are left out by their `enabled`."""


def describe() -> list[dict[str, Any]]:
    """The stage list as data (name, kind, reads, writes)."""
    return [{"name": s.name, "kind": s.kind, "reads": list(s.reads), "writes": list(s.writes)}
            for s in BUILD_STAGES]
