"""A blend the trainer keeps (issue 23): the realised token shares of the demo's blend, per task
and per source, against the spec, when samples are longer than the training sequence.

Builds the demo's event world (as examples/demo.yaml's `sources.events` says: its events, clips
per class, seconds, text rows and seed; random codec), writes reasoning traces into it with the
rule teacher (`ualm synth`: enrichment, dialogue, reflection; a self-reflection trace holds two
clips and is longer than the tiny preset's 512 positions), blends it with the demo's targets counting at the trainer's
seq_len (`ualm blend --seq_len`), then streams N batches through the training data module (the
tiny preset's data section) and compares the realised shares with the spec.
Bars: max |realised - spec| <= 0.01 over the tasks and over the sources; no sample skipped as
too long.

Before (commit 9575c22, on the demo's world of then: 3 clips per class of 49 classes; the same
blend and 4,000 batches): reasoning realised 0.0254 where the spec said 0.1, self-reflection 0.0 of its 0.0558 (1,370 traces skipped as `too_long`
while the blend had counted their tokens), generation 0.4849 for 0.45, understanding 0.4356 for
0.4: max |realised - spec| 0.0746 over the tasks, 0.0558 over the sources.

    .venv/bin/python benchmarks/bench_blend_kept.py [--out DIR] [--batches N]
    .venv/bin/python benchmarks/bench_blend_kept.py --quick   # 1 clip per class, 500 batches
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import yaml

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from _record import Record, add_arguments
from ualm.audio.events import EVENTS, make_event_world
from ualm.config import BuildConfig
from ualm.pipelines.build import build_corpus
from ualm.synth.config import SynthConfig
from ualm.synth.run import synth_corpus
from ualm.train.blend.stats import corpus_stats, cut_note
from ualm.train.blend.weights import BlendOptions, compute_blend
from ualm.train.config import TrainConfig
from ualm.train.data.datamodule import STATE_KEY, UALMDataModule
from ualm.train.sequence.text_tokenizer import ByteTokenizer

DEMO = yaml.safe_load((Path(__file__).resolve().parents[1] / "examples" / "demo.yaml").read_text())
TARGETS = DEMO["blend"]["targets"]
WORLD = DEMO["sources"]["events"]
"""examples/demo.yaml's blend targets and event world."""
BAR = 0.01
KINDS = ("enrichment", "dialogue", "reflection")


def corpus_with_traces(out: Path, per_class: int) -> Path:
    """The demo's world, built and tokenized, with rule-teacher traces (reused when there)."""
    events = WORLD["events"] or list(EVENTS)
    out = out / f"{len(events)}-events-{per_class}-per-class"  # a corpus per world
    corpus = out / "corpus"
    if (corpus / "synth" / "funnel.json").is_file():
        return corpus
    world = make_event_world(out / "world", per_class=per_class, heldout_per_class=0,
                             seconds=WORLD["seconds"], text_rows=WORLD["text_rows"],
                             events=events, seed=WORLD["seed"])
    config = BuildConfig.from_dict({"shards": {"max_samples": 64},
                                    "tokenize": {"codec": "random"}})
    build_corpus([world.manifests["train"]], corpus, config, engine="local", progress=False)
    synth_corpus(corpus, SynthConfig(kinds=KINDS), progress=False)
    return corpus


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="/tmp/ualm-bench-blend-kept")
    parser.add_argument("--per-class", type=int, default=WORLD["per_class"])
    parser.add_argument("--batches", type=int, default=4000)
    add_arguments(parser)
    args = parser.parse_args()
    if args.quick:
        args.per_class, args.batches = 1, 500
        args.out = args.out.rstrip("/") + "-quick"
    record = Record("bench_blend_kept", args)
    corpus = corpus_with_traces(Path(args.out), args.per_class)
    data = TrainConfig.from_yaml("tiny").data
    stats = corpus_stats([corpus], ByteTokenizer(), None, data.seq_len)
    spec = compute_blend(stats, BlendOptions(targets=TARGETS, temperature=1.0, max_epochs=4.0,
                                             allow_infeasible=True))
    module = UALMDataModule([corpus], data, ByteTokenizer(), codebooks=8, blend=spec)
    module.setup()
    started = time.perf_counter()
    batches = iter(module.train_dataloader())
    for _ in range(args.batches):
        module.record(next(batches).pop(STATE_KEY))
    seconds = time.perf_counter() - started
    realised = module.realised()
    planned = spec.task_shares()
    tasks = {t: {"spec": round(planned.get(t, 0.0), 4),
                 "realised": round(realised["tasks"].get(t, {}).get("token_share", 0.0), 4)}
             for t in spec.targets}
    sources = {f"{s.name}/{s.task}": {
        "spec": round(s.weight, 4),
        "realised": round(realised["sources"].get(f"{s.name}/{s.task}", {}).get(
            "token_share", 0.0), 4)} for s in spec.sources}
    print(f"{'task / source':34s} {'spec':>7s} {'realised':>9s}")
    for name, row in [*tasks.items(), *sources.items()]:
        print(f"{name:34s} {row['spec']:7.4f} {row['realised']:9.4f}")
    task_dev = max(abs(r["realised"] - r["spec"]) for r in tasks.values())
    source_dev = max(abs(r["realised"] - r["spec"]) for r in sources.values())
    extra, unusable = stats.cut()
    figures = {"benchmark": "blend_kept", "seq_len": data.seq_len, "batches": args.batches,
               "rows_per_batch": data.batch_size, "seconds": round(seconds, 1),
               "samples_trained": sum(s["samples"] for s in realised["sources"].values()),
               "samples_cut": realised["cut"], "skipped": realised["skipped"],
               "stats_extra_pieces": extra, "stats_unusable": unusable,
               "max_task_deviation": round(task_dev, 4),
               "max_source_deviation": round(source_dev, 4),
               "tasks": tasks, "sources": sources, "blend_note": cut_note(stats)}
    print(cut_note(stats))
    print(f"trained on {figures['samples_trained']:,} samples ({realised['cut']:,} cut into "
          f"pieces), skipped {realised['skipped']}, in {seconds:.1f} s")
    bars = [record.bar("max_task_deviation", figures["max_task_deviation"], "<=", BAR,
                       "max over tasks of |realised token share - spec|"),
            record.bar("max_source_deviation", figures["max_source_deviation"], "<=", BAR,
                       "max over sources of |realised token share - spec weight|"),
            record.bar("too_long_skipped", realised["skipped"].get("too_long", 0), "==", 0,
                       "samples the trainer skipped as longer than a sequence")]
    return record.finish(figures, bars)


if __name__ == "__main__":
    sys.exit(main())
