"""Stages `build` and `tokenize`: the event world and the inputs become a training corpus (and
a held-out one), then codec token shards, on the configured engine."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from ualm.errors import UalmError
from ualm.manifests.layout import CorpusLayout
from ualm.run.config import EventsSection, PipelineConfig
from ualm.run.registry import Context, Stage, StageResult, register


def _engine(config: PipelineConfig) -> dict[str, Any]:
    e = config.engine
    return {"engine": e.name, "scheduler": e.scheduler, "workers": e.workers,
            "beam_runner": e.runner, "beam_options": list(e.options)}


def _build_settings(config: PipelineConfig) -> Any:
    # The engine is left out on purpose: every engine writes the same bytes.
    return {"sources": dataclasses.asdict(config.sources),
            "build": config.build.build_config().audio_dict()}


def _build(ctx: Context) -> StageResult:
    from ualm.pipelines.build import build_corpus

    config, run = ctx.config, ctx.run
    corpus, heldout = run / "corpus", run / "heldout"
    changed = ctx.previous is not None and ctx.previous.hash != ctx.hash
    if corpus.exists() and (changed or not _same_plan(ctx, corpus)):
        raise UalmError(f"the sources or build settings changed since {corpus} was built",
                        fix=f"delete {corpus} and {heldout} to rebuild, or set run.out to a "
                            "new folder")
    inputs = list(config.sources.inputs)
    held = list(config.sources.heldout)
    outputs: dict[str, Path] = {}
    events = config.sources.events
    if events is not None:
        world = _event_world(run / "world", events)
        inputs.append(str(world["train"]))
        if "heldout" in world:
            held.append(str(world["heldout"]))
        outputs["world"] = run / "world"
    build_config = config.build.build_config()
    roots = [*config.sources.allow_roots, *([str(run / "world")] if events else [])]
    summaries = {}
    for name, given, folder in (("corpus", inputs, corpus), ("heldout", held, heldout)):
        if not given:
            continue
        ctx.say(f"building {folder} from {len(given)} input(s)")
        result = build_corpus(given, folder, build_config, allow_roots=roots,
                              progress=ctx.progress, **_engine(config))
        summaries[name] = {k: result.summary[k] for k in ("inputs", "kept", "rejected",
                                                          "duplicates", "samples", "hours")}
        outputs[name] = folder
        ctx.say(f"{name}: {result.summary['inputs']:,} inputs → {result.summary['samples']:,} "
                f"samples, {result.summary['hours']:.3f} h")
    return StageResult(outputs, summaries)


def _same_plan(ctx: Context, corpus: Path) -> bool:
    """Whether the corpus on disk was planned with today's config (a changed config would make
    build_corpus refuse the folder; say so in terms of the run config instead)."""
    layout = CorpusLayout(corpus)
    if not layout.exists(layout.plan_file):
        return True
    from ualm.pipelines.build import resolved_for

    plan = layout.read_json(layout.plan_file)
    config = resolved_for(ctx.config.build.build_config(), int(plan.get("inputs", 0)))
    return plan.get("config_hash") == config.hash()


def _event_world(root: Path, events: EventsSection) -> dict[str, Path]:
    from ualm.audio.events import EVENTS, make_event_world

    names = tuple(events.events) if events.events else tuple(EVENTS)
    unknown = [n for n in names if n not in EVENTS]
    if unknown:
        raise UalmError(f"sources.events.events: unknown event(s) {', '.join(unknown)}",
                        fix=f"choose from: {', '.join(EVENTS)}")
    world = make_event_world(root, per_class=events.per_class,
                             heldout_per_class=events.heldout_per_class,
                             understanding_per_class=events.understanding_per_class,
                             seconds=events.seconds, seed=events.seed, events=names,
                             text_rows=events.text_rows)
    return {k: v for k, v in world.manifests.items()
            if k == "train" or events.heldout_per_class > 0}


register(Stage("build", _build, _build_settings,
               description="inputs and the event world → corpus (and held-out corpus)"))


def _tokenize_settings(config: PipelineConfig) -> Any:
    t = config.tokenize
    return {"codec": t.codec, "bandwidth": t.bandwidth, "seed": t.seed}  # what decides the codes


def _tokenize(ctx: Context) -> StageResult:
    from ualm.pipelines.tokens import tokenize_corpus

    if ctx.config.tokenize.codec is None:  # never tokens from random weights by default
        raise UalmError("tokenize.codec is not set: the run's later stages need tokens",
                        fix="set tokenize.codec to an EnCodec .th checkpoint or a Hugging Face "
                            "codec folder (random:encodec only for tests and demos), or stop "
                            "the run with --until build")
    outputs: dict[str, Path] = {}
    summary: dict[str, Any] = {}
    for name in ("corpus", "heldout"):
        corpus = ctx.output("build", name)
        if corpus is None:
            continue
        tokens = tokenize_corpus(corpus, ctx.config.tokenize, progress=ctx.progress,
                                 **_engine(ctx.config))
        outputs[name] = Path(CorpusLayout(corpus).token_folder(tokens["codec_id"]))
        summary[name] = {"codec_id": tokens["codec_id"], "tokens": tokens["tokens"],
                         "samples": tokens["samples"], "random_weights": tokens["random_weights"]}
        ctx.say(f"{name}: {tokens['samples']:,} samples → {tokens['tokens']:,} tokens "
                f"({tokens['codec_id']})")
        if tokens["random_weights"]:
            ctx.say("warning: RANDOM codec weights (demos and tests only); set tokenize.codec "
                    "to an EnCodec checkpoint for training data")
    return StageResult(outputs, summary)


register(Stage("tokenize", _tokenize, _tokenize_settings,
               off=lambda c: None if c.tokenize.enabled else "tokenize.enabled is false",
               description="codec token shards"))
