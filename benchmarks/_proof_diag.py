"""Diagnosis helper for the learning proof (not a benchmark: no record). Builds the proof's
world once (cached under --out), then trains one variant at a fixed number of steps and scores
it on the validation world (and optionally held-out), printing per-task loss summaries.

    python benchmarks/_proof_diag.py build
    python benchmarks/_proof_diag.py train --seed 1 --steps 3000 --lr 0.005 --set optim.warmup_steps=100
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import os
import shutil
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
from bench_train_proof import SHARES, proof_blend
from ualm.audio.events import EVENTS, EventClip, EventWorld, event_classes, make_event_world
from ualm.config import BuildConfig
from ualm.pipelines.build import build_corpus
from ualm.train.config import TrainConfig
from ualm.train.model.generate import GenerationConfig
from ualm.train.model.module import load_trained
from ualm.train.model.proof import proof, summarize, with_heldout_of
from ualm.train.trainer import train


def worlds(out: Path):
    events = tuple(EVENTS)
    world = make_event_world(out / "world", per_class=40, understanding_per_class=40,
                             heldout_per_class=2, seconds=1.0, events=events, questions=3,
                             seed=0)
    validation = make_event_world(out / "validation-world", per_class=0,
                                  understanding_per_class=0, heldout_per_class=2, seconds=1.0,
                                  events=events, questions=3, seed=1)
    return world, validation


def read_world(root: Path) -> EventWorld:
    """The world `make_event_world` wrote, read back from its manifests (no audio rendered)."""
    classes = event_classes(tuple(EVENTS))
    world = EventWorld(root, classes)
    for split in ("train", "heldout"):
        clips = []
        for line in (root / f"{split}.jsonl").read_text().splitlines():
            row = json.loads(line)
            if not row["id"].startswith(split):
                continue  # text rows
            cls = classes[int(row["id"].split("-")[2])]
            turns = row.get("conversations")
            clips.append(EventClip(
                row["id"], row.get("path") or row["sound"], cls, row["caption"],
                turns[0]["value"].removeprefix("<sound>\n") if turns else None,
                turns[1]["value"] if turns else None))
        world.clips[split] = clips
        world.manifests[split] = root / f"{split}.jsonl"
    return world


def build(out: Path) -> None:
    world, validation = worlds(out)
    for split, manifest in [("train", world.manifests["train"]),
                            ("heldout", world.manifests["heldout"]),
                            ("validation", validation.manifests["heldout"])]:
        if (out / split / ".done").exists():
            continue
        shutil.rmtree(out / split, ignore_errors=True)
        build_corpus([manifest], out / split,
                     BuildConfig.from_dict({"shards": {"max_samples": 100},
                                            "tokenize": {"codec": "random"}}),
                     engine="local", progress=False)
        (out / split / ".done").write_text("")


def train_und(model, world, corpus: Path, n: int = 196) -> float:
    """Understanding accuracy on training clips (the first question of n of them): beside the
    validation figure it says whether the model generalises or memorises."""
    from ualm.train.model.proof import understanding_accuracy

    und = [c for c in world.clips["train"] if c.question is not None]
    sub = dataclasses.replace(world, clips={**world.clips, "sub": und[:: len(und) // n][:n]})
    return understanding_accuracy(model, sub, corpus, split="sub")["accuracy"]


def _value(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def curves(metrics: Path, every: int) -> list[dict]:
    with open(metrics) as handle:
        rows = list(csv.DictReader(handle))
    keys = ["train/loss", "train/loss_understanding", "train/loss_generation", "train/loss_text"]
    out, window = [], []
    for r in rows:
        if not r.get("train/loss"):
            continue
        window.append(r)
        step = int(r["step"])
        if (step + 1) % every < 10 or len(window) * 10 >= every:
            agg = {"step": step}
            for k in keys:
                vals = [float(x[k]) for x in window if x.get(k)]
                agg[k.split("/")[1]] = round(sum(vals) / len(vals), 3) if vals else None
            out.append(agg)
            window = []
    return out


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("what", choices=["build", "train", "eval"])
    p.add_argument("--ckpt", default=None, help="eval: a checkpoint to score")
    p.add_argument("--out", default="/tmp/proof-diag")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--stop", type=int, default=None, help="stop here (schedule over --steps)")
    p.add_argument("--lr", type=float, default=0.005)
    p.add_argument("--set", action="append", default=[], help="section.key=value")
    p.add_argument("--shares", default=None)
    p.add_argument("--heldout", action="store_true")
    p.add_argument("--tag", default="")
    p.add_argument("--eval-at", type=lambda t: [int(x) for x in t.split(",")], default=[],
                   dest="eval_at")
    a = p.parse_args()
    out = Path(a.out)
    if a.what == "build":
        build(out)
        return 0
    while not all((out / s / ".done").exists() for s in ("train",)):
        time.sleep(10)  # another process builds the world
    world, validation = read_world(out / "world"), read_world(out / "validation-world")
    if a.what == "eval":  # a checkpoint of a run still training (or cut short)
        model = load_trained(a.ckpt)
        sampling = GenerationConfig(3.0, 20, 0.8)
        v = summarize(proof(model, with_heldout_of(world, validation), out / "train",
                            out / "validation", sampling))
        line = {"ckpt": a.ckpt, "val_und": round(v["understanding_accuracy"], 3),
                "val_gen": round(v["generation_accuracy"], 3)}
        if a.heldout:
            h = summarize(proof(model, world, out / "train", out / "heldout", sampling))
            line.update(held_und=round(h["understanding_accuracy"], 3),
                        held_gen=round(h["generation_accuracy"], 3))
        print("EVAL", json.dumps(line), flush=True)
        return 0
    base = TrainConfig.from_yaml("tiny")
    d = base.to_dict()
    d["optim"]["lr"] = a.lr
    d["run"].update(max_steps=a.steps, max_minutes=None, progress_bar=False, seed=a.seed)
    for item in a.set:
        key, value = item.split("=", 1)
        section, name = key.split(".")
        d[section][name] = _value(value)
    config = TrainConfig.from_dict(d)
    if a.stop:  # a run cut before the schedule's end (the benchmark's time cap does this)
        config = dataclasses.replace(config, run=dataclasses.replace(config.run,
                                                                     max_steps=a.stop))
    shares = SHARES if a.shares is None else {
        t: float(w) for t, w in (i.split("=") for i in a.shares.split(","))}
    folder = out / f"run-{a.tag or 'x'}-s{a.seed}"
    shutil.rmtree(folder, ignore_errors=True)
    t0 = time.perf_counter()
    if a.stop:
        from ualm.train.data.datamodule import UALMDataModule
        from ualm.train.model.module import UALMModule
        from ualm.train.trainer import fit, optim_dict, prepare, with_corpus_codebooks
        config = with_corpus_codebooks([out / "train"], config)
        prepare(config, folder)
        module = UALMModule(config.model.to_dict(), optim_dict(config), a.steps)
        dm = UALMDataModule([out / "train"], config.data, module.model.tokenizer,
                            config.model.codebooks, proof_blend(out / "train", shares))
        result = fit(module, dm, config, folder, resume=False)
    else:
        result = train([out / "train"], config, folder,
                       blend=proof_blend(out / "train", shares), resume=False)
    secs = time.perf_counter() - t0
    for c in curves(folder / "logs" / "metrics.csv", max(result.steps // 10, 10)):
        print(json.dumps(c))
    sampling = GenerationConfig(3.0, 20, 0.8)
    while not all((out / s / ".done").exists() for s in ("heldout", "validation")):
        time.sleep(10)
    for at in a.eval_at:  # the learning curve: validation accuracy at earlier checkpoints
        ckpt = folder / "checkpoints" / f"step-{at}.ckpt"
        if ckpt.is_file():
            mod = load_trained(ckpt)
            m = summarize(proof(mod, with_heldout_of(world, validation),
                                out / "train", out / "validation", sampling))
            m["train_und"] = train_und(mod, world, out / "train")
            print("CURVE", json.dumps({"tag": a.tag, "seed": a.seed, "step": at,
                                       "val_und": round(m["understanding_accuracy"], 3),
                                       "val_gen": round(m["generation_accuracy"], 3),
                                       "train_und": round(m["train_und"], 3)}),
                  flush=True)
    model = load_trained(result.checkpoint)
    v = summarize(proof(model, with_heldout_of(world, validation), out / "train",
                        out / "validation", sampling))
    line = {"tag": a.tag, "seed": a.seed, "lr": a.lr, "set": a.set, "steps": result.steps,
            "secs": round(secs), "steps_per_s": round(result.steps / secs, 2),
            "val_und": round(v["understanding_accuracy"], 3),
            "val_gen": round(v["generation_accuracy"], 3),
            "train_und": round(train_und(model, world, out / "train"), 3)}
    if a.heldout:
        h = summarize(proof(model, world, out / "train", out / "heldout", sampling))
        line.update(held_und=round(h["understanding_accuracy"], 3),
                    held_gen=round(h["generation_accuracy"], 3))
    print("RESULT", json.dumps(line), flush=True)
    with open(out / "results.jsonl", "a") as f:
        f.write(json.dumps(line) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
