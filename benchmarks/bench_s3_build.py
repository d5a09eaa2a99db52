"""Benchmark of `ualm build --out s3://bucket/prefix` against a build into a local folder, on the
same inputs, measured side by side in one run.

An S3 protocol server on loopback holds the bucket, as a separate process: moto's S3 behind
tornado's HTTP/1.1 server (`_moto_keepalive.py`, the default), or `--server werkzeug` for moto's own
`moto_server -H 127.0.0.1 -p PORT`, whose development server closes the connection after every
response, so every request pays a TCP connect and a server thread (real stores keep connections
open; the record names the server). Each repeat builds the inputs into a local folder, then into a fresh prefix of
the bucket (A B A B ...), with the default Dask engine (a LocalCluster of 2 workers, start-up
included) and the tokenizer off, as the other throughput benchmarks run. After each pair every
object outside `_work/` is downloaded and its sha256 compared with the local file of that name;
moto's request log gives each S3 build's requests by method, and the server process's CPU
time during each S3 build is recorded (it runs on the same cores as the build).

Bars: S3 throughput at least 0.7x the local throughput in every pair (the worst pair counts,
stricter than best of each; best of each is reported beside it), and byte-identical output.

    .venv/bin/python benchmarks/bench_s3_build.py            # full run: 2,000 clips, 2 pairs
    .venv/bin/python benchmarks/bench_s3_build.py --quick    # 200 clips, 1 pair

Prints each bar, writes benchmarks/results/bench_s3_build.json (see _record.py), exits 1 when a
bar is missed.
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from _record import Record, add_arguments
from bench_build import make_inputs
from ualm.config import BuildConfig
from ualm.engines.dask import DaskEngine
from ualm.pipelines.build import build_corpus

BUCKET = "ualm-bench"
WORK = "_work/"
REQUEST = re.compile(r'"([A-Z]+) (\S+) HTTP/[\d.]+"\s*(\d{3})')
SERVERS = {"keepalive": "moto behind tornado's keep-alive HTTP/1.1 server on 127.0.0.1 "
                         "(separate process)",
           "werkzeug": "moto_server on 127.0.0.1 (separate process; a connection per request)"}
COLOURS = re.compile(r"\x1b\[[0-9;]*m")  # werkzeug colours some status lines


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class MotoServer:
    """moto's S3 server as its own process; its request log (one line per request) goes to a
    file that `requests_since` counts."""

    def __init__(self, folder: Path, kind: str = "keepalive") -> None:
        self.port = _free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.log_path = folder / "moto-requests.log"
        folder.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "wb")  # noqa: SIM115 (closed in stop)
        if kind == "werkzeug":
            command = [str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p",
                       str(self.port)]
        else:
            command = [sys.executable, str(Path(__file__).with_name("_moto_keepalive.py")),
                       str(self.port)]
        self.process = subprocess.Popen(command, stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{self.endpoint}/moto-api/", timeout=2)
                break
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"moto_server did not start (see {self.log_path})") from None
                time.sleep(0.2)

    def cpu_seconds(self) -> float:
        """User + system CPU time of the server process so far (it shares the cores with the
        build: its time is what a store on other machines would not cost here)."""
        import psutil

        times = psutil.Process(self.process.pid).cpu_times()
        return times.user + times.system

    def offset(self) -> int:
        self._log.flush()
        return self.log_path.stat().st_size

    def requests_since(self, offset: int) -> dict[str, int]:
        """Requests by method (and by the first path element below the prefix for GET/HEAD/PUT)
        logged after `offset`."""
        with open(self.log_path, "rb") as handle:
            handle.seek(offset)
            text = COLOURS.sub("", handle.read().decode("utf-8", "replace"))
        counts: collections.Counter[str] = collections.Counter()
        for method, path, _status in REQUEST.findall(text):
            counts[method] += 1
            counts["total"] += 1
            path, _, query = path.partition("?")
            parts = path.strip("/").split("/")
            if "list-type" in query:
                counts["LIST"] += 1
            elif len(parts) >= 3:  # bucket, prefix, then the corpus's top folder
                where = "/".join(parts[2:4]) if parts[2] == WORK.rstrip("/") else parts[2]
                counts[f"{method} {where}"] += 1
        return dict(sorted(counts.items()))

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self._log.close()


def build(manifest: Path, out: str | Path) -> dict:
    """A full build on a fresh 2-worker LocalCluster (start-up included)."""
    config = BuildConfig.from_dict({"tokenize": {"enabled": False}})  # the audio stages only
    started = time.perf_counter()
    with DaskEngine(workers=2) as engine:
        result = build_corpus([manifest], out, config, engine=engine, progress=False)
    seconds = time.perf_counter() - started
    summary = result.summary
    return {"seconds": seconds, "inputs": summary["inputs"], "samples": summary["samples"],
            "clips_per_second": summary["inputs"] / seconds}


def local_digests(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()
            and not p.relative_to(root).as_posix().startswith(WORK)}


def s3_digests(fs: Any, prefix: str) -> dict[str, str]:
    keys = [k for k in fs.find(prefix) if not k[len(prefix) + 1:].startswith(WORK)]
    return {k[len(prefix) + 1:]: hashlib.sha256(data).hexdigest()
            for k, data in sorted(fs.cat(keys).items())} if keys else {}


def compare(local: dict[str, str], remote: dict[str, str]) -> dict:
    differ = sorted(n for n in local.keys() & remote.keys() if local[n] != remote[n])
    return {"objects": len(remote), "files": len(local), "differ": differ[:10],
            "only_local": sorted(local.keys() - remote.keys())[:10],
            "only_s3": sorted(remote.keys() - local.keys())[:10],
            "identical": bool(local) and local == remote}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=2000)
    parser.add_argument("--out", type=Path, default=Path("bench-out"))
    parser.add_argument("--repeats", type=int, default=2, help="A B pairs (local, then S3)")
    parser.add_argument("--server", choices=("keepalive", "werkzeug"), default="keepalive",
                        help="moto behind a keep-alive HTTP/1.1 server, or moto_server itself")
    add_arguments(parser)
    args = parser.parse_args()
    if args.quick:
        args.clips, args.repeats = 200, 1
    record = Record("bench_s3_build", args)

    log(f"writing {args.clips} clips under {args.out}/inputs ...")
    manifest = make_inputs(args.out / "inputs", args.clips)
    runs = args.out / "s3-runs"
    server = MotoServer(runs, args.server)
    try:
        # before any client or Dask worker starts: they read these from the environment
        os.environ.update({"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench",
                           "AWS_DEFAULT_REGION": "us-east-1",
                           "AWS_ENDPOINT_URL": server.endpoint})
        import s3fs

        fs = s3fs.S3FileSystem(skip_instance_cache=True, use_listings_cache=False)
        fs.mkdir(BUCKET)
        figures = measure(args, manifest, runs, server, fs)
    finally:
        server.stop()

    pairs = figures["pairs"]
    per_pair = [p["ratio"] for p in pairs]
    best_local = min(p["local"]["seconds"] for p in pairs)
    best_s3 = min(p["s3"]["seconds"] for p in pairs)
    figures["ratios"] = {"worst_pair": min(per_pair), "per_pair": per_pair,
                         "best_of_each": best_local / best_s3}
    identical = all(p["bytes"]["identical"] for p in pairs)
    print(f"S3 / local throughput per pair: {[round(r, 3) for r in per_pair]}; best of each: "
          f"{figures['ratios']['best_of_each']:.3f}; byte-identical: {identical}", flush=True)
    bars = [record.bar("s3_vs_local_throughput", round(min(per_pair), 4), ">=", 0.7,
                       f"worst of {len(pairs)} A B pairs (best of each: "
                       f"{figures['ratios']['best_of_each']:.3f}); Dask, 2 workers, tokens off; "
                       f"{args.server} server"),
            record.bar("byte_identical", identical, "==", True,
                       "every object outside _work/ against the local file, every pair")]
    return record.finish(figures, bars)


def measure(args: argparse.Namespace, manifest: Path, runs: Path, server: MotoServer,
            fs: Any) -> dict:
    figures: dict = {"clips": args.clips, "repeats": args.repeats, "engine": "dask, 2 workers",
                     "store": SERVERS[args.server], "pairs": []}
    for repeat in range(args.repeats):
        local = runs / "local"
        shutil.rmtree(local, ignore_errors=True)
        log(f"[{repeat + 1}/{args.repeats}] local folder ...")
        local_run = build(manifest, local)
        log(f"  {local_run}")
        prefix = f"{BUCKET}/corpus-{repeat}"
        log(f"[{repeat + 1}/{args.repeats}] s3://{prefix} ...")
        offset, cpu = server.offset(), server.cpu_seconds()
        s3_run = build(manifest, f"s3://{prefix}")
        s3_run["server_cpu_seconds"] = server.cpu_seconds() - cpu
        s3_run["requests"] = server.requests_since(offset)
        log(f"  {s3_run}")
        same = compare(local_digests(local), s3_digests(fs, prefix))
        log(f"  bytes: {same}")
        figures["pairs"].append({"local": local_run, "s3": s3_run, "bytes": same,
                                 "ratio": local_run["seconds"] / s3_run["seconds"]})
        fs.rm(prefix, recursive=True)  # moto holds objects in memory
    return figures


if __name__ == "__main__":
    sys.exit(main())
