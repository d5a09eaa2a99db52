"""Data module throughput: samples per second that the training data module (the DataLoader of
UALMDataModule: shard reading, blend mixing, shuffling, layout, packing into batches, one lane
per row of the global batch) delivers, against a bare `tarfile` loop that reads every member of
the same tars. Bar: >= 1.0x (issue 21; 0.8x before).
Prints the bar, writes benchmarks/results/bench_train_data.json (see _record.py); exits 1 below
the bar.

    .venv/bin/python benchmarks/bench_train_data.py [--out DIR] [--samples N] [--rounds R]
    .venv/bin/python benchmarks/bench_train_data.py --quick   # 2,000 samples, one round
"""

from __future__ import annotations

import argparse
import os
import sys
import tarfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from _record import Record, add_arguments
from ualm.audio.events import make_event_world
from ualm.config import BuildConfig
from ualm.pipelines.build import build_corpus
from ualm.train.data.datamodule import DataConfig, UALMDataModule
from ualm.train.sequence.text_tokenizer import ByteTokenizer

BAR = 1.0


def tarfile_rate(shards: list[Path], samples: int) -> tuple[float, int]:
    """Samples/s of reading every member's bytes with `tarfile`, shards cycled as needed."""
    seen, started = 0, time.perf_counter()
    while seen < samples:
        for shard in shards:
            key = None
            with tarfile.open(shard) as tar:
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


def module_rate(corpus: Path, samples: int) -> tuple[float, int]:
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
                     BuildConfig.from_dict({"shards": {"max_samples": 64}}), engine="local",
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
    bars = [record.bar("ratio", line["ratio"], ">=", BAR,
                       "data module samples/s over raw tarfile samples/s, best of each")]
    return record.finish(line, bars)


if __name__ == "__main__":
    sys.exit(main())
