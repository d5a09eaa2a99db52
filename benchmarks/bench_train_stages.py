"""UALM's training chain on the event world with the tiny CPU presets: align -> pretrain -> sft
-> dpo, each stage started from the previous one's checkpoint, and each shown doing its job.

- align (tiny-align): the backbone and the text rows are bit-identical after the stage; the
  special-token and codebook rows moved; the loss fell.
- pretrain (tiny, the blend without traces): asked in the enrichment format ("I need the sound of
  white noise."), the model goes straight to <|audio|> (it never saw a rich caption).
- sft (tiny-sft): asked the same, it writes a rich caption ("Keywords: ... Layout: ...
  Description: ...") and then <|audio|>: the share of prompts answered that way, and of those
  whose keywords are the requested events.
- dpo (tiny-dpo): `ualm synth`'s pairs (2 per caption: its clip against two near-miss clips,
  ties among near-misses broken per caption, so the rejected side spreads over the clips). A
  tenth of the clips are held out with every pair that has one of them (`stage.heldout_by:
  clip`): training never sees those clips. On those pairs, the implicit reward's accuracy and
  margin before and after, and the policy's own log-prob margin (chosen - rejected). And the
  generation class match (`ualm.train.model.proof.generation_accuracy`: held-out captions of
  the world, generated with one sampling config, matched to the training clips' class by code
  histogram, averaged over 5 sampling seeds, the same for both models) of the sft model and of
  the dpo model: DPO must not lower it. One seed is one draw of the sampler: on one chain's
  checkpoints single seeds gave sft 0.17-0.26 and dpo 0.19-0.32.

  The baseline is honest: before the first step the policy is the reference, so every implicit
  reward margin is exactly 0 and a strict `margin > 0` accuracy is 0 by construction (the
  stage's own `dpo_heldout.json` counts that way). Here each held-out pair is measured again
  after the chain, before (policy = the sft model) and after dpo, and a tie counts as half: the
  starting implicit-reward accuracy is then 0.5, chance. Reported beside it: the share with
  margin > 0 and the share of ties, separately; and the initial model's own preference share
  (log p(chosen) > log p(rejected) under the sft model, ties as half; chance 0.5) against the
  dpo model's.

Bars: align leaves the backbone and the text rows bit-identical and moves the new rows, its loss
falls; after pretrain no prompt is answered with a caption first, after sft at least 0.8 are;
every held-out pair has a clip training never saw; after dpo the held-out implicit-reward
accuracy (ties as half) is above 0.5 and the margins grew; the generation class match after dpo
is at least the sft model's.

    .venv/bin/python benchmarks/bench_train_stages.py [--per-class 8] [--threads 1]
    .venv/bin/python benchmarks/bench_train_stages.py --quick   # 4 per class, 10 steps a stage

Prints the figures per stage and each bar; writes benchmarks/results/bench_train_stages.json
(see _record.py); exits 1 when a bar is missed.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch

from _record import Record, add_arguments
from ualm.audio.events import make_event_world
from ualm.config import BuildConfig
from ualm.pipelines.build import build_corpus
from ualm.synth.config import SynthConfig
from ualm.synth.rules import REQUESTS
from ualm.synth.run import synth_corpus
from ualm.train.config import TrainConfig
from ualm.train.data.sources import discover, equal_blend
from ualm.train.model.generate import DEFAULT_GENERATION, reply_before_audio
from ualm.train.model.module import load_trained
from ualm.train.model.proof import generation_accuracy
from ualm.train.sequence.layout import AUDIO, N_SPECIAL
from ualm.train.stages.pairs import discover_pairs, split_pairs
from ualm.train.stages.stage import run_stage

EVENTS = ("a low tone", "white noise", "a click train")
TABLES = ("model.lm.model.embed_tokens.weight", "model.lm.lm_head.weight")


class Snapshot(L.Callback):
    """The module's weights when training starts."""

    def __init__(self) -> None:
        self.state: dict[str, torch.Tensor] = {}

    def on_train_start(self, trainer: L.Trainer, module: Any) -> None:
        self.state = {k: v.detach().clone() for k, v in module.state_dict().items()}


def config(preset: str, threads: int, steps: int | None) -> TrainConfig:
    c = TrainConfig.from_yaml(preset)
    run = dataclasses.replace(c.run, threads=threads, progress_bar=False,
                              max_steps=steps or c.run.max_steps)
    return dataclasses.replace(c, run=run)


def losses(run: Path, column: str = "train/loss") -> tuple[float, float]:
    with open(run / "logs" / "metrics.csv") as handle:
        values = [float(r[column]) for r in csv.DictReader(handle) if r.get(column)]
    return values[0], values[-1]


def frozen_check(before: dict[str, torch.Tensor], checkpoint: Path) -> dict[str, Any]:
    after = torch.load(checkpoint, map_location="cpu", weights_only=False)["state_dict"]
    text = slice(N_SPECIAL, N_SPECIAL + 256)  # the byte tokenizer's rows
    backbone = [k for k in before if k not in TABLES]
    return {"backbone_tensors": len(backbone),
            "backbone_identical": all(torch.equal(before[k], after[k]) for k in backbone),
            "text_rows_identical": all(torch.equal(before[k][text], after[k][text])
                                       for k in TABLES),
            "new_rows_changed": all(not torch.equal(before[k][text.stop:], after[k][text.stop:])
                                    and not torch.equal(before[k][:N_SPECIAL],
                                                        after[k][:N_SPECIAL]) for k in TABLES)}


def prompts() -> list[tuple[str, list[str]]]:
    """Enrichment requests for each class of the world: (prompt, the events it names)."""
    classes = [[e] for e in EVENTS] + [[a, b] for a in EVENTS for b in EVENTS if a != b]
    return [(REQUESTS[i % len(REQUESTS)].format(what=" and ".join(c)), c)
            for i, c in enumerate(classes)]


def enrichment_probe(checkpoint: Path) -> dict[str, Any]:
    """Greedy replies: how many write text and then <|audio|>, in the rich caption's format,
    naming the requested events as its keywords."""
    model = load_trained(checkpoint)
    asked = prompts()
    formatted = keywords_right = 0
    examples = []
    for prompt, events in asked:
        text, end = reply_before_audio(model, prompt, 600)
        rich = end == AUDIO and text.startswith("Keywords: ") and "Description: " in text
        formatted += rich
        keywords_right += rich and text.startswith(f"Keywords: {', '.join(events)}. ")
        if len(examples) < 2:
            examples.append({"prompt": prompt, "reply": text[:160],
                             "then": "<|audio|>" if end == AUDIO else str(end)})
    return {"prompts": len(asked), "text_then_audio": formatted / len(asked),
            "keywords_right": keywords_right / len(asked), "examples": examples}


def preference_shares(policy: Any, reference: Any, batches: list[dict[str, torch.Tensor]],
                      beta: float) -> dict[str, Any]:
    """Per held-out pair: the implicit reward margin and the policy's log-prob margin; their
    shares above 0, ties (exactly 0) and the accuracy with ties counted as half."""
    from ualm.train.stages.dpo import dpo_terms, sequence_logps

    margins, logps = [], []
    with torch.no_grad():
        for batch in batches:
            terms = dpo_terms(sequence_logps(policy, batch)[0],
                              sequence_logps(reference, batch)[0], beta)
            margins.append(terms["chosen_reward"] - terms["rejected_reward"])
            logps.append(terms["logp_margin"])
    margin, logp = torch.cat(margins).float(), torch.cat(logps).float()

    def shares(x: torch.Tensor) -> dict[str, float]:
        above, ties = float((x > 0).float().mean()), float((x == 0).float().mean())
        return {"above_0": round(above, 4), "ties": round(ties, 4),
                "ties_as_half": round(above + ties / 2, 4)}

    return {"pairs": len(margin), "implicit_reward": {**shares(margin),
                                                       "mean_margin": round(float(margin.mean()),
                                                                            4)},
            "policy_preference": {**shares(logp), "mean_logp_margin":
                                  round(float(logp.mean()), 4)}}


def class_match(model: Any, world: Any, corpus: Path, heldout: Path, seeds: int
                ) -> dict[str, Any]:
    """The generation class match averaged over `seeds` sampling seeds (the same seeds for
    every model compared): with one seed the figure is one draw of the sampler."""
    runs = [generation_accuracy(model, world, corpus, heldout,
                                dataclasses.replace(DEFAULT_GENERATION, seed=1000 * s))
            for s in range(seeds)]
    by_seed = [round(r["accuracy"], 3) for r in runs]
    return {**runs[0], "accuracy": sum(r["accuracy"] for r in runs) / seeds,
            "mean_frames": sum(r["mean_frames"] for r in runs) / seeds,
            "by_seed": by_seed, "seeds": seeds}


def heldout_preferences(corpus: Path, preset: str, sft: Path, dpo: Path) -> dict[str, Any]:
    """The held-out pairs measured at the start of dpo (policy = reference = the sft model)
    and at its end, pair by pair."""
    from ualm.train.stages.pairs import PairDataModule

    c = TrainConfig.from_yaml(preset)
    reference = load_trained(sft)
    module = PairDataModule([corpus], c.data, reference.tokenizer, reference.k,
                            c.stage.heldout_fraction, c.stage.heldout_by)
    batches = module.heldout_batches()
    return {"start": preference_shares(reference, reference, batches, c.stage.beta),
            "end": preference_shares(load_trained(dpo), reference, batches, c.stage.beta)}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--per-class", type=int, default=8, help="clips per class and task")
    p.add_argument("--heldout-per-class", type=int, default=6,
                   help="held-out generation captions per class (the class match before and "
                        "after dpo)")
    p.add_argument("--generation-seeds", type=int, default=5,
                   help="sampling seeds the class match is averaged over (one seed's figure "
                        "moves by +-0.07 on 54 captions)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--steps", default="", help="override steps, e.g. align=50,sft=100")
    p.add_argument("--out", help="work folder (default: a temporary one)")
    add_arguments(p)
    args = p.parse_args()
    if args.quick:
        args.per_class = 4
        args.steps = args.steps or "align=10,pretrain=10,sft=10,dpo=10"
    record = Record("bench_train_stages", args)
    steps = {k: int(v) for k, v in (kv.split("=") for kv in args.steps.split(",") if kv)}
    work = Path(args.out or tempfile.mkdtemp(prefix="bench-stages-"))
    started = time.perf_counter()
    # held-out clips come after the training ones from the world's generator: the training
    # clips are the same whatever heldout_per_class
    world = make_event_world(work / "world", per_class=args.per_class,
                             heldout_per_class=args.heldout_per_class, seconds=1.0,
                             events=EVENTS, text_rows=4, seed=5)
    build = BuildConfig.from_dict({"shards": {"max_samples": 100},
                                   "tokenize": {"codec": "random"}})
    corpus = build_corpus([world.manifests["train"]], work / "corpus", build, engine="local",
                          progress=False).corpus
    heldout_corpus = build_corpus([world.manifests["heldout"]], work / "heldout", build,
                                  engine="local", progress=False).corpus
    funnel = synth_corpus(corpus, SynthConfig(max_samples=100), progress=False).funnel
    figures: dict[str, Any] = {
        "corpus": {"clips": len(world.clips["train"]), "seconds": round(time.perf_counter()
                                                                        - started, 1),
                   "traces": {k: v["written"] for k, v in funnel["traces"].items()},
                   "pairs": funnel["pairs"]["written"]}}
    chain = time.perf_counter()
    snapshot = Snapshot()
    align = run_stage("align", [corpus], config("tiny-align", args.threads, steps.get("align")),
                      work / "align", callbacks=[snapshot])
    figures["align"] = {"steps": align.steps, "loss": losses(work / "align"),
                        "seconds": round(align.seconds, 1),
                        **frozen_check(snapshot.state, align.checkpoint)}
    no_traces = equal_blend([s for s in discover([corpus]) if s.task != "reasoning"])
    pretrain = run_stage("pretrain", [corpus], config("tiny", args.threads,
                                                      steps.get("pretrain")),
                         work / "pretrain", init=align.checkpoint, blend=no_traces)
    figures["pretrain"] = {"steps": pretrain.steps, "loss": losses(work / "pretrain"),
                           "seconds": round(pretrain.seconds, 1),
                           "enrichment": enrichment_probe(pretrain.checkpoint)}
    sft = run_stage("sft", [corpus], config("tiny-sft", args.threads, steps.get("sft")),
                    work / "sft", init=pretrain.checkpoint)
    figures["sft"] = {"steps": sft.steps, "loss": losses(work / "sft"),
                      "seconds": round(sft.seconds, 1),
                      "task_shares": {t: round(r["sample_share"], 3)
                                      for t, r in sft.realised["tasks"].items()},
                      "enrichment": enrichment_probe(sft.checkpoint)}
    dpo = run_stage("dpo", [corpus], config("tiny-dpo", args.threads, steps.get("dpo")),
                    work / "dpo", init=sft.checkpoint)
    history = json.loads((work / "dpo" / "dpo_heldout.json").read_text())
    stage = TrainConfig.from_yaml("tiny-dpo").stage
    refs = discover_pairs([corpus])
    train, heldout = split_pairs(refs, stage.heldout_fraction, stage.heldout_by)
    seen = {k for r in train for k in (r.chosen, r.rejected)}
    figures["dpo"] = {"steps": dpo.steps, "seconds": round(dpo.seconds, 1),
                      "pairs": dpo.realised["pairs"], "heldout_by": stage.heldout_by,
                      "rejected_clips": len({r.rejected for r in refs}),
                      "heldout_pairs_with_an_unseen_clip": sum(
                          r.chosen not in seen or r.rejected not in seen for r in heldout),
                      "heldout_start": history[0], "heldout_end": history[-1],
                      "heldout_history": [{k: round(h[k], 3) for k in ("step", "accuracy",
                                                                      "margin", "logp_margin")}
                                          for h in history]}
    figures["chain_seconds"] = round(time.perf_counter() - chain, 1)
    prefs = heldout_preferences(corpus, "tiny-dpo", sft.checkpoint, dpo.checkpoint)
    figures["dpo"]["heldout_pair_by_pair"] = prefs
    figures["dpo"]["generation_class_match"] = {
        name: class_match(load_trained(checkpoint), world, corpus, heldout_corpus,
                          args.generation_seeds)
        for name, checkpoint in (("sft", sft.checkpoint), ("dpo", dpo.checkpoint))}
    match = figures["dpo"]["generation_class_match"]
    a, s, d = figures["align"], figures["sft"]["enrichment"], figures["dpo"]
    start, end = prefs["start"], prefs["end"]
    bars = [
        record.bar("align_backbone_identical", int(a["backbone_identical"]), "==", 1,
                   f"{a['backbone_tensors']} tensors"),
        record.bar("align_text_rows_identical", int(a["text_rows_identical"]), "==", 1),
        record.bar("align_new_rows_changed", int(a["new_rows_changed"]), "==", 1),
        record.bar("align_loss_last_over_first", round(a["loss"][1] / a["loss"][0], 4), "<", 1.0),
        record.bar("pretrain_caption_first_share",
                   figures["pretrain"]["enrichment"]["text_then_audio"], "==", 0.0,
                   "the pretrained model never saw a rich caption"),
        record.bar("sft_caption_first_share", s["text_then_audio"], ">=", 0.8,
                   f"of {s['prompts']} prompts"),
        record.bar("dpo_heldout_pairs_without_an_unseen_clip",
                   d["pairs"]["heldout"] - d["heldout_pairs_with_an_unseen_clip"], "==", 0),
        record.bar("dpo_heldout_start_accuracy_ties_half",
                   start["implicit_reward"]["ties_as_half"], "==", 0.5,
                   "the baseline: policy = reference, every margin exactly 0"),
        record.bar("dpo_heldout_end_accuracy_ties_half", end["implicit_reward"]["ties_as_half"],
                   ">", 0.5, f"{end['pairs']} held-out pairs; margin > 0 "
                   f"{end['implicit_reward']['above_0']}, ties {end['implicit_reward']['ties']}"),
        record.bar("dpo_heldout_reward_margin_gain",
                   round(end["implicit_reward"]["mean_margin"]
                         - start["implicit_reward"]["mean_margin"], 4), ">", 0.0),
        record.bar("dpo_heldout_logp_margin_gain",
                   round(end["policy_preference"]["mean_logp_margin"]
                         - start["policy_preference"]["mean_logp_margin"], 4), ">", 0.0,
                   f"policy preference share {start['policy_preference']['ties_as_half']} -> "
                   f"{end['policy_preference']['ties_as_half']} (chance 0.5)"),
        record.bar("dpo_generation_class_match_gain",
                   round(match["dpo"]["accuracy"] - match["sft"]["accuracy"], 4), ">=", 0.0,
                   f"{match['dpo']['captions']} held-out captions x "
                   f"{args.generation_seeds} sampling seeds: sft "
                   f"{match['sft']['accuracy']:.3f} {match['sft']['by_seed']} -> dpo "
                   f"{match['dpo']['accuracy']:.3f} {match['dpo']['by_seed']} "
                   f"(chance {1 / max(match['dpo']['classes'], 1):.3f})"),
    ]
    for name in ("align", "pretrain", "sft", "dpo"):
        print(name, json.dumps(figures[name], sort_keys=True))
    print(f"dpo held-out implicit-reward accuracy (ties as half): "
          f"{start['implicit_reward']['ties_as_half']} -> {end['implicit_reward']['ties_as_half']}"
          f" (margin > 0: {start['implicit_reward']['above_0']} -> "
          f"{end['implicit_reward']['above_0']}; ties {start['implicit_reward']['ties']} -> "
          f"{end['implicit_reward']['ties']}); the sft model's own preference share "
          f"{start['policy_preference']['ties_as_half']} -> dpo's "
          f"{end['policy_preference']['ties_as_half']} (chance 0.5)", flush=True)
    return record.finish(figures, bars, notes=[
        "dpo.heldout_start/heldout_end/heldout_history are the stage's own dpo_heldout.json, "
        "whose accuracy counts margin > 0 strictly (0 at step 0 by construction); "
        "dpo.heldout_pair_by_pair counts ties as half and is what the bars use"])


if __name__ == "__main__":
    sys.exit(main())
