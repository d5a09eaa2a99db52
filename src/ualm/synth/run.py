"""`synth_corpus`: reasoning traces and preference pairs for a tokenized corpus.

1. The corpus's tokenized clips, in key order; per captioned clip, its caption's similarity to
   every clip (CLAP or the stand-in) picks self-reflection's near-miss and the pair candidates.
2. One job per (clip, trace kind), asked with bounded concurrency; each ends as one outcome.
3. Valid replies become chat samples; near-duplicate rich captions (MinHash, per kind) are
   dropped; shards, manifests, the funnel and the rejects are written into the corpus.

Every requested trace is accounted for: requested = valid + repaired + rejected, and written =
valid + repaired - deduplicated, per kind (checked before anything is written).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from ualm.engines.progress import stage_bar
from ualm.errors import UalmError
from ualm.manifests import names, storage
from ualm.manifests.layout import CorpusLayout
from ualm.manifests.schema import table
from ualm.sections import build_section
from ualm.synth import output
from ualm.synth.clips import Clip, load_clips, read_codes
from ualm.synth.config import SynthConfig
from ualm.synth.neighbors import CHUNK, Scorer, best_other, make_scorer
from ualm.synth.pairs import choose
from ualm.synth.requester import Limits, Outcome, ReplyCache, Requester
from ualm.synth.schema import render_rich_caption
from ualm.synth.teachers import make_teacher
from ualm.synth.traces import KINDS, Job, trace_sample


@dataclass(frozen=True)
class SynthResult:
    corpus: Path
    funnel: dict[str, Any]
    stats: dict[str, Any]
    """This run's requests: sent, cache hits, retries, tokens, seconds, requests per second."""


class Progress:
    """One bar for the run's traces, with outcomes and request counts beside it."""

    def __init__(self, total: int, enabled: bool, stream: TextIO | None = None) -> None:
        self.bar = stage_bar("synth:", total, "traces", enabled, stream, log_every=0.5)
        self.counts: Counter[str] = Counter()

    def update(self, outcome: Outcome, requester: Requester, final: bool = False) -> None:
        if outcome.status:
            self.counts[outcome.status] += 1
        s = requester.stats
        self.bar.set_postfix_str(
            f"{self.counts['valid']} valid · {self.counts['repaired']} repaired · "
            f"{self.counts['rejected']} rejected · {s.sent} requests · {s.cache_hits} cached · "
            f"{s.retries} retries", refresh=False)
        if outcome.status:
            self.bar.update(1)
        if final:
            self.bar.close()


def neighbours(scorer: Scorer | None, captioned: Sequence[Clip], clips: Sequence[Clip],
               config: SynthConfig) -> tuple[dict[str, Clip | None], dict[str, tuple]]:
    """Per captioned clip: its near-miss, and its pair choice ((chosen, its score,
    [(rejected, its score), ...]), or (the reason there is none,))."""
    near: dict[str, Clip | None] = {}
    pairs: dict[str, tuple] = {}
    if scorer is None:
        return near, pairs
    keys = [c.key for c in clips]
    index = {k: i for i, k in enumerate(keys)}
    for at in range(0, len(captioned), CHUNK):
        part = captioned[at:at + CHUNK]
        scores = scorer.similarity([c.captions[0] for c in part], clips)
        for clip, row in zip(part, scores, strict=True):
            near[clip.key] = best_other(scorer, row, clip, clips)
            chosen, rejected, why = choose(
                row, index[clip.key], keys, config.pair_candidates, config.pair_margin,
                config.pairs_per_clip, lambda i, clip=clip: scorer.same(clips[i], clip))
            pairs[clip.key] = ((clips[chosen], float(row[chosen]),
                                [(clips[i], float(row[i])) for i in rejected])
                               if why is None else (why,))
    return near, pairs


async def _ask_all(jobs: Sequence[Job], config: SynthConfig, cache: ReplyCache,
                   progress_on: bool) -> tuple[list[Outcome], Requester, str]:
    teacher = make_teacher(config.teacher, config.api_key_env, config.timeout, config.device,
                           config.concurrency)
    requester = Requester(teacher, Limits.of(config), config.params, cache)
    progress = Progress(len(jobs), progress_on)
    results: list[Outcome | None] = [None] * len(jobs)
    pending = iter(range(len(jobs)))

    async def worker() -> None:
        for i in pending:  # workers share one iterator: each job is taken once
            results[i] = await requester.ask(jobs[i].request(), jobs[i].clip.seconds)
            progress.update(results[i], requester)  # type: ignore[arg-type]

    try:
        await asyncio.gather(*(worker() for _ in range(min(len(jobs), config.concurrency * 2))))
    finally:
        await teacher.close()
    progress.update(Outcome(""), requester, final=True)
    return [r for r in results if r is not None], requester, teacher.name


def synth_corpus(corpus: str | Path, config: SynthConfig | None = None,
                 progress: bool = True) -> SynthResult:
    """Writes traces, pairs and the funnel into the corpus (see `ualm.synth.output`)."""
    config = config or SynthConfig()
    root = corpus if storage.is_remote(corpus) else Path(corpus)  # a URL stays a URL
    started = time.monotonic()
    codec, clips = load_clips(root, config.codec_id)
    clips = clips[:config.limit] if config.limit else clips
    if not clips:
        raise UalmError(f"{corpus} has no tokenized audio clips to write traces about",
                        fix="build and tokenize a corpus with audio first")
    kinds = [k for k in KINDS if k in config.kinds]
    captioned = [c for c in clips if c.captions and c.captions[0].strip()]
    needs_scores = "reflection" in kinds or "pairs" in config.kinds
    scorer = make_scorer(root, clips, config.clap_model, config.device) if needs_scores else None
    near, pair_choices = neighbours(scorer, captioned, clips, config)

    jobs: list[Job] = []
    rejects: list[dict[str, Any]] = []
    for kind in kinds:
        for clip in clips:
            if clip not in captioned:
                rejects.append({"key": f"{kind}-{clip.key}", "kind": kind, "reason":
                                "synth/no_caption", "detail": "the clip has no caption",
                                "source_keys": [clip.key]})
            elif kind == "reflection" and near.get(clip.key) is None:
                rejects.append({"key": f"{kind}-{clip.key}", "kind": kind, "reason":
                                "synth/no_near_miss", "source_keys": [clip.key],
                                "detail": "no other clip of different content to play v1"})
            else:
                jobs.append(Job(kind, clip, near.get(clip.key) if kind == "reflection" else None))
    layout = CorpusLayout(root)
    cache = ReplyCache(config.cache_dir or _cache_dir(layout))
    outcomes, requester, teacher = asyncio.run(_ask_all(jobs, config, cache, progress))

    funnel = _write(root, config, codec, clips, jobs, outcomes, rejects, pair_choices, teacher,
                    scorer.name if scorer else None)
    seconds = time.monotonic() - started
    s = requester.stats
    stats = {"requests_sent": s.sent, "cache_hits": s.cache_hits, "retries": s.retries,
             "tokens": s.tokens, "seconds": round(seconds, 3),
             "requests_per_second": round(s.sent / seconds, 3) if seconds else 0.0}
    layout.append_line(layout.synth(names.SYNTH_RUNS_LOG),
                       json.dumps({"teacher": teacher, **stats}, sort_keys=True))
    return SynthResult(root, funnel, stats)


def _cache_dir(layout: CorpusLayout) -> Path:
    """The reply cache: in the corpus's work area when it is a folder; for a corpus in a store,
    on this machine's disk ($UALM_CACHE or ~/.cache/ualm), one folder per corpus URL, so a rerun
    still finds every reply it got."""
    if layout.local:
        return Path(layout.synth(names.SYNTH_CACHE))
    import hashlib
    import os

    base = Path(os.environ.get("UALM_CACHE") or Path.home() / ".cache" / "ualm")
    return base / "synth-replies" / hashlib.sha256(layout.location.encode()).hexdigest()[:16]


def _write(root: Path, config: SynthConfig, codec: str, clips: Sequence[Clip],
           jobs: Sequence[Job], outcomes: Sequence[Outcome], rejects: list[dict[str, Any]],
           pair_choices: dict[str, tuple], teacher: str, scorer: str | None) -> dict[str, Any]:
    kinds = [k for k in KINDS if k in config.kinds]
    counts = {k: {"requested": 0, "valid": 0, "repaired": 0, "rejected": Counter(),
                  "deduplicated": 0, "written": 0} for k in kinds}
    for r in rejects:
        counts[r["kind"]]["requested"] += 1
        counts[r["kind"]]["rejected"][r["reason"]] += 1
    made: dict[str, list[tuple[Job, dict[str, Any], dict[str, str]]]] = {k: [] for k in kinds}
    for job, outcome in zip(jobs, outcomes, strict=True):
        c = counts[job.kind]
        c["requested"] += 1
        if outcome.status == "rejected":
            c["rejected"][outcome.reason] += 1
            rejects.append({"key": job.key, "kind": job.kind, "reason": outcome.reason,
                            "detail": outcome.detail, "source_keys": job.source_keys})
            continue
        c[outcome.status] += 1
        meta, refs = trace_sample(job, outcome.value or {}, outcome.status == "repaired",
                                  teacher, config.params, codec, scorer)
        made[job.kind].append((job, meta, refs))
    duplicates, kept = [], []
    for kind in kinds:
        texts = [render_rich_caption(meta["rich_caption"]) for _, meta, _ in made[kind]]
        dups = output.near_duplicates(texts, config.dedup_threshold)
        for i, item in enumerate(made[kind]):
            if i in dups:
                j, similarity = dups[i]
                duplicates.append({"key": item[0].key, "kind": kind, "similarity": similarity,
                                   "duplicate_of": made[kind][j][0].key})
            else:
                kept.append(item)
        counts[kind]["deduplicated"] = len(dups)
        counts[kind]["written"] = len(made[kind]) - len(dups)
    for kind, c in counts.items():  # every input accounted for
        assert c["requested"] == c["valid"] + c["repaired"] + sum(c["rejected"].values()), kind
    wanted = {k for _, _, refs in kept for k in refs.values()}
    wanted |= {c.key for p in pair_choices.values() if len(p) == 3
               for c in (p[0], *(r for r, _ in p[2]))}
    codes = read_codes(root, [c for c in clips if c.key in wanted])
    samples = [{"__key__": job.key, "json": output.json_bytes(meta),
                **{f"{ref}.npy": codes[key] for ref, key in sorted(refs.items())}}
               for job, meta, refs in kept]
    rows = [{"key": job.key, "source": meta["source"], "task": meta["task"], "kind": job.kind,
             "teacher": teacher, "template_sha256": meta["template_sha256"],
             "source_keys": meta["source_keys"], "n_audio": len(refs), "codec_id": codec}
            for job, meta, refs in kept]
    output.write_set(root, "traces", samples, rows, output.TRACES, config.max_samples)
    pairs = _write_pairs(root, config, codec, clips, pair_choices, codes, scorer)
    layout = CorpusLayout(root)
    layout.write_table(layout.synth(names.SYNTH_REJECTS), table(rejects, output.REJECTS))
    layout.write_table(layout.synth(names.SYNTH_DUPLICATES),
                       table(duplicates, output.DUPLICATES))
    config_record = {k: v for k, v in config.to_dict().items() if k != "cache_dir"}
    funnel = {"teacher": teacher, "scorer": scorer, "codec_id": codec, "config": config_record,
              "traces": {k: {**c, "rejected": dict(sorted(c["rejected"].items()))}
                         for k, c in counts.items()},
              "pairs": pairs}
    output.write_funnel(root, funnel)
    return funnel


def _write_pairs(root: Path, config: SynthConfig, codec: str, clips: Sequence[Clip],
                 choices: dict[str, tuple], codes: dict[str, bytes],
                 scorer: str | None) -> dict[str, Any] | None:
    if "pairs" not in config.kinds:
        return None
    samples, rows, missing, paired = [], [], Counter(), 0
    for clip in clips:
        choice = choices.get(clip.key, ("pairs/no_caption",))
        if len(choice) == 1:
            missing[choice[0]] += 1
            continue
        chosen, chosen_score, rejected_ones = choice
        paired += 1
        for n, (rejected, rejected_score) in enumerate(rejected_ones):
            meta = {"task": "preference", "caption": clip.captions[0], "chosen_key": chosen.key,
                    "rejected_key": rejected.key, "chosen_score": round(chosen_score, 6),
                    "rejected_score": round(rejected_score, 6),
                    "margin": round(chosen_score - rejected_score, 6), "scorer": scorer,
                    "source_keys": [clip.key], "codec_id": codec}
            key = f"pair-{clip.key}" + (f"-{n}" if n else "")  # a clip's first pair: plain key
            samples.append({"__key__": key, "json": output.json_bytes(meta),
                            "chosen.npy": codes[chosen.key],
                            "rejected.npy": codes[rejected.key]})
            rows.append({"key": key, "source": "synth-pairs", **{
                k: meta[k] for k in ("task", "caption", "chosen_key", "rejected_key",
                                     "chosen_score", "rejected_score", "margin", "scorer",
                                     "codec_id")}})
    output.write_set(root, "pairs", samples, rows, output.PAIRS, config.max_samples)
    return {"captions": len(clips), "paired": paired, "written": len(samples),
            "rejected_clips": len({r["rejected_key"] for r in rows}),
            "per_clip": config.pairs_per_clip,
            "no_pair": dict(sorted(missing.items())), "margin": config.pair_margin,
            "candidates": config.pair_candidates}


def synthesize(corpus: str | Path, progress: bool = True, **options: Any) -> SynthResult:
    """`synth_corpus` with `SynthConfig` fields as keyword arguments (`ualm run`'s entry point)."""
    config = build_section(SynthConfig, "options", options, "synth",
                           "use the fields of ualm.synth.config.SynthConfig")
    return synth_corpus(corpus, config, progress=progress)
