"""`ualm publish` on a corpus of thousands of files, to the loopback Hub (tests/hub_server.py) and
to a moto S3 server: files/s and MB/s of a first publish, the cost of a rerun that sends nothing,
and the trainer's shard reads from hf:// and s3:// against the local folder.

    PYTHONPATH=src:. .venv/bin/python benchmarks/bench_publish.py [--files 2000] [--kb 64]
    PYTHONPATH=src:. .venv/bin/python benchmarks/bench_publish.py --quick   # 100 files of 16 KiB

The Hub runs in this process, moto's S3 server in another; both on loopback, so the figures
measure the publisher's and the servers' overhead, not a network.

Bars: a rerun sends nothing (no file, no byte, no commit; on the Hub also counted by the server:
no new LFS upload, no new commit), the first publish sends every file, and no blob is uploaded to
the Hub twice. Prints each bar, writes benchmarks/results/bench_publish.json (see _record.py),
exits 1 when a bar is missed.
"""

from __future__ import annotations

import argparse
import logging
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # _record, when run from elsewhere

from _record import Record, add_arguments


def _corpus(root: Path, files: int, kb: int) -> Path:
    """The event corpus, plus `files` trace shards of `kb` KiB (the publisher carries them)."""
    import numpy as np

    from ualm.audio.events import make_event_world
    from ualm.config import BuildConfig
    from ualm.pipelines.build import build_corpus

    world = make_event_world(root / "world", per_class=1, heldout_per_class=0, seconds=1.0,
                             events=("a low tone", "white noise"), text_rows=2, seed=5)
    corpus = build_corpus([world.manifests["train"]], root / "corpus",
                          BuildConfig.from_dict({"shards": {"max_samples": 3}, "tokenize": {"codec": "random"}}), engine="local",
                          progress=False).corpus
    rng = np.random.default_rng(0)
    folder = corpus / "traces"
    folder.mkdir()
    for i in range(files):
        (folder / f"traces-{i:06d}.tar").write_bytes(rng.bytes(kb * 1024))
    return corpus


def _timed(fn, *args, **kwargs) -> tuple[float, object]:
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    return time.perf_counter() - start, result


def _reads(corpus: str) -> float:
    """Seconds to read every token shard of the corpus once, as the trainer does."""
    from ualm.manifests.shard_reader import iter_members
    from ualm.train.data.sources import discover

    shards = sorted({s for src in discover([corpus]) for s in src.shards})
    start = time.perf_counter()
    for _ in range(5):
        for shard in shards:
            for _member in iter_members(shard):
                pass
    return (time.perf_counter() - start) / 5


def _hub_counts(hub) -> tuple[int, int]:
    """(LFS uploads, commits) the loopback Hub has received, over every repository."""
    state = hub.state
    with state.lock:
        commits = sum(len(repo.commits) for repo in state.repos.values())
        return sum(state.lfs_uploads.values()), commits


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--kb", type=int, default=64)
    add_arguments(parser)
    args = parser.parse_args()
    if args.quick:
        args.files, args.kb = 100, 16
    record = Record("bench_publish", args)
    os.environ.setdefault("UALM_CACHE", tempfile.mkdtemp(prefix="ualm-bench-cache-"))
    logging.getLogger("werkzeug").setLevel(logging.WARNING)

    import boto3
    import huggingface_hub.constants as constants
    from tests.hub_server import HubServer

    from ualm.publish import publish

    constants.HF_HUB_OFFLINE, constants.HF_HUB_DISABLE_XET = False, True
    root = Path(tempfile.mkdtemp(prefix="ualm-bench-publish-"))
    corpus = _corpus(root, args.files, args.kb)
    total = sum(p.stat().st_size for p in corpus.rglob("*") if "_work" not in p.parts)
    out: dict[str, object] = {"files": args.files, "kb": args.kb, "mb": round(total / 2**20, 1)}

    with HubServer() as hub:
        os.environ.update({"HF_ENDPOINT": hub.url, "HF_TOKEN": "hf_bench"})
        first, result = _timed(publish, corpus, "hf://datasets/bench/c", batch_files=200)
        before = _hub_counts(hub)
        again, rerun = _timed(publish, corpus, "hf://datasets/bench/c", batch_files=200)
        after = _hub_counts(hub)
        out["hub"] = {"first_s": round(first, 2), "files_per_s": round(result.files / first),
                      "mb_per_s": round(total / 2**20 / first, 1), "commits": result.batches,
                      "files": result.files, "sent": result.sent,
                      "rerun_s": round(again, 2), "rerun_sent": rerun.sent,
                      "rerun_sent_bytes": rerun.sent_bytes, "rerun_commits": rerun.batches,
                      "rerun_server_lfs_uploads": after[0] - before[0],
                      "rerun_server_commits": after[1] - before[1],
                      "uploads_max_per_sha256": max(hub.state.lfs_uploads.values())}
        out["read_hf_s"] = round(_reads("hf://datasets/bench/c"), 4)

    server, endpoint = _moto_process()
    os.environ.update({"AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x",
                       "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": endpoint})
    boto3.client("s3").create_bucket(Bucket="bench")
    first, result = _timed(publish, corpus, "s3://bench/c", batch_files=200)
    again, rerun = _timed(publish, corpus, "s3://bench/c", batch_files=200)
    out["s3"] = {"first_s": round(first, 2), "files_per_s": round(result.files / first),
                 "mb_per_s": round(total / 2**20 / first, 1), "files": result.files,
                 "sent": result.sent, "rerun_s": round(again, 2), "rerun_sent": rerun.sent,
                 "rerun_sent_bytes": rerun.sent_bytes, "rerun_commits": rerun.batches}
    out["read_s3_s"] = round(_reads("s3://bench/c"), 4)
    out["read_local_s"] = round(_reads(str(corpus)), 4)
    server.terminate()
    server.wait()
    hub_, s3 = out["hub"], out["s3"]
    bars = [record.bar("hub_rerun_sent", hub_["rerun_sent"] + hub_["rerun_sent_bytes"]
                       + hub_["rerun_commits"], "<=", 0, "files + bytes + commits, publisher"),
            record.bar("hub_rerun_server_received", hub_["rerun_server_lfs_uploads"]
                       + hub_["rerun_server_commits"], "<=", 0,
                       "LFS uploads + commits, counted by the server"),
            record.bar("s3_rerun_sent", s3["rerun_sent"] + s3["rerun_sent_bytes"]
                       + s3["rerun_commits"], "<=", 0, "files + bytes + commits, publisher"),
            record.bar("hub_uploads_max_per_sha256", hub_["uploads_max_per_sha256"], "<=", 1),
            record.bar("hub_first_sent_every_file", int(hub_["sent"] == hub_["files"]), "==", 1,
                       f"{hub_['sent']} of {hub_['files']}"),
            record.bar("s3_first_sent_every_file", int(s3["sent"] == s3["files"]), "==", 1,
                       f"{s3['sent']} of {s3['files']}")]
    return record.finish(out, bars)


def _moto_process() -> tuple[subprocess.Popen, str]:
    """moto's S3 server in its own process (in this one it would share the GIL with the
    publisher and slow both)."""
    import urllib.request

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p",
                               str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=1)
            break
        except OSError:
            time.sleep(0.1)
    return server, endpoint


if __name__ == "__main__":
    sys.exit(main())
