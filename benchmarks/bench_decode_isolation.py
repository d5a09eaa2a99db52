"""Benchmark of decode isolation: the cost of decoding every input in a decode process of the
worker's (`limits.isolate`, the default: time and memory limits, crashes contained) against
decoding in the worker itself, on the benchmark corpus (bench_build.py's clips).

Both sides build the same inputs with `ualm build` on the default Dask engine (2 workers, cluster
start-up included), in turn: off, on, off, on (A B A B), so that a shared machine's drift hits
both alike. Bar: the best isolated build within 1.10x of the best in-worker build (under 10 %
overhead); the ratio of every pair is printed beside it. Bar: the same for the CPU seconds the
build used (the driver, the workers and their decode processes: on a machine shared with other
jobs, less disturbed than the wall time). Bar: both sides write the same corpus bytes. Also
reported: the peak RSS of the decode processes (what isolation adds per worker).

    .venv/bin/python benchmarks/bench_decode_isolation.py            # 2000 clips, 3 pairs
    .venv/bin/python benchmarks/bench_decode_isolation.py --quick    # 40 clips, 1 pair

Writes benchmarks/results/bench_decode_isolation.json (see _record.py); exits 1 when a bar is
missed.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import resource
import shutil
import statistics
import sys
import time
from pathlib import Path

from _record import Record, add_arguments
from bench_build import make_inputs
from ualm.config import BuildConfig
from ualm.engines.dask import DaskEngine
from ualm.pipelines.build import build_corpus

WORKERS = 2


def _decode_processes() -> list[int]:
    """The pids of this process's decode processes (children of any of its threads)."""
    pids = []
    for task in Path("/proc/self/task").iterdir():
        for pid in (task / "children").read_text().split():
            try:
                if b"ualm.audio.decode_process" in Path(f"/proc/{pid}/cmdline").read_bytes():
                    pids.append(int(pid))
            except OSError:
                continue  # ended meanwhile
    return pids


def _worker_costs() -> dict[str, float]:
    """A worker's CPU seconds (its own and its decode processes', since they started) and its
    decode processes' largest peak RSS (VmHWM; 0 when it has none)."""
    times = os.times()
    cpu, peak = times.user + times.system, 0.0
    tick = os.sysconf("SC_CLK_TCK")
    for pid in _decode_processes():
        try:
            stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        cpu += (int(stat[11]) + int(stat[12])) / tick  # utime + stime
        line = next(x for x in status.splitlines() if x.startswith("VmHWM:"))
        peak = max(peak, int(line.split()[1]) / 1024)
    return {"cpu_seconds": cpu, "decode_process_peak_rss_mib": peak}


def _digest(corpus: Path) -> str:
    """sha256 of every published file (not the _work folder), by relative path."""
    digest = hashlib.sha256()
    for path in sorted(corpus.rglob("*")):
        relative = path.relative_to(corpus)
        if path.is_file() and "_work" not in relative.parts:
            digest.update(relative.as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def build(manifest: Path, out: Path, isolate: bool) -> dict:
    shutil.rmtree(out, ignore_errors=True)
    config = BuildConfig.from_dict({"tokenize": {"enabled": False},  # the audio stages only
                                    "limits": {"isolate": isolate}})
    started, driver = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF)
    with DaskEngine(workers=WORKERS) as engine:
        result = build_corpus([manifest], out, config, engine=engine, progress=False)
        seconds = time.perf_counter() - started
        workers = list(engine.run_on_workers(_worker_costs).values())
    used = resource.getrusage(resource.RUSAGE_SELF)  # the driver (and the Dask scheduler)
    cpu = (used.ru_utime + used.ru_stime - driver.ru_utime - driver.ru_stime
           + sum(w["cpu_seconds"] for w in workers))
    summary = result.summary
    return {"seconds": round(seconds, 3), "cpu_seconds": round(cpu, 2),
            "inputs": summary["inputs"], "kept": summary["kept"], "samples": summary["samples"],
            "digest": _digest(out), "decode_process_peak_rss_mib":
                round(max(w["decode_process_peak_rss_mib"] for w in workers), 1)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=2000)
    parser.add_argument("--pairs", type=int, default=3, help="A B pairs (off, then on)")
    parser.add_argument("--out", type=Path, default=Path("bench-out"))
    add_arguments(parser)
    args = parser.parse_args()
    if args.quick:
        args.clips, args.pairs = 40, 1
    record = Record("bench_decode_isolation", args)
    log = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731
    log(f"load average {os.getloadavg()}; writing {args.clips} clips under {args.out}/inputs ...")
    manifest = make_inputs(args.out / "inputs", args.clips)

    runs: dict[str, list[dict]] = {"in_worker": [], "isolated": []}
    for pair in range(args.pairs):
        for name, isolate in (("in_worker", False), ("isolated", True)):
            log(f"[{pair + 1}/{args.pairs}] {name} ...")
            runs[name].append(build(manifest, args.out / "runs" / f"isolation-{name}", isolate))
            log(f"  {runs[name][-1]}")
    pairs = [on["seconds"] / off["seconds"]
             for off, on in zip(runs["in_worker"], runs["isolated"], strict=True)]
    best = {name: min(r["seconds"] for r in rs) for name, rs in runs.items()}
    ratio = best["isolated"] / best["in_worker"]
    least_cpu = {name: min(r["cpu_seconds"] for r in rs) for name, rs in runs.items()}
    cpu_ratio = least_cpu["isolated"] / least_cpu["in_worker"]
    identical = len({r["digest"] for rs in runs.values() for r in rs}) == 1
    figures = {
        "clips": args.clips, "workers": WORKERS, "pairs": args.pairs,
        "in_worker_seconds": [r["seconds"] for r in runs["in_worker"]],
        "isolated_seconds": [r["seconds"] for r in runs["isolated"]],
        "pair_ratios": [round(p, 3) for p in pairs],
        "median_pair_ratio": round(statistics.median(pairs), 3),
        "best_of_each_ratio": round(ratio, 3),
        "overhead_percent": round(100 * (ratio - 1), 1),
        "in_worker_cpu_seconds": [r["cpu_seconds"] for r in runs["in_worker"]],
        "isolated_cpu_seconds": [r["cpu_seconds"] for r in runs["isolated"]],
        "cpu_best_of_each_ratio": round(cpu_ratio, 3),
        "identical_corpus": identical,
        "kept": runs["isolated"][-1]["kept"], "inputs": runs["isolated"][-1]["inputs"],
        "decode_process_peak_rss_mib": max(r["decode_process_peak_rss_mib"]
                                           for r in runs["isolated"]),
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
    }
    print(f"isolated / in worker: best of each {figures['best_of_each_ratio']}x, pairs "
          f"{figures['pair_ratios']} (median {figures['median_pair_ratio']}x)", flush=True)
    bars = [record.bar("best_of_each_ratio", figures["best_of_each_ratio"], "<=", 1.10,
                       f"isolated over in-worker build time, {args.pairs} A B pairs "
                       f"{figures['pair_ratios']}"),
            record.bar("cpu_best_of_each_ratio", figures["cpu_best_of_each_ratio"], "<=", 1.10,
                       "CPU seconds of the driver, the workers and their decode processes"),
            record.bar("identical_corpus", identical, "==", True,
                       "every build wrote the same corpus bytes")]
    return record.finish(figures, bars)


if __name__ == "__main__":
    sys.exit(main())
