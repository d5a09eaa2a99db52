"""Benchmark of the generated fuzz corpus (`ualm.testing.fuzz`): >= 1,000 hostile inputs (mutated
files of 14 containers: truncations at structural boundaries, bit flips, absurd header fields,
wrong magic, huge metadata blocks; hostile rows, a hostile tar and a hostile folder) through
`ualm build` on Dask (2 workers), with decode isolation on (the default) and off.

Bars: no aborted run; every input accounted (kept, rejected or a duplicate, exactly once, from
the corpus's own manifests); no input with a generic reason or an outcome its kind does not
allow; both builds write the same bytes. Figures: counts per kind and reject reasons, the peak
RSS of each worker and of its decode processes, and the slowest input and the largest memory of
one input, each measured by decoding every file case alone through the isolated decode path
(`open_input`, stopping where the build's ingest stops: a header too long, or the most it
reads; the decode process's peak RSS is reset before each input, /proc/PID/clear_refs).
The cost of isolation: the two builds' times here, and bench_decode_isolation's record on the
benchmark corpus (quoted).

    .venv/bin/python benchmarks/bench_fuzz.py            # 1,000 inputs
    .venv/bin/python benchmarks/bench_fuzz.py --quick    # 100 inputs

Writes benchmarks/results/bench_fuzz.json (see _record.py); exits 1 when a bar is missed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]  # _record, and the tests' books
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from _record import Record, add_arguments  # noqa: E402
from bench_decode_isolation import _decode_processes, _digest  # noqa: E402

WORKERS = 2


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _status_mib(pid: int | str, key: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


def _worker_memory() -> dict[str, float]:
    """A worker's peak RSS and its live decode processes' largest (VmHWM, MiB)."""
    decoders = []
    for pid in _decode_processes():
        try:
            decoders.append(_status_mib(pid, "VmHWM"))
        except OSError:
            continue
    return {"worker_peak_rss_mib": round(_status_mib("self", "VmHWM"), 1),
            "decode_process_peak_rss_mib": round(max(decoders, default=0.0), 1)}


def build(corpus: Any, out: Path, isolate: bool) -> dict[str, Any]:
    from tests.chaos import books
    from tests.test_fuzz import outcomes

    from ualm.config import BuildConfig
    from ualm.engines.dask import DaskEngine
    from ualm.pipelines.build import build_corpus
    from ualm.testing.fuzz import GENERIC_REASONS

    shutil.rmtree(out, ignore_errors=True)
    config = BuildConfig.from_dict({"tokenize": {"enabled": False},
                                    "limits": {"isolate": isolate}})
    started = time.perf_counter()
    try:
        with DaskEngine(workers=WORKERS) as engine:
            build_corpus(corpus.inputs, out, config, engine=engine,
                         allow_roots=corpus.allow_roots, progress=False)
            seconds = time.perf_counter() - started
            memory = list(engine.run_on_workers(_worker_memory).values())
    except Exception as exc:  # an aborted run: the bar counts it
        log(f"aborted: {type(exc).__name__}: {exc}")
        return {"aborted": True, "error": f"{type(exc).__name__}: {exc}"[:500]}
    try:
        counts = books(out)
        accounted = counts["inputs"]
    except AssertionError as exc:
        counts, accounted = {"error": str(exc)[:500]}, 0
    found = outcomes(out)
    unexpected = {case.input_id: found.get(i) for i, case in enumerate(corpus.cases)
                  if found.get(i) in GENERIC_REASONS
                  or (case.expect and found.get(i) not in case.expect)}
    reasons = Counter(f"{case.kind} -> {found.get(i)}" for i, case in enumerate(corpus.cases))
    return {"aborted": False, "seconds": round(seconds, 2), "counts": counts,
            "accounted": accounted, "unexpected": unexpected,
            "generic": sum(o in GENERIC_REASONS for o in found.values()),
            "outcomes": dict(Counter(found.values()).most_common()),
            "kind_outcomes": dict(sorted(reasons.items())), "workers": memory,
            "digest": _digest(out)}


def per_input(corpus: Any) -> dict[str, Any]:
    """Every file case decoded alone through the isolated decode path (default limits): its
    time and its decode process's peak RSS (reset before each input)."""
    from ualm.audio import isolation
    from ualm.audio.errors import AudioRejected
    from ualm.config import BuildConfig

    config = BuildConfig()
    slowest, largest = ("", 0.0), ("", 0.0)
    for case in corpus.cases:
        if not case.path:
            continue
        process = isolation._process()
        Path(f"/proc/{process.popen.pid}/clear_refs").write_text("5")  # resets VmHWM
        started = time.perf_counter()
        try:
            clip = isolation.open_input(config.limits, corpus.root / case.path,
                                        target_rate=config.audio.sample_rate, block_seconds=1.0)
            # as the build's ingest does: too long by its header, or past the most it reads
            if (clip.info.seconds or 0.0) <= config.quality.max_input_seconds:
                left = config.quality.max_input_seconds * config.audio.sample_rate
                for chunk in clip.chunks():
                    left -= len(chunk)
                    if left <= 0:
                        break
        except AudioRejected:
            pass
        seconds = time.perf_counter() - started
        try:
            peak = _status_mib(process.popen.pid, "VmHWM")
        except OSError:  # killed for its limits: the limit bounded it
            peak = float(config.limits.decode_memory_mb)
        slowest = max(slowest, (case.input_id, seconds), key=lambda x: x[1])
        largest = max(largest, (case.input_id, peak), key=lambda x: x[1])
    return {"slowest_input": slowest[0], "slowest_input_s": round(slowest[1], 3),
            "largest_input": largest[0], "largest_input_peak_rss_mib": round(largest[1], 1)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--metadata-mb", type=float, default=4.0)
    add_arguments(parser)
    args = parser.parse_args()
    if args.quick:
        args.count, args.metadata_mb = 100, 1.0
    record = Record("bench_fuzz", args)
    tmp = Path(tempfile.mkdtemp(prefix="ualm-fuzz-"))
    os.environ.setdefault("UALM_CACHE", str(tmp / "cache"))
    from ualm.testing.fuzz import make_fuzz_corpus

    started = time.perf_counter()
    corpus = make_fuzz_corpus(tmp / "fuzz", args.count, args.seed, metadata_mb=args.metadata_mb)
    made_s = time.perf_counter() - started
    log(f"{len(corpus.cases)} inputs written in {made_s:.1f} s under {tmp}")
    runs = {}
    for name, isolate in (("isolated", True), ("in_worker", False)):
        log(f"build, decode isolation {'on' if isolate else 'off'} ...")
        runs[name] = build(corpus, tmp / name, isolate)
        log(f"  {name}: { {k: v for k, v in runs[name].items() if 'outcomes' not in k} }")
    log("decoding every file case alone ...")
    single = per_input(corpus)
    shutil.rmtree(tmp, ignore_errors=True)
    return finish(record, args, corpus, runs, single, made_s)


def finish(record: Record, args: argparse.Namespace, corpus: Any, runs: dict[str, Any],
           single: dict[str, Any], made_s: float) -> int:
    iso = runs["isolated"]
    aborted = sum(r["aborted"] for r in runs.values())
    done = [r for r in runs.values() if not r["aborted"]]
    cited = json.loads((HERE / "results" / "bench_decode_isolation.json").read_text())
    figures = {
        "inputs": len(corpus.cases), "seed": args.seed, "metadata_mb": args.metadata_mb,
        "kinds": corpus.kinds(), "generate_s": round(made_s, 1), "aborted_runs": aborted,
        **{f"{name}_{k}": r.get(k) for name, r in runs.items()
           for k in ("seconds", "counts", "accounted", "generic", "unexpected", "workers")},
        "outcomes": iso.get("outcomes"), "kind_outcomes": iso.get("kind_outcomes"),
        "worst_worker_peak_rss_mib": max((w["worker_peak_rss_mib"] for r in done
                                          for w in r["workers"]), default=None),
        "worst_decode_process_peak_rss_mib": max((w["decode_process_peak_rss_mib"]
                                                  for w in iso.get("workers", [])), default=None),
        **single,
        "isolation_cost_fuzz_ratio": round(iso["seconds"] / runs["in_worker"]["seconds"], 3)
        if len(done) == 2 else None,
        "isolation_cost_benchmark_corpus": {
            k: cited["figures"].get(k) for k in ("clips", "best_of_each_ratio",
                                                 "cpu_best_of_each_ratio", "overhead_percent")}
        | {"source": "benchmarks/results/bench_decode_isolation.json",
           "measured_utc": cited.get("started_utc")},
    }
    n = len(corpus.cases)
    bars = [record.bar("aborted_runs", aborted, "==", 0, "both builds returned"),
            record.bar("isolated_accounted", iso.get("accounted"), "==", n,
                       "every input kept, rejected or a duplicate exactly once"),
            record.bar("in_worker_accounted", runs["in_worker"].get("accounted"), "==", n),
            record.bar("generic_reasons", sum(r["generic"] for r in done), "==", 0,
                       "no input ends decode/unexpected_error or engine/unit_failed"),
            record.bar("unexpected_outcomes", sum(len(r["unexpected"]) for r in done), "==", 0,
                       "every hostile row ends with the outcome its kind allows"),
            record.bar("identical_bytes", len({r["digest"] for r in done}) == 1 and len(done) == 2,
                       "==", True, "isolation on and off write the same corpus"),
            record.bar("inputs", n, ">=", 100 if args.quick else 1000)]
    return record.finish(figures, bars)


if __name__ == "__main__":
    sys.exit(main())
