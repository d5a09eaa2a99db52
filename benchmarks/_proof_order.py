"""Diagnosis (no record): how many classes of the event world a training batch holds, for a
given shuffle buffer. The world's corpus is written class by class, so each shard holds about
two classes; a lane reads whole shards.

    python benchmarks/_proof_order.py --corpus /tmp/proof-diag/train --buffer 64 --steps 600
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import json
import statistics

from ualm.train.blend.spec import BlendSpec, SourceSpec
from ualm.train.config import TrainConfig
from ualm.train.data import stream
from ualm.train.data.datamodule import STATE_KEY, UALMDataModule
from ualm.train.sequence.text_tokenizer import load_text_tokenizer

SOURCES = {"events-gen": ("generation", 0.6), "events-und": ("understanding", 0.35),
           "events-text": ("text", 0.05)}
"""The proof benchmark's blend (its module imports the audio stack, which this does not need)."""


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--corpus", default="/tmp/proof-diag/train")
    p.add_argument("--buffer", type=int, default=64)
    p.add_argument("--steps", type=int, default=600)
    p.add_argument("--window", type=int, default=50)
    a = p.parse_args()
    ids: dict[tuple, str] = {}  # (lane, ref): refs number samples within a lane
    made = stream.PackedStream._make

    def recording(self, ref, meta, codes):
        ids[(self.stream, *ref)] = str(meta.get("input_id"))
        return made(self, ref, meta, codes)

    stream.PackedStream._make = recording  # type: ignore[method-assign]
    base = TrainConfig.from_yaml("tiny")
    data = dataclasses.replace(base.data, shuffle_buffer=a.buffer)
    dm = UALMDataModule([a.corpus], data, load_text_tokenizer("bytes"), 8,
                        BlendSpec(sources=tuple(
                        SourceSpec(name=n, task=t, corpus=a.corpus, weight=w, tokens=1, samples=1)
                        for n, (t, w) in SOURCES.items())))
    dm.setup("fit")
    batches = iter(dm.train_dataloader())
    per_step = []
    for _ in range(a.steps):
        refs = next(batches)[STATE_KEY]["refs"]
        step = collections.defaultdict(list)
        for lane, lane_refs in refs.items():
            for ref in lane_refs:
                name = ids[(lane, *ref)]
                if name.startswith("train-"):
                    _, kind, cls, _ = name.split("-")
                    step[kind].append(int(cls))
        per_step.append(step)
    out = {"buffer": a.buffer, "steps": a.steps}
    for kind in ("gen", "und"):
        distinct = [len(set(s[kind])) for s in per_step]
        windows = []
        for w in range(0, a.steps - a.window + 1, a.window):
            counts = collections.Counter(c for s in per_step[w : w + a.window] for c in s[kind])
            windows.append(len(counts))
        out[kind] = {"samples_per_step": round(statistics.fmean(len(s[kind]) for s in per_step), 1),
                     "classes_per_step": round(statistics.fmean(distinct), 1),
                     f"classes_per_{a.window}_steps": round(statistics.fmean(windows), 1),
                     "of": 49}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
