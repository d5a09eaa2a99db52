"""Teacher request throughput of `ualm synth`'s request layer (`ualm.synth.requester`: cache,
concurrency limit, budget accounting, retries, schema check, through the real `openai` client)
against a loopback OpenAI-compatible server that answers every request after a fixed latency.

For concurrency 1, 8 and 64: requests/s over enough requests to fill the pipe, against the bar
0.8 x concurrency / latency; then the same requests again through a fresh requester with the
same cache, which must send none. The server runs in its own process, as a real one would.

    .venv/bin/python benchmarks/bench_synth.py [--latency 0.2] [--per-slot 10]

    .venv/bin/python benchmarks/bench_synth.py --quick   # concurrency 1 and 8, 4 per slot

Bars, per concurrency c: at least 0.8 x c / latency requests/s, every request sent once and
answered valid, and the rerun sends none. Prints a table and each bar, writes
benchmarks/results/bench_synth.json (see _record.py), exits 1 when a bar is missed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from _record import Record, add_arguments
from ualm.synth.config import SynthConfig
from ualm.synth.requester import Limits, ReplyCache, Requester
from ualm.synth.teachers import make_teacher
from ualm.synth.traces import Job


def jobs(n: int, tag: str) -> list[Job]:
    """Distinct enrichment jobs (distinct captions, so no two share a cache entry)."""
    from ualm.synth.clips import Clip

    events = ("a low tone", "white noise", "a click train", "a rising chirp")
    return [Job("enrichment", Clip(f"{tag}-{i:05d}", (f"{events[i % 4]} then {events[(i + 1) % 4]}"
                                                        f" take {tag}-{i}",), 10.0, "bench",
                                   "", "")) for i in range(n)]


async def run(base_url: str, work: list[Job], concurrency: int, cache: Path,
              timeout: float) -> tuple[float, Requester, list[str]]:
    teacher = make_teacher(f"openai:bench@{base_url}", timeout=timeout, concurrency=concurrency)
    requester = Requester(teacher, Limits.of(SynthConfig(concurrency=concurrency)),
                          {"temperature": 0.0, "max_tokens": 512, "seed": 0}, ReplyCache(cache))
    pending = iter(work)
    statuses: list[str] = []

    async def worker() -> None:
        for job in pending:
            statuses.append((await requester.ask(job.request(), job.clip.seconds)).status)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    seconds = time.perf_counter() - started
    await teacher.close()
    return seconds, requester, statuses


def served(base_url: str) -> int:
    with urllib.request.urlopen(base_url.removesuffix("/v1") + "/stats", timeout=10) as r:
        return int(json.load(r)["requests"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--per-slot", type=int, default=10,
                        help="requests per concurrency slot (at least 30 in all)")
    parser.add_argument("--concurrency", default="1,8,64")
    add_arguments(parser)
    args = parser.parse_args()
    if args.quick:
        args.concurrency, args.per_slot = "1,8", 4
    record = Record("bench_synth", args)
    bars = []
    server = subprocess.Popen([sys.executable, "-m", "ualm.testing.teacher_server", str(args.latency)],
                              stdout=subprocess.PIPE, text=True, env=os.environ.copy())
    try:
        base_url = json.loads(server.stdout.readline())["base_url"]  # type: ignore[union-attr]
        # The client is CPU-bound near the top: on a shared machine, read the rates with the
        # load average beside them (the CPU per request says what an idle core would allow).
        figures: dict[str, object] = {"latency_s": args.latency, "cores": os.cpu_count(),
                                      "load_average_1min": round(os.getloadavg()[0], 2)}
        print(f"{'concurrency':>11s} {'requests':>8s} {'seconds':>8s} {'req/s':>8s} "
              f"{'bar':>7s} {'rerun sent':>10s} {'cpu ms/req':>10s}")
        with tempfile.TemporaryDirectory() as tmp:
            # warm-up: imports, the client's first connections, the server's first replies
            asyncio.run(run(base_url, jobs(16, "warm"), 8, Path(tmp) / "warm", 30.0))
            for c in (int(x) for x in args.concurrency.split(",")):
                work = jobs(max(30, c * args.per_slot), f"c{c}")
                cache = Path(tmp) / f"cache-{c}"
                before = served(base_url)
                cpu = time.process_time()
                seconds, req, statuses = asyncio.run(run(base_url, work, c, cache, 30.0))
                cpu_ms = 1000 * (time.process_time() - cpu) / len(work)
                sent = served(base_url) - before
                _, again, _ = asyncio.run(run(base_url, work, c, cache, 30.0))
                rerun_sent = served(base_url) - before - sent
                rate = len(work) / seconds
                bar = 0.8 * c / args.latency
                bars += [
                    record.bar(f"concurrency_{c}_requests_per_s", round(rate, 1), ">=",
                               round(bar, 1), f"0.8 x {c} / {args.latency} s"),
                    record.bar(f"concurrency_{c}_sent_once_and_valid",
                               int(sent == req.stats.sent == len(work)
                                   and statuses.count("valid") == len(work)), "==", 1,
                               f"{sent} sent (server count), {statuses.count('valid')} valid, "
                               f"of {len(work)}"),
                    record.bar(f"concurrency_{c}_rerun_requests_sent",
                               rerun_sent + again.stats.sent, "<=", 0,
                               "server count plus the requester's own")]
                passed = all(b.passed for b in bars[-3:])
                figures[f"concurrency_{c}"] = {
                    "requests": len(work), "seconds": round(seconds, 3),
                    "requests_per_s": round(rate, 1), "bar_requests_per_s": round(bar, 1),
                    "rerun_requests_sent": rerun_sent, "rerun_cache_hits": again.stats.cache_hits,
                    "valid": statuses.count("valid"), "passed": passed,
                    "client_cpu_ms_per_request": round(cpu_ms, 2)}
                print(f"{c:11d} {len(work):8d} {seconds:8.2f} {rate:8.1f} {bar:7.1f} "
                      f"{rerun_sent:10d} {cpu_ms:10.2f}")
    finally:
        server.terminate()
        server.wait(10)
    return record.finish(figures, bars)


if __name__ == "__main__":
    sys.exit(main())
