"""The crawler against a sequential `requests` loop over the same URLs, on loopback servers that
add 100 ms of latency to every response (robots.txt included).

Two crawler runs, each through `UnitSources` (what an ingest unit uses: a background asyncio loop,
files handed over as they land):
- `polite`: the default CrawlConfig (32 in flight, 4 per host, 8 requests/s per host) over URLs
  spread across 16 servers (16 hosts, as a crawl of many sites is);
- `one_host`: every URL on one server, with the per-host limits lifted (64 in flight, no rate),
  as for a server you own.

    .venv/bin/python benchmarks/bench_crawl.py [--files 200] [--seconds 3] [--latency 0.1]
    .venv/bin/python benchmarks/bench_crawl.py --quick   # 40 files: checks the record

Bar: the polite crawl over 16 hosts at least 10x the sequential loop's speed. Prints a table and
each bar, writes benchmarks/results/bench_crawl.json (see _record.py), exits 1 below the bar.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import requests

from _record import Record, add_arguments
from ualm.audio.synthetic import synth_clip, write_audio
from ualm.config import CrawlConfig
from ualm.inputs.crawl.unit import UnitSources
from ualm.inputs.records import InputRecord
from ualm.testing.crawl_server import FaultyServer

BAR = 10.0


def sequential(urls: list[str]) -> tuple[float, int]:
    """The baseline: one `requests.Session` (keep-alive), one URL after another."""
    started, total = time.perf_counter(), 0
    with requests.Session() as session:
        for url in urls:
            response = session.get(url, timeout=30)
            response.raise_for_status()
            total += len(response.content)
    return time.perf_counter() - started, total


def crawl(urls: list[str], config: CrawlConfig) -> tuple[float, int]:
    records = [InputRecord(index=i, input_id=str(i), url=u) for i, u in enumerate(urls)]
    started, total = time.perf_counter(), 0
    with UnitSources(records, config) as sources:
        for record in records:
            total += sources.obtain(record).stat().st_size
            sources.release(record)
    return time.perf_counter() - started, total


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=3.0, help="length of each WAV clip")
    parser.add_argument("--latency", type=float, default=0.1)
    parser.add_argument("--hosts", type=int, default=16)
    add_arguments(parser)
    args = parser.parse_args()
    if args.quick:
        args.files = 40
    record = Record("bench_crawl", args)
    root = Path(tempfile.mkdtemp(prefix="bench-crawl-"))
    for i in range(args.files):
        write_audio(root / f"clip{i:04d}.wav", synth_clip(args.seconds, 24000, i), 24000, "wav16")
    names = sorted(p.name for p in root.iterdir())
    polite = CrawlConfig(allow_private_network=True)
    one_host = dataclasses.replace(polite, concurrency=64, per_host_concurrency=64,
                                   per_host_rate=0)
    with ExitStack() as stack:
        servers = [stack.enter_context(FaultyServer(root, args.latency))
                   for _ in range(args.hosts)]
        single = [f"{servers[0].base}/audio/{n}" for n in names]
        spread = [f"{servers[i % len(servers)].base}/audio/{n}" for i, n in enumerate(names)]
        runs = {"sequential_requests": sequential(single),
                "crawler_polite_16_hosts": crawl(spread, polite),
                "crawler_one_host_unthrottled": crawl(single, one_host)}
    base_seconds = runs["sequential_requests"][0]
    figures: dict[str, object] = {"files": args.files, "latency_s": args.latency,
                                  "hosts": args.hosts}
    print(f"{'run':32s} {'seconds':>8s} {'files/s':>8s} {'MB/s':>7s} {'speed-up':>8s}")
    for name, (seconds, size) in runs.items():
        row = {"seconds": round(seconds, 3), "files_per_s": round(args.files / seconds, 1),
               "mb_per_s": round(size / seconds / 1e6, 2),
               "speedup": round(base_seconds / seconds, 1)}
        figures[name] = row
        print(f"{name:32s} {seconds:8.2f} {row['files_per_s']:8.1f} {row['mb_per_s']:7.2f} "
              f"{row['speedup']:7.1f}x")
    polite_speedup = base_seconds / runs["crawler_polite_16_hosts"][0]
    figures["speedup_polite_vs_sequential"] = round(polite_speedup, 2)
    bars = [record.bar("speedup_polite_vs_sequential", round(polite_speedup, 2), ">=", BAR,
                       f"{args.hosts} hosts, {args.latency * 1000:.0f} ms per response"),
            record.bar("crawled_bytes_equal_sequential",
                       int(runs["crawler_polite_16_hosts"][1] == runs["sequential_requests"][1]
                           == runs["crawler_one_host_unthrottled"][1]), "==", 1,
                       "every run fetched the same bytes")]
    return record.finish(figures, bars)


if __name__ == "__main__":
    sys.exit(main())
