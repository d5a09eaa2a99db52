"""What became of each input of an ingest unit: the outcome record, and the unit's three tables
(inputs, kept segments, rejects) and summary written from the outcomes."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ualm.config import BuildConfig
from ualm.filters.base import Rejection
from ualm.inputs.records import InputRecord
from ualm.manifests import schema
from ualm.manifests.layout import CorpusLayout
from ualm.redact import env_secrets, redact_text, redact_url


@dataclass
class InputOutcome:
    """What happened to one input inside its unit."""

    record: InputRecord
    kept: list[dict[str, Any]] = field(default_factory=list)
    dropped: list[dict[str, Any]] = field(default_factory=list)
    rejection: Rejection | None = None
    seconds: float | None = None
    fingerprint: str | None = None
    dropped_captions: list[tuple[str, Rejection]] = field(default_factory=list)
    chromaprint: np.ndarray | None = None
    """Acoustic fingerprint of the decoded audio, for near-duplicate detection."""
    source_quality: tuple[bool, int, int] | None = None
    """(lossless container, native rate, native channels): which near-copy survives."""


def write_unit_tables(layout: CorpusLayout, unit: int, outcomes: list[InputOutcome],
                  config: BuildConfig) -> None:
    inputs, segments, rejects = [], [], []
    buckets = config.work.dedup_buckets
    secrets = env_secrets()
    for o in outcomes:
        r = o.record
        kept = o.rejection is None
        inputs.append({
            "input_index": r.index, "input_id": r.input_id,
            "status": "kept" if kept else "rejected",
            "reason": None if kept else o.rejection.reason,
            "seconds": o.seconds, "kept_seconds": sum(s["seconds"] for s in o.kept),
            "kept_segments": len(o.kept), "fingerprint": o.fingerprint if kept else None,
            "bucket": int(o.fingerprint[:8], 16) % buckets if kept else None,
            "chromaprint": o.chromaprint.tolist() if kept and o.chromaprint is not None else None,
            **_quality_columns(o.source_quality if kept else None),
            "record": _record_json(r, secrets),
        })
        segments.extend(o.kept)
        base = {"input_id": r.input_id, "input_index": r.index, "source": r.source,
                "path": r.path and redact_url(r.path)}
        if kept:  # a rejected input's captions are accounted for by the input's own row
            rejects.extend({**base, "level": "caption", "stage": why.stage, "reason": why.reason,
                            "detail": redact_text(why.detail, secrets), "seconds": 0.0}
                           for _, why in o.dropped_captions)
        if not kept:
            rejects.append({**base, "level": "input", "stage": o.rejection.stage,
                            "reason": o.rejection.reason,
                            "detail": redact_text(o.rejection.detail, secrets),
                            "seconds": o.seconds})
        else:
            rejects.extend(
                {**base, "key": d["key"], "level": "segment", "stage": d["reason"].split("/")[0],
                 "reason": d["reason"], "detail": redact_text(d["detail"], secrets),
                 "seconds": d["seconds"]}
                for d in o.dropped
            )
    layout.write_table(layout.unit_inputs(unit), schema.table(inputs, schema.UNIT_INPUTS))
    layout.write_table(layout.unit_segments(unit), schema.table(segments, schema.UNIT_SEGMENTS))
    layout.write_table(layout.rejects_part(unit), schema.table(rejects, schema.REJECTS))


def _quality_columns(quality: tuple[bool, int, int] | None) -> dict[str, Any]:
    if quality is None:
        return {}
    lossless, rate, channels = quality
    return {"lossless": lossless, "native_rate": rate, "native_channels": channels}


def _record_json(record: InputRecord, secrets: list[str]) -> str:
    """The record as later stages read it (ids, captions, provenance): no credentials, since
    the manifests and shards copy it; the fetch is over by now."""
    data = record.to_dict()
    for name in ("url", "path"):
        data[name] = data[name] and redact_url(data[name])
    data["extra"] = redact_text(data["extra"], secrets)
    data["reject_detail"] = redact_text(data["reject_detail"], secrets)
    return json.dumps(data, sort_keys=True, ensure_ascii=False)


def unit_summary(unit: int, outcomes: list[InputOutcome]) -> dict[str, Any]:
    kept = [o for o in outcomes if o.rejection is None]
    return {
        "unit": unit,
        "inputs": len(outcomes),
        "kept_inputs": len(kept),
        "rejected_inputs": len(outcomes) - len(kept),
        "kept_samples": sum(len(o.kept) for o in kept),
        "kept_seconds": sum(s["seconds"] for o in kept for s in o.kept),
        "reasons": dict(Counter(o.rejection.reason for o in outcomes if o.rejection)),
    }
