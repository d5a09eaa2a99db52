"""Benchmark of listing and planning a build (`ualm build --dry-run --json`), measured side by side
in one run: what the driver costs before any clip is decoded, as the manifest grows.

Two JSONL manifests of the same shape (relative paths, an id, a caption and a licence per row;
the files need not exist, the plan does not open them) of `--small` and `--large` rows. Each
dry run is its own process; its peak RSS is read by the process itself at the end
(`ru_maxrss`). The reference is a plain loop that `json.loads` every line of the large manifest,
in a process of its own.

Bars (issue 21): the large manifest's driver peak RSS within 1.3x of the small one's, and its
listing time within 3x of the plain loop's.

    .venv/bin/python benchmarks/bench_listing.py             # 100,000 and 1,000,000 rows
    .venv/bin/python benchmarks/bench_listing.py --quick     # 2,000 and 20,000 rows

Prints each bar, writes benchmarks/results/bench_listing.json (see _record.py), exits 1 when a
bar is missed.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _record import Record, add_arguments

PLAN = """
import json, resource, sys, time
from ualm.config import BuildConfig
from ualm.pipelines.build import plan_build
unit_size = sys.argv[2:]  # the default config's unless given
config = BuildConfig.from_dict({"work": {"unit_size": int(unit_size[0])}}) if unit_size else None
started = time.perf_counter()
plan = plan_build([sys.argv[1]], config)
seconds = time.perf_counter() - started
print(json.dumps({"inputs": plan["inputs"], "units": plan["units"], "seconds": seconds,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

PLAIN_LOOP = """
import json, sys, time
started = time.perf_counter()
rows = 0
with open(sys.argv[1], encoding="utf-8") as handle:
    for line in handle:
        json.loads(line)
        rows += 1
print(json.dumps({"rows": rows, "seconds": time.perf_counter() - started}))
"""


def write_manifest(path: Path, rows: int) -> Path:
    with open(path, "w", encoding="utf-8") as handle:
        for i in range(rows):
            handle.write(json.dumps({"id": f"clip-{i:08d}",
                                     "path": f"audio/{i % 1000:04d}/{i:08d}.flac",
                                     "caption": "a dog barks near a busy road",
                                     "license": "cc-by-4.0"}) + "\n")
    return path


def run(script: str, manifest: Path, *args: str) -> dict:
    """The script in a process of its own; its last line of output, as JSON."""
    out = subprocess.run([sys.executable, "-c", script, str(manifest), *args],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--small", type=int, default=100_000)
    parser.add_argument("--large", type=int, default=1_000_000)
    add_arguments(parser)
    args = parser.parse_args()
    if args.quick:
        args.small, args.large = 2_000, 20_000
    record = Record("bench_listing", args)
    folder = Path(tempfile.mkdtemp(prefix="bench-listing-"))
    started = time.perf_counter()
    small = write_manifest(folder / "small.jsonl", args.small)
    large = write_manifest(folder / "large.jsonl", args.large)
    print(f"manifests written in {time.perf_counter() - started:.1f} s")
    plans = {"small": run(PLAN, small), "large": run(PLAN, large)}
    loop = run(PLAIN_LOOP, large)
    for name, plan in plans.items():
        print(f"{name:6s} {plan['inputs']:>10,} rows {plan['units']:>7,} units "
              f"{plan['seconds']:8.1f} s {plan['peak_rss_mb']:8.1f} MB peak RSS")
    print(f"plain json.loads loop over the large manifest: {loop['seconds']:.1f} s")
    rss_ratio = plans["large"]["peak_rss_mb"] / plans["small"]["peak_rss_mb"]
    time_ratio = plans["large"]["seconds"] / loop["seconds"]
    figures = {"rows": {"small": args.small, "large": args.large}, "plans": plans,
               "plain_loop": loop, "peak_rss_ratio_large_to_small": round(rss_ratio, 2),
               "listing_time_ratio_to_plain_loop": round(time_ratio, 2),
               "large_rows_per_second": round(args.large / plans["large"]["seconds"])}
    bars = [record.bar("peak_rss_ratio_large_to_small", round(rss_ratio, 2), "<=", 1.3,
                       f"{args.large:,} rows against {args.small:,}"),
            record.bar("listing_time_ratio_to_plain_loop", round(time_ratio, 2), "<=", 3.0,
                       "dry-run planning against json.loads of every line"),
            record.bar("every_row_planned",
                       int(plans["large"]["inputs"] == loop["rows"] == args.large), "==", 1)]
    return record.finish(figures, bars)


if __name__ == "__main__":
    sys.exit(main())
