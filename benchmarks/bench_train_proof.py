"""The learning proof: the tiny config trained on the event world on 2 CPU cores in at most
10 minutes, then evaluated on held-out clips (understanding accuracy, generation class accuracy
by code histogram). Prints one JSON line at the end.

    .venv/bin/python benchmarks/bench_train_proof.py [--out DIR] [--minutes 10] [--steps N]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from ualm.audio.events import make_event_world
from ualm.config import BuildConfig
from ualm.pipelines.build import build_corpus
from ualm.train.blend_spec import BlendSpec, SourceSpec
from ualm.train.config import TrainConfig
from ualm.train.module import load_trained
from ualm.train.proof import proof, summarize
from ualm.train.trainer import train

WORLD = {"per_class": 6, "understanding_per_class": 4, "heldout_per_class": 2, "seconds": 1.0,
         "seed": 0}
SHARES = {("events-gen", "generation"): 0.65, ("events-und", "understanding"): 0.3,
          ("events-text", "text"): 0.05}
"""Sample shares: generation converges more slowly (UALM upsamples it too), and the world has
only a few text rows."""


def proof_blend(corpus: Path) -> BlendSpec:
    """Sample shares for the proof: mostly audio tasks (the world has only a few text rows)."""
    return BlendSpec(sources=tuple(
        SourceSpec(name=name, task=task, corpus=str(corpus), weight=w, tokens=1, samples=1)
        for (name, task), w in SHARES.items()))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default="/tmp/ualm-bench-proof")
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--steps", type=int, default=None, help="default: the tiny preset's")
    args = parser.parse_args()
    out = Path(args.out)
    started = time.perf_counter()
    world = make_event_world(out / "world", **WORLD)
    corpora = {}
    for split in ("train", "heldout"):
        corpora[split] = out / split
        build_corpus([world.manifests[split]], corpora[split],
                     BuildConfig.from_dict({"shards": {"max_samples": 100}}), engine="local",
                     progress=False)
    built = time.perf_counter() - started
    config = TrainConfig.from_yaml("tiny")
    run = dataclasses.replace(config.run, max_minutes=args.minutes, progress_bar=False,
                              max_steps=args.steps or config.run.max_steps)
    config = dataclasses.replace(config, run=run)
    result = train([corpora["train"]], config, out / "run", blend=proof_blend(corpora["train"]),
                   resume=False)
    model = load_trained(result.checkpoint)
    evaluated = time.perf_counter()
    metrics = proof(model, world, corpora["train"], corpora["heldout"])
    line = {"benchmark": "train_proof", **summarize(metrics),
            "understanding_questions": metrics["understanding"]["questions"],
            "generation_captions": metrics["generation"]["captions"],
            "classes": metrics["generation"]["classes"], "steps": result.steps,
            "train_seconds": round(result.seconds, 1), "final_loss": result.final_loss,
            "positions_per_second": round(result.positions_per_second),
            "build_seconds": round(built, 1),
            "eval_seconds": round(time.perf_counter() - evaluated, 1),
            "threads": config.run.threads,
            "examples": metrics["understanding"]["examples"]}
    print(json.dumps(line))
    ok = line["understanding_accuracy"] >= 0.9 and line["generation_accuracy"] >= 0.8
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
