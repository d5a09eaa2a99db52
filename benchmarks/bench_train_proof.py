"""The learning proof: the tiny config trained on the event world on 2 CPU cores in at most
10 minutes, then evaluated on held-out clips (understanding accuracy, generation class accuracy
by code histogram).

The learning rate is chosen on a validation split, never on the held-out one: a second world
(another world seed, the same classes) whose clips neither training nor the held-out split
holds. Each candidate of `--lrs` trains with `--select-seed`; the one with the best mean of
understanding and generation accuracy on the validation clips is kept. Then every seed of
`--seeds` trains with it (the selection run of that seed is reused: training is deterministic
for a seed and learning rate, and selection saw only validation scores), and each is scored on
the held-out clips once. `--lr X` skips the selection.

The world's corpus is written class by class (a 100-sample shard holds about two classes) and
each row of the batch reads whole shards: the tiny preset's shuffle buffer (1024 a row) is what
makes a batch window hold most classes rather than a few neighbouring ones (see
benchmarks/_proof_order.py); each run records the buffer it trained with.

Bars (checked in code): on every seed, held-out understanding accuracy >= 0.9 (the most likely
offered option; greedy free text is reported beside) and generation class accuracy >= 0.8;
every run's training within --minutes (10). The spread (each seed, mean, standard deviation) is
reported beside them.

`--control zero-codes` builds the corpora with the tokenize stage writing all-zero codes: the
audio carries nothing, and the figures must fall far below the real run's: its bars are the
real ones less CONTROL_MARGIN, from below (it writes bench_train_proof_zero_codes.json).

    .venv/bin/python benchmarks/bench_train_proof.py              # 2 lrs on seed 0, seeds 0-2
    .venv/bin/python benchmarks/bench_train_proof.py --lr 0.004 --seeds 0   # one run
    .venv/bin/python benchmarks/bench_train_proof.py --quick      # a small world, 40 steps
    .venv/bin/python benchmarks/bench_train_proof.py --validation-only --lrs 0.005 \
        --model layers=4                                          # try a change, held-out unseen

Prints each run and each bar, writes benchmarks/results/bench_train_proof.json (see
_record.py), exits 1 when a bar is missed.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from _record import Record, add_arguments
from ualm.audio.events import EVENTS, make_event_world
from ualm.config import BuildConfig
from ualm.pipelines.build import build_corpus
from ualm.train.blend.spec import BlendSpec, SourceSpec
from ualm.train.config import TrainConfig
from ualm.train.model.generate import GenerationConfig
from ualm.train.model.module import load_trained
from ualm.train.model.proof import proof, summarize, with_heldout_of, zeroed_codes
from ualm.train.trainer import train

UNDERSTANDING_BAR, GENERATION_BAR = 0.9, 0.8
CONTROL_MARGIN = 0.3
"""The zero-codes control passes when it scores at least this far below each bar."""
STOP_MARGIN_S = 6.0
"""Training stops this long before the time bar: the timer starts after set-up and is read
after each step, so a run cut by it ends a little past the limit it was given."""

SHARES = {"generation": 0.6, "understanding": 0.35, "text": 0.05}
"""Sample shares: generation samples carry 8 codebooks of targets and converge more slowly
(UALM upsamples generation too); understanding samples are long (three turns) but cheap; the
world has only a few text rows."""
SOURCES = {"generation": "events-gen", "understanding": "events-und", "text": "events-text"}


def proof_blend(corpus: Path, shares: dict[str, float]) -> BlendSpec:
    """The blend of the proof: sample shares per task, one source each."""
    return BlendSpec(sources=tuple(
        SourceSpec(name=SOURCES[task], task=task, corpus=str(corpus), weight=w, tokens=1,
                   samples=1) for task, w in shares.items()))


def _floats(text: str) -> list[float]:
    return [float(x) for x in text.split(",") if x.strip()]


def _spread(values: list[float]) -> dict[str, float]:
    return {"mean": round(statistics.fmean(values), 4),
            "std": round(statistics.stdev(values), 4) if len(values) > 1 else 0.0,
            "min": round(min(values), 4), "max": round(max(values), 4),
            "each": [round(v, 4) for v in values]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="/tmp/ualm-bench-proof")
    parser.add_argument("--minutes", type=float, default=10.0,
                        help="training stops here; also the bar on each run's training time")
    parser.add_argument("--steps", type=int, default=3200,
                        help="the cosine schedule's length (training also stops at --minutes); "
                             "about 0.17 s a step on 2 quiet cores: 3200 ends before the cap")
    parser.add_argument("--events", type=int, default=len(EVENTS),
                        help="events in the world (classes: n singles + n(n-1) ordered pairs)")
    parser.add_argument("--per-class", type=int, default=40,
                        help="training generation clips per class (fewer: the model memorises)")
    parser.add_argument("--understanding-per-class", type=int, default=40)
    parser.add_argument("--questions", type=int, default=3,
                        help="turns per training understanding clip: its question, the other "
                             "end's, a description")
    parser.add_argument("--heldout-per-class", type=int, default=2)
    parser.add_argument("--validation-per-class", type=int, default=2,
                        help="clips per class and task of the validation world (world seed 1)")
    parser.add_argument("--seconds", type=float, default=1.0)
    parser.add_argument("--seeds", default="0,1,2",
                        help="run.seed values (initial weights, condition dropout) scored")
    parser.add_argument("--seed", type=int, default=None, help="one seed (as --seeds N)")
    parser.add_argument("--lrs", default="0.005,0.008",
                        help="peak learning rates to choose from on the validation split")
    parser.add_argument("--select-seed", type=int, default=0)
    parser.add_argument("--lr", type=float, default=None,
                        help="a fixed peak learning rate (no selection)")
    parser.add_argument("--shares", default=",".join(f"{t}={w}" for t, w in SHARES.items()),
                        help="sample shares per task, e.g. generation=0.6,understanding=0.35,"
                             "text=0.05")
    parser.add_argument("--validation-only", action="store_true",
                        help="train --lrs on --select-seed, print the validation scores, stop "
                             "(for trying a change without looking at the held-out clips)")
    parser.add_argument("--model", default="",
                        help="tiny preset's model fields to change, e.g. layers=4,hidden_size=96")
    parser.add_argument("--guidance", type=float, default=3.0)
    parser.add_argument("--top-k", type=int, default=20)
    parser.add_argument("--temperature", type=float, default=0.8)
    parser.add_argument("--control", choices=["none", "zero-codes"], default="none")
    add_arguments(parser)
    args = parser.parse_args()
    if args.quick:
        args.events, args.per_class, args.understanding_per_class = 3, 6, 6
        args.heldout_per_class = args.validation_per_class = 1
        args.steps, args.minutes = 40, 3.0
        args.lrs, args.seeds = "0.003,0.006", "0,1"
    seeds = [args.seed] if args.seed is not None else [int(x) for x in args.seeds.split(",")]
    lrs = [args.lr] if args.lr is not None else _floats(args.lrs)
    name = "bench_train_proof" + ("_zero_codes" if args.control == "zero-codes" else "")
    record = Record(name, args)
    log = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731
    out = Path(args.out) / (args.control if args.control != "none" else "real")
    shares = {task: float(w) for task, w in (item.split("=") for item in args.shares.split(","))}
    started = time.perf_counter()
    events = tuple(EVENTS)[: args.events]
    world = make_event_world(out / "world", per_class=args.per_class,
                             understanding_per_class=args.understanding_per_class,
                             heldout_per_class=args.heldout_per_class, seconds=args.seconds,
                             events=events, questions=args.questions, seed=0)
    validation = make_event_world(out / "validation-world", per_class=0,
                                  understanding_per_class=0,
                                  heldout_per_class=args.validation_per_class,
                                  seconds=args.seconds, events=events, questions=args.questions,
                                  seed=1)
    corpora = {}
    zero = zeroed_codes() if args.control == "zero-codes" else contextlib.nullcontext()
    with zero:
        for split, manifest in [("train", world.manifests["train"]),
                                ("heldout", world.manifests["heldout"]),
                                ("validation", validation.manifests["heldout"])]:
            corpora[split] = out / split
            shutil.rmtree(corpora[split], ignore_errors=True)
            build_corpus([manifest], corpora[split],
                         BuildConfig.from_dict({"shards": {"max_samples": 100}, "tokenize": {"codec": "random"}}),
                         engine="local", progress=False)
    built = time.perf_counter() - started
    validation_view = with_heldout_of(world, validation)
    sampling = GenerationConfig(args.guidance, args.top_k, args.temperature)
    base = TrainConfig.from_yaml("tiny")
    changes = {k: type(getattr(base.model, k))(v) for k, v in
               (item.split("=") for item in args.model.split(",") if item)}
    base = dataclasses.replace(base, model=dataclasses.replace(base.model, **changes))
    trained: dict[tuple[float, int], dict] = {}

    def run(lr: float, seed: int) -> dict:
        if (lr, seed) in trained:
            return trained[(lr, seed)]
        folder = out / f"run-lr{lr}-seed{seed}"
        shutil.rmtree(folder, ignore_errors=True)
        r = dataclasses.replace(base.run, max_minutes=args.minutes - STOP_MARGIN_S / 60,
                                progress_bar=False,
                                max_steps=args.steps or base.run.max_steps, seed=seed)
        config = dataclasses.replace(base, run=r, optim=dataclasses.replace(base.optim, lr=lr))
        log(f"training lr {lr} seed {seed} ...")
        result = train([corpora["train"]], config, folder,
                       blend=proof_blend(corpora["train"], shares), resume=False)
        tokens = sum(t["tokens"] for t in result.realised["tasks"].values())
        trained[(lr, seed)] = {
            "lr": lr, "seed": seed, "steps": result.steps,
            "train_seconds": round(result.seconds, 1), "final_loss": result.final_loss,
            "tokens_per_second": round(tokens / max(result.seconds, 1e-9)),
            "positions_per_second": round(result.positions_per_second),
            "threads": config.run.threads, "shuffle_buffer": config.data.shuffle_buffer,
            "checkpoint": str(result.checkpoint)}
        return trained[(lr, seed)]

    def score(entry: dict, view: Any, heldout: Path) -> dict:
        evaluated = time.perf_counter()
        metrics = proof(load_trained(entry["checkpoint"]), view, corpora["train"], heldout,
                        sampling)
        return {**summarize(metrics), "understanding_questions":
                metrics["understanding"]["questions"],
                "generation_captions": metrics["generation"]["captions"],
                "classes": metrics["generation"]["classes"],
                "mean_frames": metrics["generation"]["mean_frames"],
                "eval_seconds": round(time.perf_counter() - evaluated, 1),
                "examples": metrics["understanding"]["examples"]}

    selection = []
    if len(lrs) > 1 or args.validation_only:
        for lr in lrs:
            entry = run(lr, args.select_seed)
            v = score(entry, validation_view, corpora["validation"])
            v_mean = (v["understanding_accuracy"] + v["generation_accuracy"]) / 2
            selection.append({"lr": lr, "seed": args.select_seed, "steps": entry["steps"],
                              "validation_understanding_accuracy": v["understanding_accuracy"],
                              "validation_generation_accuracy": v["generation_accuracy"],
                              "validation_mean": round(v_mean, 4),
                              "validation_questions": v["understanding_questions"],
                              "validation_captions": v["generation_captions"]})
            log(f"  validation, lr {lr}: {selection[-1]}")
        chosen = max(selection, key=lambda x: x["validation_mean"])["lr"]  # first on a tie
        if args.validation_only:
            print(json.dumps({"model_changes": changes, "shares": shares,
                              "selection": selection}), flush=True)
            return 0
    else:
        chosen = lrs[0]
    runs = []
    for seed in seeds:
        entry = run(chosen, seed)
        held = score(entry, world, corpora["heldout"])
        runs.append({**{k: v for k, v in entry.items() if k != "checkpoint"}, **held})
        print(f"seed {seed}, lr {chosen}: held-out understanding "
              f"{held['understanding_accuracy']:.3f} (free text "
              f"{held['understanding_free_text_accuracy']:.3f}), generation "
              f"{held['generation_accuracy']:.3f} ({entry['steps']} steps in "
              f"{entry['train_seconds']} s)", flush=True)
    und = _spread([r["understanding_accuracy"] for r in runs])
    gen = _spread([r["generation_accuracy"] for r in runs])
    figures = {
        "control": args.control, "chosen_lr": chosen,
        "lr_chosen_on": ("the validation world (world seed 1), seed "
                         f"{args.select_seed}" if selection else "given (--lr), not chosen"),
        "selection": selection, "seeds": seeds,
        "heldout_understanding_accuracy": und, "heldout_generation_accuracy": gen,
        "understanding_chance": 1 / min(4, len(events)),
        "generation_chance": 1 / max(runs[0]["classes"], 1),
        "events": len(events),
        "world": {"per_class": args.per_class, "understanding_per_class":
                  args.understanding_per_class, "questions": args.questions,
                  "heldout_per_class": args.heldout_per_class,
                  "validation_per_class": args.validation_per_class, "seconds": args.seconds},
        "build_seconds": round(built, 1), "shares": shares, "model_changes": changes,
        "sampling": dataclasses.asdict(sampling), "runs": runs,
        "trained_runs": [{k: v for k, v in e.items() if k != "checkpoint"}
                         for e in trained.values()],
    }
    print(f"over seeds {seeds}: understanding mean {und['mean']:.3f} (std {und['std']:.3f}, "
          f"worst {und['min']:.3f}); generation mean {gen['mean']:.3f} (std {gen['std']:.3f}, "
          f"worst {gen['min']:.3f}); lr {chosen}", flush=True)
    if args.control == "zero-codes":  # audio that carries nothing must miss far below the bars
        bars = [record.bar("control_mean_heldout_understanding_accuracy", und["mean"], "<=",
                           UNDERSTANDING_BAR - CONTROL_MARGIN, f"seeds {seeds}: {und['each']}"),
                record.bar("control_mean_heldout_generation_accuracy", gen["mean"], "<=",
                           GENERATION_BAR - CONTROL_MARGIN, f"seeds {seeds}: {gen['each']}")]
        return record.finish(figures, bars)
    bars = [record.bar("worst_seed_heldout_understanding_accuracy", und["min"], ">=",
                       UNDERSTANDING_BAR, f"seeds {seeds}: {und['each']}"),
            record.bar("worst_seed_heldout_generation_accuracy", gen["min"], ">=",
                       GENERATION_BAR, f"seeds {seeds}: {gen['each']}"),
            record.bar("max_train_seconds", max(e["train_seconds"] for e in trained.values()),
                       "<=", 60 * args.minutes, "every run, selection runs included")]
    return record.finish(figures, bars)


if __name__ == "__main__":
    sys.exit(main())
