"""The evaluation side of decontamination, computed once per corpus: every evaluation clip's
slowed fingerprint and every evaluation caption, written to the corpus's work area for the
units' workers to read (one task: evaluation sets are small, thousands of clips).

An evaluation set is anything `ualm build` takes as input (a folder of audio, a JSONL / CSV /
parquet manifest with `path` and `caption` or `captions`, `start` and `end` for a clip cut from
a longer file). A clip that does not decode is counted (`unreadable`) and named in the card,
never silently left out.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from ualm.audio.decode import iter_decoded
from ualm.audio.errors import AudioRejected
from ualm.config import BuildConfig
from ualm.errors import UalmError
from ualm.filters.eval_audio import slow_fingerprint
from ualm.inputs.listing import list_inputs
from ualm.manifests import schema
from ualm.manifests.layout import CorpusLayout, write_done
from ualm.manifests.storage import is_remote
from ualm.redact import redact_text

STAGE = "decontam-eval"
EVAL_AUDIO = schema.pa.schema([("set", schema.pa.int32()), ("clip", schema.pa.string()),
                               ("fingerprint", schema.pa.list_(schema.pa.uint32()))])
EVAL_CAPTIONS = schema.pa.schema([("set", schema.pa.int32()), ("clip", schema.pa.string()),
                                  ("caption", schema.pa.string())])
UNREADABLE_SHOWN = 5
"""Unreadable clips named per set (the rest are counted)."""


@dataclass(frozen=True)
class EvalTask:
    corpus: str
    config: dict[str, Any]


def resolved(path: str) -> str:
    """An evaluation set's path as a worker elsewhere can open it."""
    return path if is_remote(path) else os.path.abspath(path)


def check_eval_sets(config: BuildConfig) -> None:
    """Every evaluation set lists (a clear error for a missing or unreadable one) before any
    unit runs."""
    for path in config.decontam.eval_sets:
        listing = list_inputs([resolved(path)], crawl=config.crawl)
        if listing.count == 0:
            raise UalmError(f"evaluation set {path} holds no clip",
                            fix="point --eval-set at a folder of audio or a manifest")


def prepare_eval_sets(task: EvalTask) -> dict[str, Any]:
    """Fingerprints and captions of every evaluation set, and each set's counts and digest."""
    config = BuildConfig.from_dict(task.config)
    layout = CorpusLayout(task.corpus)
    audio_rows, caption_rows, sets = [], [], []
    for number, path in enumerate(config.decontam.eval_sets):
        digest = hashlib.sha256()
        # the card copies the path: no credentials in it
        facts: dict[str, Any] = {"name": os.path.basename(path.rstrip("/")) or path,
                                 "path": redact_text(path), "clips": 0, "fingerprinted": 0,
                                 "captions": 0, "unreadable": 0, "unreadable_examples": []}
        for record in list_inputs([resolved(path)], crawl=config.crawl):
            facts["clips"] += 1
            for caption in record.captions:
                caption_rows.append({"set": number, "clip": record.input_id, "caption": caption})
                digest.update(b"\0c" + caption.encode())
            facts["captions"] += len(record.captions)
            if record.modality != "audio":
                continue
            fingerprint, problem = _fingerprint(record, config)
            if problem is not None:
                facts["unreadable"] += 1
                if len(facts["unreadable_examples"]) < UNREADABLE_SHOWN:
                    facts["unreadable_examples"].append(f"{record.input_id}: {problem}")
                continue
            facts["fingerprinted"] += 1
            audio_rows.append({"set": number, "clip": record.input_id,
                               "fingerprint": fingerprint.tolist()})
            digest.update(b"\0a" + fingerprint.astype("<u4").tobytes())
        facts["digest"] = digest.hexdigest()[:16]
        sets.append(facts)
    layout.write_table(layout.eval_audio, schema.table(audio_rows, EVAL_AUDIO))
    layout.write_table(layout.eval_captions, schema.table(caption_rows, EVAL_CAPTIONS))
    layout.write_json(layout.eval_sets, sets)
    summary = {"sets": len(sets), "clips": sum(s["clips"] for s in sets),
               "unreadable": sum(s["unreadable"] for s in sets)}
    write_done(layout, STAGE, 0, [layout.eval_audio, layout.eval_captions, layout.eval_sets],
               summary)
    return summary


def _fingerprint(record: Any, config: BuildConfig) -> tuple[np.ndarray, str | None]:
    """The clip's slowed fingerprint at the corpus rate, or why it has none."""
    empty = np.zeros(0, np.uint32)
    if record.reject_reason is not None:
        return empty, f"{record.reject_reason} ({record.reject_detail})"
    if record.path is None:
        return empty, "not a file (evaluation clips are read from files or store paths)"
    rate = config.audio.sample_rate
    try:
        blocks = iter_decoded(record.path, target_rate=rate, start=record.start,
                              end=record.end, block_seconds=1.0)
        fingerprint = slow_fingerprint(blocks, rate, config.decontam.max_seconds)
    except AudioRejected as exc:
        return empty, f"{exc.reason}: {exc.detail}"
    if len(fingerprint) < config.decontam.min_items:
        return empty, f"too short to fingerprint ({len(fingerprint)} items)"
    return fingerprint, None


def load_eval_sets(layout: CorpusLayout) -> list[dict[str, Any]]:
    """What `prepare_eval_sets` recorded of each set (for the card)."""
    return layout.read_json(layout.eval_sets)
