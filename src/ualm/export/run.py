"""`ualm export ualm CORPUS OUT`: a corpus as the data directory UALM's own trainer reads
(`ualm.export.write` names its files; `ualm.export.mapping` maps our tasks to UALM's).

The audio is copied once, byte for byte, from the corpus's shards into plain tars; every listing
of a sample (a blend may list one several times) points at the same byte range. What UALM's
loader would lose without a word is counted per dataset and reported (`export_report.json`),
and samples it would drop (longer than its batch size) are left out, so the listed mixture is
the one it trains.
"""

from __future__ import annotations

import io
import math
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ualm.errors import UalmError
from ualm.export import blend as blending
from ualm.export import mapping
from ualm.export.mapping import UalmSample
from ualm.export.write import REPORT, UalmDir, ambiguous_ids
from ualm.manifests.layout import CorpusLayout
from ualm.manifests.shard_reader import load_json
from ualm.train.blend.spec import BlendSpec, load_blend

BATCH_SIZE = 16000
"""UALM's `train.yaml` batch size (in length-statistic units): longer samples are dropped."""
AUDIO_EXTENSIONS = ("flac", "wav")


@dataclass(frozen=True)
class AudioRef:
    """Where one audio file sits in the export's tars, and what it is."""

    tar: str
    offset: int
    size: int
    frames: int
    rate: int
    channels: int

    @property
    def duration(self) -> float:
        """Seconds such that UALM's `int(duration * rate)` reads every frame."""
        seconds = self.frames / self.rate
        while int(seconds * self.rate) < self.frames:
            seconds = math.nextafter(seconds, math.inf)
        return seconds


def export_ualm(corpus: str | Path, out: str | Path, blend: str | Path | BlendSpec | None = None,
                trainer_path: str | None = None, batch_size: int = BATCH_SIZE,
                seed: int = 0, tokenizer: str | None = None) -> dict[str, Any]:
    """Writes OUT and returns the export report (also written as OUT/export_report.json).
    `tokenizer`: a local tokenizer folder (the backbone's, e.g. Qwen2.5's) whose token counts
    the length statistics use; by default they are estimated (`mapping.estimate_tokens`)."""
    count = mapping.estimate_tokens if tokenizer is None else _counter(tokenizer)
    layout = CorpusLayout(corpus)
    layout.meta()
    spec = load_blend(blend) if isinstance(blend, (str, Path)) else blend
    dest = UalmDir(out, trainer_path)
    dest.claim()
    refs, samples = _copy_audio(layout, dest)
    for subset in ("text", "traces"):
        for shard in layout.shard_files(subset):
            for key, parts in layout.iter_samples(shard):
                samples.append((key, load_json(parts["json"]), False))
    losses: dict[str, Counter[str]] = defaultdict(Counter)
    kept: dict[str, list[tuple[UalmSample, int]]] = defaultdict(list)
    unmapped = Counter[str]()
    for key, meta, has_audio in samples:
        sample = mapping.map_sample(key, meta, has_audio)
        if sample is None or (sample.audio_key is not None and sample.audio_key not in refs):
            unmapped[str(meta.get("task") or "unknown")] += 1
            continue
        ref = refs.get(sample.audio_key) if sample.audio_key else None
        if ref is not None and ref.channels > 1:
            sample.losses.append("multichannel")
        size = mapping.length(sample, ref.frames / ref.rate if ref else 0.0, count)
        losses[sample.dataset].update(sample.losses)
        if size > batch_size:
            losses[sample.dataset]["too_long"] += 1
            continue
        kept[sample.dataset].append((sample, size))
    if not kept:
        raise UalmError(f"{layout.location} holds no sample UALM's trainer can read",
                        fix="export a corpus with audio or text samples")
    bad = ambiguous_ids({d: rows[0][0].ualm_task for d, rows in kept.items()})
    if bad:
        raise UalmError(f"UALM's trainer would mix up datasets {', '.join(bad)} (its stats "
                        "files are matched to manifests by the end of their names)",
                        fix="rename the sources so that no dataset name ends another's")
    report = _write(dest, refs, kept, spec, layout.location, seed)
    report.update(corpus=layout.location, out=dest.layout.location, trainer_path=dest.prefix,
                  batch_size=batch_size, blend=None if spec is None else str(blend),
                  lengths="estimated (UTF-8 bytes / 4)" if tokenizer is None else tokenizer,
                  not_exported=dict(sorted(unmapped.items())),
                  pairs_not_exported=_pairs(layout))
    for name, row in report["datasets"].items():
        row["ualm_would_drop"] = dict(sorted(losses[name].items()))
    report["ualm_would_drop"] = dict(sorted(sum(losses.values(), Counter[str]()).items()))
    report["warnings"] = warnings(report)
    report["complete"] = True
    dest.write_json(REPORT, report)
    return report


def _counter(tokenizer: str) -> Callable[[str], int]:
    from ualm.train.sequence.text_tokenizer import load_text_tokenizer

    encode = load_text_tokenizer(tokenizer).encode
    return lambda text: len(encode(text))


def _copy_audio(layout: CorpusLayout, dest: UalmDir
                ) -> tuple[dict[str, AudioRef], list[tuple[str, dict, bool]]]:
    """Every audio shard of the corpus as a plain tar of its audio files (same keys, same
    bytes); the byte range, rate and channels of each, and every sample's JSON."""
    import soundfile

    refs: dict[str, AudioRef] = {}
    samples: list[tuple[str, dict, bool]] = []
    for shard in layout.shard_files("audio"):
        name = f"audio/{Path(layout.relative(shard)).name}"
        found: list[tuple[str, str, Any]] = []
        with dest.layout.shard_writer(dest.path(name)) as writer:
            for key, parts in layout.iter_samples(shard):
                ext = next((e for e in AUDIO_EXTENSIONS if e in parts), None)
                meta = load_json(parts["json"])
                samples.append((key, meta, ext is not None))
                if ext is None:
                    continue
                data = bytes(parts[ext])
                writer.write({"__key__": key, ext: data})
                found.append((key, ext, soundfile.info(io.BytesIO(data))))
        for key, ext, info in found:
            offset, size = writer.ranges[f"{key}.{ext}"]
            refs[key] = AudioRef(name, offset, size, info.frames, info.samplerate,
                                 info.channels)
    return refs, samples


def _write(dest: UalmDir, refs: dict[str, AudioRef],
           kept: dict[str, list[tuple[UalmSample, int]]], spec: BlendSpec | None, corpus: str,
           seed: int) -> dict[str, Any]:
    """Listings per the blend, then the LMDB, manifests, stats and registry."""
    groups = {(rows[0][0].source, rows[0][0].task): len(rows) for rows in kept.values()}
    plans = blending.plan_epochs(spec, corpus, groups)
    entries: dict[str, dict[str, Any]] = {}
    datasets: dict[str, dict[str, Any]] = {}
    written: set[str] = set()
    for dataset, rows in sorted(kept.items()):
        first = rows[0][0]
        plan = plans[(first.source, first.task)]
        by_key = {s.key: (s, n) for s, n in rows}
        listed = blending.copies(sorted(by_key), plan.epochs, dataset, seed)
        ids = [blending.sample_id(dataset, k, c) for k, c in listed]
        for (key, _), sid in zip(listed, ids, strict=True):
            entries[sid] = _entry(by_key[key][0], refs, dest)
        tokens = sum(by_key[k][1] for k, _ in listed)
        datasets[dataset] = {"source": first.source, "task": first.task,
                             "ualm_task": first.ualm_task, "samples": len(rows),
                             "listed": len(ids), "epochs": round(plan.epochs, 6),
                             "blend_weight": plan.weight, "tokens": tokens,
                             "blend_tokens": None if plan.tokens_per_sample is None else
                             round(len(ids) * plan.tokens_per_sample)}
        if ids:
            written.add(dest.write_manifest(dataset, ids, first.audio_key is not None))
            written.add(dest.write_stats(first.ualm_task, dataset,
                                         ((i, by_key[k][1]) for i, (k, _) in zip(
                                             ids, listed, strict=True))))
    dest.remove_stale(written)
    listed_sets = [d for d, row in datasets.items() if row["listed"]]
    dest.write_registry(listed_sets)
    lmdb_bytes = dest.write_lmdb(entries.items())
    total = sum(row["tokens"] for row in datasets.values()) or 1
    blend_total = sum(row["blend_tokens"] or 0 for row in datasets.values()) or 1
    for row in datasets.values():
        row["token_share"] = round(row["tokens"] / total, 6)
        if row["blend_tokens"] is not None:  # the mixture in the blend's own token count
            row["blend_share"] = round(row["blend_tokens"] / blend_total, 6)
    return {"ualm_export": 1, "datasets": datasets, "samples_listed": len(entries),
            "budget_scale": None if spec is None else blending.scale(spec, plans),
            "audio_files": len(refs), "lmdb_bytes": lmdb_bytes}


def _entry(sample: UalmSample, refs: dict[str, AudioRef], dest: UalmDir) -> dict[str, Any]:
    value: dict[str, Any] = {"ualm_task": sample.ualm_task, "text": sample.text,
                             "corpus_key": sample.key}
    if sample.audio_key is not None:
        ref = refs[sample.audio_key]
        value["audio"] = {"tar_path": dest.trainer(ref.tar), "tar_offset": ref.offset,
                          "tar_size": ref.size, "offset": 0.0, "duration": ref.duration,
                          "sampling_rate": ref.rate, "channels": ref.channels,
                          "corpus_key": sample.audio_key}
    return value


def _pairs(layout: CorpusLayout) -> int:
    table = layout.folder_table(layout.manifest_folder("pairs"), ["key"])
    return 0 if table is None else table.num_rows


def warnings(report: dict[str, Any]) -> list[str]:
    """One line per thing UALM would lose, or the export left out."""
    lines = [f"{n:,} sample(s): {mapping.LOSSES[reason]}"
             for reason, n in report["ualm_would_drop"].items() if n]
    lines += [f"{n:,} sample(s) of task {task!r} not exported: UALM has no template for them"
              for task, n in report["not_exported"].items()]
    if report["pairs_not_exported"]:
        lines.append(f"{report['pairs_not_exported']:,} preference pair(s) not exported: "
                     "UALM's trainer has no preference task")
    if report["blend"] is not None:
        lines.append("UALM's train.py sets every dataset's factor to 1.0: the blend is applied "
                     "by listing samples as often as the blend draws them (see `listed`)")
    return lines
