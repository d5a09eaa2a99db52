"""The ingest map: one work unit of input records → decoded, checked, windowed, FLAC-encoded
samples, plus an outcome for every input. Engine-free: a plain function of (task) → summary."""

from __future__ import annotations

import dataclasses
import hashlib
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ualm.audio.errors import AudioRejected
from ualm.audio.flac import encode_flac
from ualm.audio.isolation import open_input
from ualm.audio.sources import LOSSLESS_CONTAINERS
from ualm.config import BuildConfig
from ualm.filters.base import Rejection
from ualm.filters.captions import split_captions
from ualm.filters.chain import checks_for_unit
from ualm.filters.fingerprint import StreamingFingerprint
from ualm.filters.quality import quality_checks, rms_dbfs
from ualm.inputs.crawl.unit import UnitSources, is_fetched
from ualm.inputs.records import InputRecord
from ualm.inputs.units import UnitRef
from ualm.manifests.layout import CorpusLayout, write_done
from ualm.manifests.shards import safe_key
from ualm.pipelines.annotate import annotate_window, clip_embedding, judge_captions, score_windows
from ualm.pipelines.faults import maybe_fail
from ualm.pipelines.outcomes import InputOutcome, unit_summary, write_unit_tables
from ualm.pipelines.staging import PayloadWriter
from ualm.pipelines.unit_records import read_unit_records
from ualm.pipelines.windowing import DecodedStream, window_rejection, windows

if TYPE_CHECKING:
    from ualm.engines.base import UnitFailed

STAGE = "ingest"
ANNOTATION_BATCH = 8
"""Windows scored together by the batched models (VAD): 5x faster than one by one on CPU,
and at most 8 x 10 s of audio held (7.7 MB)."""
UNIT_FAILED = "engine/unit_failed"


@dataclass(frozen=True)
class IngestTask:
    """One unit's work, small and picklable: `ref` is what the worker reads (`inputs.units`)."""

    corpus: str
    unit: int
    config: dict[str, Any]
    ref: UnitRef
    renamed: bool | None = None  # whether the id reduce left it renames (None: look)


def run_ingest_unit(task: IngestTask) -> dict[str, Any]:
    """Processes one unit and leaves its outputs and completion record; returns its summary."""
    config = BuildConfig.from_dict(task.config)
    layout = CorpusLayout(task.corpus)
    maybe_fail(layout, STAGE, task.unit)
    records = read_unit_records(layout, task.ref, task.renamed)
    outcomes: list[InputOutcome] = []
    with (PayloadWriter(layout, layout.unit_payload(task.unit)) as payloads,
          UnitSources(records, config.crawl) as sources):  # fetches the unit's URLs at once
        sink = WindowSink(payloads, config)
        for record in records:
            outcomes.append(process_record(record, config, sink, sources))
        sink.flush()
    _settle(outcomes, config)
    return _complete(layout, task.unit, outcomes, config)


def fail_ingest_unit(task: IngestTask, failure: UnitFailed) -> dict[str, Any]:
    """Completes a unit that raised on every attempt: each of its inputs is rejected with the
    error, so the corpus accounts for them and the job goes on."""
    layout = CorpusLayout(task.corpus)
    detail = f"unit {task.unit} failed {failure.attempts} times: {failure.error}"
    outcomes = []
    for record in read_unit_records(layout, task.ref, task.renamed):
        rejection = (Rejection(record.reject_reason, record.reject_detail)
                     if record.reject_reason is not None else Rejection(UNIT_FAILED, detail))
        outcomes.append(InputOutcome(record, rejection=rejection))
    with PayloadWriter(layout, layout.unit_payload(task.unit)):
        pass  # an empty payload file, as a unit that kept nothing leaves
    return _complete(layout, task.unit, outcomes, BuildConfig.from_dict(task.config))


def _complete(layout: CorpusLayout, unit: int, outcomes: list[InputOutcome],
              config: BuildConfig) -> dict[str, Any]:
    """Writes the unit's tables, then its completion record (last: it vouches for the rest)."""
    write_unit_tables(layout, unit, outcomes, config)
    summary = unit_summary(unit, outcomes)
    write_done(layout, STAGE, unit,
               [layout.unit_payload(unit), layout.unit_segments(unit), layout.unit_inputs(unit),
                layout.rejects_part(unit)], summary)
    return summary


class WindowSink:
    """Where windows go once they pass the signal checks: held back in batches of
    ANNOTATION_BATCH across the unit's inputs for the batched models (VAD), then annotated,
    filtered, FLAC-encoded and stored, in the order they came. Outcomes are final only after
    the last flush (see `_settle`)."""

    def __init__(self, payloads: PayloadWriter, config: BuildConfig) -> None:
        self.payloads, self.config = payloads, config
        self.rate = config.audio.sample_rate
        self._pending: list[tuple[InputOutcome, np.ndarray, dict[str, Any]]] = []

    def add(self, outcome: InputOutcome, samples: np.ndarray, segment: dict[str, Any]) -> None:
        # a window may be a view of the decoder's block: held back, it needs its own copy
        self._pending.append((outcome, samples.copy() if samples.base is not None else samples,
                              segment))
        if len(self._pending) >= ANNOTATION_BATCH:
            self.flush()

    def flush(self) -> None:
        pending, self._pending = self._pending, []
        scores = score_windows([w for _, w, _ in pending], self.rate, self.config)
        for (outcome, samples, segment), score in zip(pending, scores, strict=True):
            samples, rejection = annotate_window(samples, self.rate, self.config, segment, score)
            if rejection is not None:
                outcome.dropped.append({**segment, "reason": rejection.reason,
                                        "detail": rejection.detail})
                continue
            payload = encode_flac(samples, self.rate)
            self.payloads.add(segment["key"], payload)
            outcome.kept.append({
                **segment, "rms_dbfs": rms_dbfs(samples), "peak": float(np.max(np.abs(samples))),
                "payload_bytes": len(payload),
                "payload_sha256": hashlib.sha256(payload).hexdigest(),
            })


def _settle(outcomes: list[InputOutcome], config: BuildConfig) -> None:
    """Each input's final state once all the unit's windows are stored: a rejected input keeps
    nothing (windows of an input found too long part way are discarded), one whose every window
    was dropped takes the dominant reason, and CLAP judges the captions of the rest."""
    for outcome in outcomes:
        outcome.dropped.sort(key=lambda d: d["segment"])  # checks and models drop in any order
        if outcome.rejection is not None:
            outcome.kept = []
        elif not outcome.kept and outcome.dropped:
            outcome.rejection = _dominant(outcome.dropped)
        elif not outcome.kept:  # only VAD segmentation leaves an input without windows
            outcome.rejection = Rejection(
                "vad/no_speech", f"no speech segment of {config.segment.vad_min_seconds:g} s "
                                 "or more")
    if config.clap.model:
        _judge_captions(outcomes, config)


def _judge_captions(outcomes: list[InputOutcome], config: BuildConfig) -> None:
    judged = [o for o in outcomes if o.rejection is None and o.record.captions
              and o.record.modality == "audio"]
    verdicts = judge_captions([(list(o.record.captions), clip_embedding(
        [w["clap_embedding"] for w in o.kept])) for o in judged], config)
    for outcome, (kept, scores, dropped) in zip(judged, verdicts, strict=True):
        outcome.dropped_captions.extend(dropped)
        if kept:
            outcome.record = dataclasses.replace(outcome.record, captions=tuple(kept),
                                                 caption_scores=tuple(scores))
        else:
            first = dropped[0][1]
            outcome.rejection = Rejection(first.reason, f"all {len(dropped)} captions dropped "
                                                        f"({first.detail} first)")
            outcome.kept = []


def process_record(record: InputRecord, config: BuildConfig, sink: WindowSink,
                   sources: UnitSources | None = None) -> InputOutcome:
    """Never raises for bad input: every failure becomes the outcome's rejection. URL and
    dataset records get their bytes from `sources` (the unit's fetches; made here if None).
    The outcome is final once `sink` is flushed and the outcome settled."""
    outcome = InputOutcome(record)
    if record.reject_reason is None and config.captions.enabled and record.captions:
        _check_captions(outcome, config)
    if outcome.rejection is not None:
        pass
    elif record.reject_reason is not None:
        outcome.rejection = Rejection(record.reject_reason, record.reject_detail)
    elif record.modality == "text":
        _ingest_text(outcome, sink)
    else:
        try:
            if is_fetched(record):  # a URL, a dataset row, an object store's path
                _ingest_fetched(outcome, config, sink, sources)
            else:
                _ingest_audio(outcome, config, sink)
        except AudioRejected as exc:
            outcome.rejection = Rejection(exc.reason, exc.detail)
        except Exception as exc:  # one bad file must not end the job; say what happened
            outcome.rejection = Rejection("decode/unexpected_error", f"{type(exc).__name__}: {exc}")
    return outcome


def _check_captions(outcome: InputOutcome, config: BuildConfig) -> None:
    """Keeps the captions that pass; an input left with none is rejected (captions are what
    its training samples are about), with the first caption's reason."""
    kept, dropped = split_captions(outcome.record.captions, config.captions)
    outcome.dropped_captions = dropped
    if kept:
        outcome.record = dataclasses.replace(outcome.record, captions=tuple(kept))
    else:
        first = dropped[0][1]
        detail = first.detail if len(dropped) == 1 else (
            f"all {len(dropped)} captions dropped ({first.reason} first: {first.detail})")
        outcome.rejection = Rejection(first.reason, detail)


def _ingest_fetched(outcome: InputOutcome, config: BuildConfig, sink: WindowSink,
                    sources: UnitSources | None) -> None:
    """Decodes a URL, dataset or object-store record from its local copy, named as listed."""
    if sources is None:
        with UnitSources([outcome.record], config.crawl) as own:
            return _ingest_fetched(outcome, config, sink, own)
    record = outcome.record
    try:
        outcome.record = dataclasses.replace(record, path=str(sources.obtain(record)))
        _ingest_audio(outcome, config, sink)
    except AudioRejected as exc:  # a decoder names the temporary copy: name the input
        raise sources.named(exc, record) from exc
    finally:
        outcome.record = record
        sources.release(record)


def _ingest_text(outcome: InputOutcome, sink: WindowSink) -> None:
    record = outcome.record
    payload = (record.messages or "").encode()
    key = safe_key(record.input_id)
    sink.flush()  # payloads stay in input order
    sink.payloads.add(key, payload)
    outcome.fingerprint = hashlib.sha256(b"text\0" + payload).hexdigest()
    outcome.seconds = 0.0
    outcome.kept.append({
        "key": key, "sample_id": record.input_id, "input_index": record.index, "segment": 0,
        "modality": "text", "offset": 0.0, "seconds": 0.0, "payload_bytes": len(payload),
        "payload_sha256": hashlib.sha256(payload).hexdigest(),
    })


def _ingest_audio(outcome: InputOutcome, config: BuildConfig, sink: WindowSink) -> None:
    record, quality, rate = outcome.record, config.quality, config.audio.sample_rate
    # 1 s blocks keep each worker's working set in its core's cache: two workers on two cores
    # ran about 5-9 % faster than with 5 s blocks (benchmarks/bench_build.py's clips).
    decoding = open_input(config.limits, record.path, target_rate=rate, start=record.start,
                          end=record.end, block_seconds=1.0)  # within one input's limits
    info = decoding.info
    if info.seconds is not None:
        stop = min(record.end, info.seconds) if record.end is not None else info.seconds
        outcome.seconds = max(stop - record.start, 0.0)
        if outcome.seconds > quality.max_input_seconds:
            outcome.rejection = Rejection(
                "quality/too_long", f"{outcome.seconds:.1f} s > {quality.max_input_seconds:g} s (header)")
            return
    window = round(config.segment.seconds * rate) if config.segment.seconds else None
    max_frames = quality.max_input_seconds * rate
    checks = [*quality_checks(quality), *checks_for_unit(dataclasses.asdict(config.filters))]
    fingerprint = None
    if config.near_dedup.enabled:
        fingerprint = StreamingFingerprint(rate, config.near_dedup.max_seconds)
        outcome.source_quality = (info.container in LOSSLESS_CONTAINERS, info.sample_rate,
                                  info.channels)
    base_key = safe_key(record.input_id)
    stream = DecodedStream(decoding.chunks(), max_frames, fingerprint)
    for n, start, samples in windows(stream, rate, window, config):
        segment = {"key": f"{base_key}__seg_{n:05d}", "sample_id": f"{record.input_id}::seg_{n}",
                   "input_index": record.index, "segment": n, "modality": "audio",
                   "offset": record.start + start / rate, "seconds": len(samples) / rate}
        rejection = window_rejection(n, samples, rate, window, config, checks)
        if rejection is not None:
            outcome.dropped.append({**segment, "reason": rejection.reason, "detail": rejection.detail})
            continue
        sink.add(outcome, samples, segment)
    if stream.too_long:
        outcome.rejection = Rejection(
            "quality/too_long", f"decoded past {quality.max_input_seconds:g} s")
        return
    outcome.seconds = stream.total / rate
    if fingerprint is not None:
        outcome.chromaprint = fingerprint.finish()
    if stream.total == 0:
        outcome.rejection = Rejection("quality/empty", "the file decodes to no samples")
    outcome.fingerprint = stream.sha256.hexdigest()


def _dominant(dropped: list[dict[str, Any]]) -> Rejection:
    """An input whose every window was dropped takes the reason covering most of its audio."""
    seconds: Counter[str] = Counter()
    for window in dropped:
        seconds[window["reason"]] += window["seconds"]
    reason = max(seconds, key=lambda r: (seconds[r], -list(seconds).index(r)))
    detail = next(w["detail"] for w in dropped if w["reason"] == reason)
    if len(dropped) > 1:
        detail = f"all {len(dropped)} windows dropped ({reason} first: {detail})"
    return Rejection(reason, detail)


