"""The figures behind the scale plan (docs/scale.md), measured in one run, and the plan for UALM's
scale extrapolated from them.

1. Planning: `ualm build --dry-run` (`plan_build`) of synthetic JSONL manifests of `--rows`
   (1,000,000 and 10,000,000), each in its own process at the plan's unit size: seconds, rows per
   second and driver peak RSS. Bar: the larger manifest's driver peak RSS within 1.3x of the
   smaller's (the driver holds units, not rows).
2. Per-clip costs: a real build (local engine, one process, default config with near-dedup and
   caption dedup on) of `--clips` synthetic clips, then its tokens (seeded random EnCodec on the
   CPU): bytes per audio hour of audio and token shards, manifest bytes per sample, work-area
   objects per unit, completion-record bytes, seconds per audio hour of each, and the memory a
   dedup reduce holds per input (tracemalloc of each map side's rows).
3. The plan: those figures scaled to `--target-clips` clips of `--target-hours` hours at the
   plan's unit size and shard size, printed and recorded.

    .venv/bin/python benchmarks/bench_scale_plan.py            # 1M and 10M rows, 200 clips
    .venv/bin/python benchmarks/bench_scale_plan.py --quick    # 20k and 200k rows, 40 clips

Writes benchmarks/results/bench_scale_plan.json (see _record.py); exits 1 when a bar is missed.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import pickle
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

from _record import Record, add_arguments
from bench_build import make_inputs
from bench_listing import PLAN, run, write_manifest


def folder_bytes(root: Path, folder: str) -> tuple[int, int]:
    files = [p for p in (root / folder).rglob("*") if p.is_file()]
    return len(files), sum(p.stat().st_size for p in files)


def reduce_bytes_per_input(corpus: Path, units: int, config: dict) -> dict[str, float]:
    """Per input sent to each keyed reduce: the bytes its map side ships through the shuffle
    (pickled, as Dask and Beam send them) and the Python memory they take once unpickled."""
    from ualm.pipelines.caption_dedup import CaptionTask, emit_caption_bands
    from ualm.pipelines.dedup import FingerprintTask, emit_fingerprints
    from ualm.pipelines.near_dedup import BandTask, emit_bands

    maps = {"exact_dedup": lambda u: emit_fingerprints(FingerprintTask(str(corpus), u)),
            "near_dedup": lambda u: emit_bands(BandTask(str(corpus), u, config)),
            "caption_dedup": lambda u: emit_caption_bands(CaptionTask(str(corpus), u, config))}
    out = {}
    for name, emit in maps.items():
        shuffled = [pickle.dumps(emit(u)) for u in range(units)]  # what crosses the shuffle
        tracemalloc.start()
        held = [pickle.loads(data) for data in shuffled]  # what the reduces hold, unpickled
        size = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
        inputs = len({v[1] if isinstance(v, tuple) else v["input_index"]
                      for pairs in held for _, v in pairs})
        out[name] = {"bytes_per_input": round(size / max(inputs, 1)),
                     "shuffle_bytes_per_input": round(sum(map(len, shuffled)) / max(inputs, 1)),
                     "pairs_per_input": round(sum(map(len, held)) / max(inputs, 1), 2)}
    return out


def measure_build(folder: Path, clips: int, unit_size: int) -> dict:
    from ualm.config import BuildConfig, TokenizeConfig
    from ualm.pipelines.build import build_corpus
    from ualm.pipelines.tokens import tokenize_corpus

    manifest = make_inputs(folder / "inputs", clips)
    config = BuildConfig.from_dict({"work": {"unit_size": unit_size},
                                    "near_dedup": {"enabled": True},
                                    "caption_dedup": {"enabled": True},
                                    "tokenize": {"enabled": False}})
    started = time.perf_counter()
    result = build_corpus([manifest], folder / "corpus", config, engine="local", progress=False)
    build_seconds = time.perf_counter() - started
    started = time.perf_counter()
    tokenize_corpus(result.corpus, TokenizeConfig(codec="random"), engine="local", progress=False)
    token_seconds = time.perf_counter() - started
    root, summary = result.corpus, result.summary
    units = math.ceil(clips / unit_size)
    hours, samples = summary["hours"], summary["samples"]
    parts = {name: folder_bytes(root, name) for name in ("audio", "text", "tokens", "manifests")}
    work = {name: folder_bytes(root, f"_work/{name}") for name in ("units", "listing", "done")}
    done_count, done_bytes = work["done"]
    return {
        "clips": clips, "units": units, "audio_hours": hours, "samples": samples,
        "build_seconds": round(build_seconds, 1), "tokenize_seconds": round(token_seconds, 1),
        "ingest_seconds_per_audio_hour": round(build_seconds / hours, 1),
        "tokenize_seconds_per_audio_hour_cpu": round(token_seconds / hours, 1),
        "audio_shard_bytes_per_hour": round(parts["audio"][1] / hours),
        "token_bytes_per_hour": round(parts["tokens"][1] / hours),
        "manifest_bytes_per_sample": round(parts["manifests"][1] / samples),
        "work_bytes_per_unit_after_commit": round(sum(b for _, b in work.values()) / units),
        "work_objects_per_unit": round(sum(n for n, _ in work.values()) / units, 2),
        "done_record_bytes": round(done_bytes / max(done_count, 1)),
        "reduce_memory": reduce_bytes_per_input(root, units, config.to_dict()),
    }


def extrapolate(m: dict, plans: dict, clips: int, hours: float, unit_size: int,
                shard_samples: int, dedup_buckets: int, workers: int) -> dict:
    """UALM's clips are 10-second chunks: one sample each (the measured clips, 2-16 s long,
    give per-hour and per-sample figures, not a count)."""
    samples = clips
    units = math.ceil(clips / unit_size)
    unit_seconds = m["ingest_seconds_per_audio_hour"] * hours / units  # one core per unit
    largest = max(plans.values(), key=lambda p: p["inputs"])
    audio_bytes = m["audio_shard_bytes_per_hour"] * hours
    exact = m["reduce_memory"]["exact_dedup"]["bytes_per_input"]
    near = m["reduce_memory"]["near_dedup"]["bytes_per_input"]
    return {
        "clips": clips, "audio_hours": hours, "unit_size": unit_size, "units": units,
        "samples": samples, "audio_shards": math.ceil(samples / shard_samples),
        "audio_shard_mb": round(audio_bytes / math.ceil(samples / shard_samples) / 1e6),
        "audio_tb": round(audio_bytes / 1e12, 2),
        "staged_payload_tb_until_commit": round(audio_bytes / 1e12, 2),
        "tokens_tb": round(m["token_bytes_per_hour"] * hours / 1e12, 3),
        "manifests_gb": round(m["manifest_bytes_per_sample"] * samples / 1e9, 1),
        "work_objects": round(m["work_objects_per_unit"] * units),
        "done_records_mb": round(m["done_record_bytes"] * units * 3 / 1e6, 1),
        "listing_minutes_on_the_driver": round(
            clips / (largest["inputs"] / largest["seconds"]) / 60, 1),
        "ingest_core_hours": round(m["ingest_seconds_per_audio_hour"] * hours / 3600),
        "tokenize_cpu_core_hours": round(
            m["tokenize_seconds_per_audio_hour_cpu"] * hours / 3600 * 2),
        "unit_minutes_on_one_core": round(unit_seconds / 60, 1),
        "workers": workers,
        "ingest_hours_with_workers": round(m["ingest_seconds_per_audio_hour"] * hours
                                           / 3600 / workers, 1),
        "work_puts_per_second_with_workers": round(m["work_objects_per_unit"] * workers
                                                   / unit_seconds, 1),
        "dedup_buckets": dedup_buckets,
        "exact_dedup_reduce_gb_per_bucket": round(exact * clips / dedup_buckets / 1e9, 2),
        "near_dedup_reduce_gb_per_bucket": round(near * clips / dedup_buckets / 1e9, 2),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, nargs=2, default=[1_000_000, 10_000_000])
    parser.add_argument("--clips", type=int, default=200)
    parser.add_argument("--unit-size", type=int, default=1000, help="the plan's unit size")
    parser.add_argument("--target-clips", type=int, default=30_000_000)
    parser.add_argument("--target-hours", type=float, default=80_000)
    parser.add_argument("--shard-samples", type=int, default=1000)
    parser.add_argument("--dedup-buckets", type=int, default=256)
    parser.add_argument("--workers", type=int, default=1000)
    add_arguments(parser)
    args = parser.parse_args()
    if args.quick:
        args.rows, args.clips = [20_000, 200_000], 40
    record = Record("bench_scale_plan", args)
    folder = Path(tempfile.mkdtemp(prefix="bench-scale-"))
    os.environ["UALM_CACHE"] = str(folder / "cache")  # a warm token cache would time nothing
    plans = {}
    for rows in args.rows:
        manifest = write_manifest(folder / f"rows-{rows}.jsonl", rows)
        plans[str(rows)] = run(PLAN, manifest, str(args.unit_size))
        manifest.unlink()
        p = plans[str(rows)]
        print(f"plan {rows:>11,} rows: {p['units']:>8,} units {p['seconds']:7.1f} s "
              f"{p['peak_rss_mb']:7.1f} MB peak RSS")
    measured = measure_build(folder / "build", args.clips, unit_size=max(args.clips // 4, 1))
    print("measured on a real build:", json.dumps(measured, indent=1))
    plan = extrapolate(measured, plans, args.target_clips, args.target_hours, args.unit_size,
                       args.shard_samples, args.dedup_buckets, args.workers)
    print("the plan:", json.dumps(plan, indent=1))
    small, large = (plans[str(r)] for r in sorted(args.rows))
    rss_ratio = round(large["peak_rss_mb"] / small["peak_rss_mb"], 2)
    bars = [record.bar("plan_rss_ratio_large_to_small", rss_ratio, "<=", 1.3,
                       f"{max(args.rows):,} rows against {min(args.rows):,}"),
            record.bar("every_row_planned", int(large["inputs"] == max(args.rows)), "==", 1)]
    return record.finish({"plans": plans, "measured": measured, "plan": plan}, bars)


if __name__ == "__main__":
    sys.exit(main())
