"""Data module throughput: samples per second that the training data module (the DataLoader of
UALMDataModule: shard reading, blend mixing, shuffling, layout, packing into batches, one lane
per row of the global batch) delivers, against a bare `tarfile` loop that reads every member of
the same tars. Bar: >= 1.0x (issue 21; 0.8x before).

The same from a bucket (moto's S3 server as its own process on 127.0.0.1): the data module
streaming `s3://` against the same `tarfile` loop over the same objects. Both fetch each shard
from the bucket once in the timed run (the module's shard cache holds this small corpus whole,
so the loop keeps the fetched bytes too) and parse it on every pass. Bar: >= 0.9x.
Prints the bars, writes benchmarks/results/bench_train_data.json (see _record.py); exits 1 below
the bar.

    .venv/bin/python benchmarks/bench_train_data.py [--out DIR] [--samples N] [--rounds R]
    .venv/bin/python benchmarks/bench_train_data.py --quick   # 2,000 samples, one round
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import tarfile
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from _record import Record, add_arguments
from ualm.audio.events import make_event_world
from ualm.config import BuildConfig
from ualm.pipelines.build import build_corpus
from ualm.train.data.datamodule import DataConfig, UALMDataModule
from ualm.train.sequence.text_tokenizer import ByteTokenizer

BAR = 1.0
BUCKET_BAR = 0.9


def tarfile_rate(shards: list[Path] | list[str], samples: int,
                 fetch: Callable[[str], bytes] | None = None) -> tuple[float, int]:
    """Samples/s of reading every member's bytes with `tarfile`, shards cycled as needed; with
    `fetch`, each shard's bytes come from it once (a bucket) and are parsed from memory."""
    seen, started, fetched = 0, time.perf_counter(), {}
    while seen < samples:
        for shard in shards:
            key = None
            if fetch is not None and shard not in fetched:
                fetched[shard] = fetch(str(shard))
            source = {"fileobj": io.BytesIO(fetched[shard])} if fetch else {"name": shard}
            with tarfile.open(**source) as tar:
                for member in tar:
                    if not member.isfile():
                        continue
                    data = tar.extractfile(member)
                    assert data is not None
                    data.read()
                    member_key = member.name.split(".", 1)[0]
                    if member_key != key:
                        seen, key = seen + 1, member_key
    return seen / (time.perf_counter() - started), seen


def module_rate(corpus: Path | str, samples: int) -> tuple[float, int]:
    """Samples/s packed into batches by the data module (what training consumes)."""
    config = DataConfig(seq_len=1024, batch_size=8, shuffle_buffer=32)  # x 8 lanes
    module = UALMDataModule([corpus], config, ByteTokenizer(), codebooks=8)
    started = time.perf_counter()
    packed = 0
    for batch in module.train_dataloader():
        lanes = batch["stream_state"]["lanes"].values()
        packed = sum(c[0] for state in lanes for c in state["counts"].values())
        if packed >= samples:
            break
    return packed / (time.perf_counter() - started), packed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="/tmp/ualm-bench-data")
    parser.add_argument("--samples", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved runs of each")
    add_arguments(parser)
    args = parser.parse_args()
    if args.quick:
        args.samples, args.rounds = 2000, 1
    record = Record("bench_train_data", args)
    out = Path(args.out)
    corpus = out / "corpus"
    if not (corpus / "corpus.json").is_file():
        world = make_event_world(out / "world", per_class=4, heldout_per_class=0, seconds=1.0)
        build_corpus([world.manifests["train"]], corpus,
                     BuildConfig.from_dict({"shards": {"max_samples": 64}, "tokenize": {"codec": "random"}}), engine="local",
                     progress=False)
    shards = sorted(corpus.glob("tokens/*/tokens-*.tar"))
    module_rate(corpus, 500)  # warm the page cache and imports
    raws, mods = [], []
    for _ in range(args.rounds):  # interleaved, best of each: other load on the machine hits both
        raws.append(tarfile_rate(shards, args.samples))
        mods.append(module_rate(corpus, args.samples))
    raw, raw_n = max(raws)
    mod, mod_n = max(mods)
    line = {"benchmark": "train_data", "module_samples_per_second": round(mod),
            "tarfile_samples_per_second": round(raw), "ratio": round(mod / raw, 3),
            "bar": BAR, "module_samples": mod_n, "tarfile_samples": raw_n,
            "rounds": [[round(r), round(m)] for (r, _), (m, _) in zip(raws, mods, strict=True)],
            "shards": len(shards)}
    line["bucket"] = bucket_rates(corpus, shards, args)
    bars = [record.bar("ratio", line["ratio"], ">=", BAR,
                       "data module samples/s over raw tarfile samples/s, best of each"),
            record.bar("bucket_ratio", line["bucket"]["ratio"], ">=", BUCKET_BAR,
                       "the same, both reading s3:// from moto on 127.0.0.1")]
    return record.finish(line, bars)


def bucket_rates(corpus: Path, shards: list[Path], args: argparse.Namespace) -> dict:
    """The corpus copied into a moto bucket; the module and the loop read it from there."""
    from bench_s3_build import MotoServer

    server = MotoServer(Path(args.out) / "moto")
    try:
        os.environ.update({"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench",
                           "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": server.endpoint})
        import s3fs

        fs = s3fs.S3FileSystem(skip_instance_cache=True, use_listings_cache=False)
        fs.mkdir("bench-train-data")
        for path in sorted(p for p in corpus.rglob("*") if p.is_file()):
            relative = path.relative_to(corpus).as_posix()
            if not relative.startswith("_work/"):
                fs.put_file(str(path), f"bench-train-data/corpus/{relative}")
        url = "s3://bench-train-data/corpus"
        objects = [f"bench-train-data/corpus/{p.relative_to(corpus).as_posix()}" for p in shards]
        module_rate(url, 500)  # imports and the filesystem's first connection
        raws, mods = [], []
        for _ in range(args.rounds):
            raws.append(tarfile_rate(objects, args.samples, fetch=fs.cat_file))
            mods.append(module_rate(url, args.samples))
    finally:
        server.stop()
    raw, mod = max(raws)[0], max(mods)[0]
    return {"module_samples_per_second": round(mod), "tarfile_samples_per_second": round(raw),
            "ratio": round(mod / raw, 3),
            "rounds": [[round(r), round(m)] for (r, _), (m, _) in zip(raws, mods, strict=True)]}


if __name__ == "__main__":
    sys.exit(main())
