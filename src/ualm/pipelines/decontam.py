"""Evaluation decontamination of the corpus side: a map over ingest units, after the dedup
stages and before the shard plan, so no shard ever holds a contaminated clip.

Each unit's worker reads the evaluation fingerprints and captions (`decontam_eval`, written
once), then takes its own inputs that survived dedup: it joins each input's kept windows (the
staged FLAC payloads, at the corpus rate) and fingerprints them; an input whose audio copies an
evaluation clip, wholly or in part, is rejected (`decontam/eval_audio`). Of the others, each
caption that copies an evaluation caption is dropped (`decontam/eval_caption`, one row per
caption); an input left with no caption is rejected with that reason.

Outputs per unit: a decisions part (`dedup.load_decisions` reads it last: keeper -1 for a
rejected input, which the shard plan leaves out like a duplicate, or the captions left) and a
rejects part beside the ingest rejects, so `inputs = kept + rejected + duplicates` holds.
Memory per worker: the evaluation index (12 bytes per item, about 620 items per 10 s clip), the
unit's staged FLAC bytes and one decoded window at a time.
"""

from __future__ import annotations

import dataclasses
import json
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import pyarrow.dataset as ds

from ualm.audio.flac import decode_flac
from ualm.config import BuildConfig, DecontamConfig
from ualm.filters.eval_audio import EvalAudioIndex, slow_fingerprint
from ualm.filters.eval_captions import EvalCaptionIndex
from ualm.manifests import schema
from ualm.manifests.layout import CorpusLayout, write_done
from ualm.pipelines.caption_merge import decided_captions
from ualm.pipelines.dedup import load_decisions
from ualm.pipelines.staging import read_payloads

STAGE = "decontam"
AUDIO = "decontam/eval_audio"
CAPTION = "decontam/eval_caption"
REJECTED = -1
"""The keeper of an input decontamination rejected: no input, so it is in no shard."""


@dataclass(frozen=True)
class DecontamTask:
    corpus: str
    unit: int
    config: dict[str, Any]


@dataclass(frozen=True)
class EvalIndexes:
    audio: EvalAudioIndex
    clips: list[str]
    """`set/clip id` of each indexed fingerprint."""
    captions: EvalCaptionIndex
    caption_clips: list[str]


@lru_cache(maxsize=2)  # once per worker process, not once per unit
def eval_indexes(corpus: str, stamp: str, settings: str) -> EvalIndexes:
    """The evaluation indexes of a corpus (`stamp`: its recorded set digests, so an index
    built from an earlier reference is never reused; `settings`: the decontam config as
    JSON)."""
    config = DecontamConfig(**json.loads(settings))
    layout = CorpusLayout(corpus)
    names = [s["name"] for s in json.loads(stamp)]
    audio = layout.read_table(layout.eval_audio).to_pylist()
    captions = layout.read_table(layout.eval_captions).to_pylist()
    return EvalIndexes(
        EvalAudioIndex([np.asarray(r["fingerprint"], np.uint32) for r in audio],
                       config.max_bit_error, config.min_overlap, config.min_items),
        [f"{names[r['set']]}/{r['clip']}" for r in audio],
        EvalCaptionIndex([r["caption"] for r in captions], config.ngram,
                         config.caption_threshold, config.min_caption_words),
        [f"{names[r['set']]}/{r['clip']}" for r in captions])


def run_decontam_unit(task: DecontamTask) -> dict[str, Any]:
    config = BuildConfig.from_dict(task.config)
    layout = CorpusLayout(task.corpus)
    stamp = json.dumps([{k: s[k] for k in ("name", "digest")}
                        for s in layout.read_json(layout.eval_sets)], sort_keys=True)
    settings = json.dumps(dataclasses.asdict(config.decontam), sort_keys=True)
    indexes = eval_indexes(layout.location, stamp, settings)
    inputs = _surviving_inputs(layout, config, task.unit)
    audio = _input_audio(layout, task.unit, set(inputs))
    decisions, rejects = [], []
    counts = {AUDIO: 0, CAPTION: 0, "captions_dropped": 0}
    for index, row in sorted(inputs.items()):
        base = {"input_id": row["input_id"], "input_index": index, "source": row["source"],
                "path": row["path"], "stage": STAGE}
        found = None
        if index in audio:
            fingerprint = slow_fingerprint(audio[index], config.audio.sample_rate,
                                           config.decontam.max_seconds)
            found = indexes.audio.match(fingerprint)
        if found is not None:
            clip, error, offset, overlap = found
            detail = (f"copies {indexes.clips[clip]} (bit error {error:.3f} over {overlap} "
                      f"items at offset {offset})")
            rejects.append({**base, "level": "input", "reason": AUDIO, "detail": detail,
                            "seconds": row["kept_seconds"]})
            decisions.append({"input_index": index, "keeper_index": REJECTED, "captions": None})
            counts[AUDIO] += 1
            continue
        kept, kept_scores, dropped = [], [], []
        scores = row["caption_scores"] or [None] * len(row["captions"])
        for caption, score in zip(row["captions"], scores, strict=True):
            hit = indexes.captions.match(caption)
            if hit is None:
                kept.append(caption)
                kept_scores.append(score)
            else:
                dropped.append(f"{caption!r} copies {indexes.caption_clips[hit[0]]} "
                               f"({hit[1]:.0%} of its {indexes.captions.n}-grams)")
        if not dropped:
            continue
        counts["captions_dropped"] += len(dropped)
        if kept:
            rejects.extend({**base, "level": "caption", "reason": CAPTION, "detail": d,
                            "seconds": 0.0} for d in dropped)
            decisions.append({"input_index": index, "keeper_index": index, "captions": kept,
                              "caption_scores": kept_scores if row["caption_scores"] else None})
        else:
            rejects.append({**base, "level": "input", "reason": CAPTION,
                            "detail": "; ".join(dropped), "seconds": row["kept_seconds"]})
            decisions.append({"input_index": index, "keeper_index": REJECTED, "captions": None})
            counts[CAPTION] += 1
    outputs = [layout.decontam_decisions(task.unit), layout.decontam_rejects(task.unit)]
    layout.write_table(outputs[0], schema.table(decisions, schema.DEDUP))
    layout.write_table(outputs[1], schema.table(rejects, schema.REJECTS))
    summary = {"unit": task.unit, "checked": len(inputs), **counts}
    write_done(layout, STAGE, task.unit, outputs, summary)
    return summary


def _surviving_inputs(layout: CorpusLayout, config: BuildConfig, unit: int
                      ) -> dict[int, dict[str, Any]]:
    """The unit's kept inputs that no dedup stage made a duplicate, with their captions as
    dedup left them (a group's survivor holds the group's captions)."""
    table = layout.read_table(layout.unit_inputs(unit), schema=schema.UNIT_INPUTS,
                              columns=["input_index", "input_id", "kept_seconds", "record"],
                              filters=ds.field("status") == "kept")
    decisions = load_decisions(layout, config.work.dedup_buckets, decontam=False,
                               indexes=table.column("input_index").to_pylist())
    inputs = {}
    for row in table.to_pylist():
        index, decision = row["input_index"], decisions.get(row["input_index"])
        if decision is not None and decision["keeper_index"] != index:
            continue
        record = json.loads(row.pop("record"))
        captions, scores = decided_captions(decision, record)
        inputs[index] = {**row, "captions": list(captions), "caption_scores": scores,
                         "source": record["source"], "path": record["path"]}
    return inputs


def _input_audio(layout: CorpusLayout, unit: int, indexes: set[int]
                 ) -> dict[int, Iterator[np.ndarray]]:
    """Each input's kept audio windows in order, from the unit's staged payloads: FLAC bytes
    held, decoded one window at a time as the fingerprint takes them."""
    segments = layout.read_table(layout.unit_segments(unit), schema=schema.UNIT_SEGMENTS,
                                 columns=["key", "input_index", "segment", "modality"])
    order: dict[str, tuple[int, int]] = {
        r["key"]: (r["input_index"], r["segment"]) for r in segments.to_pylist()
        if r["modality"] == "audio" and r["input_index"] in indexes}
    windows: dict[int, list[tuple[int, bytes]]] = defaultdict(list)
    if order:
        with layout.open(layout.unit_payload(unit)) as source:
            for key, payload in read_payloads(source, set(order)):
                index, segment = order[key]
                windows[index].append((segment, payload))
    return {i: (decode_flac(flac)[0] for _, flac in sorted(found, key=lambda p: p[0]))
            for i, found in windows.items()}


def decontam_facts(layout: CorpusLayout, summary: dict[str, Any]) -> dict[str, Any]:
    """For corpus.json and the card: each evaluation set checked against (name, path, clips,
    captions, unreadable clips, digest), and the inputs each reason rejected and the
    captions dropped."""
    parts = layout.list(layout.manifest_folder("rejects"), "decontam-", ".parquet")
    dropped = 0
    if parts:
        levels = layout.read_table(parts, columns=["level"], schema=schema.REJECTS)
        dropped = levels.column("level").to_pylist().count("caption")
    return {"eval_sets": layout.read_json(layout.eval_sets),
            "rejected": {reason: summary["reasons"].get(reason, 0) for reason in (AUDIO, CAPTION)},
            "captions_dropped": dropped}
