"""Stages `blend`, `train` and `generate`: token shares per source, a UALM trained with them
(and evaluated on the held-out corpus), then a WAV from a caption, an answered question, and
the held-out multiple-choice accuracy beside chance (answers constrained to the options)."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path
from typing import Any

from ualm.errors import UalmError
from ualm.run.config import PipelineConfig
from ualm.run.registry import Context, Stage, StageResult, register


def _corpora(ctx: Context) -> list[Path]:
    """What training reads: the corpus (with the traces synth wrote into it)."""
    found = [ctx.output("build", "corpus")]
    corpora = [p for p in found if p is not None]
    if not corpora:
        raise UalmError("there is no corpus to train on", fix="give sources.inputs or events")
    return corpora


def _codec_id(ctx: Context) -> str | None:
    tokens = ctx.output("tokenize", "corpus")
    return tokens.name if tokens is not None else None


def _blend(ctx: Context) -> StageResult:
    from ualm.train.blend.stats import corpus_stats
    from ualm.train.blend.weights import BlendOptions, compute_blend, format_blend
    from ualm.train.sequence.text_tokenizer import load_text_tokenizer

    b = ctx.config.blend  # a BlendOptions itself
    options = BlendOptions(**{f.name: getattr(b, f.name) for f in dataclasses.fields(BlendOptions)})
    stats = corpus_stats(_corpora(ctx), load_text_tokenizer(b.tokenizer), _codec_id(ctx),
                         _seq_len(ctx.config))
    spec = compute_blend(stats, options)
    out = ctx.run / "blend.yaml"
    spec.dump(out)
    for line in format_blend(spec, stats).splitlines():
        ctx.say(line)
    return StageResult({"spec": out}, {"shares": spec.task_shares()})


def _seq_len(config: PipelineConfig) -> int:
    """The pretrain stage's sequence length: the blend counts the pieces it trains on."""
    return int(train_config(config).data.seq_len)


register(Stage("blend", _blend, lambda c: {**c.blend.settings(), "seq_len": _seq_len(c)},
               off=lambda c: None if c.blend.enabled else "blend.enabled is false "
               "(every source equally often)", description="token shares per source"))


def train_config(config: PipelineConfig, codec_id: str | None = None) -> Any:
    """The pretrain stage's training config: the preset or file, with the run config's
    overrides on top."""
    return _stage_config(config.train.config, config.train.overrides, {}, codec_id)


def _stage_config(preset: str, overrides: dict[str, Any], own: dict[str, Any],
                  codec_id: str | None) -> Any:
    from ualm.recipes import merged
    from ualm.train.config import TrainConfig

    data = merged(merged(TrainConfig.from_yaml(preset).to_dict(), own), overrides)
    if codec_id and not data["data"].get("codec_id"):
        data["data"]["codec_id"] = codec_id  # a corpus may hold several token sets
    return TrainConfig.from_dict(data)


def stage_plan(config: PipelineConfig, codec_id: str | None = None) -> list[tuple[str, Any]]:
    """(stage, its training config) in training order (`train.stages`)."""
    from ualm.train.config import presets

    plan = []
    for item in config.train.stages:
        name = config.train.stage_name(item)
        spec = item if isinstance(item, dict) else {"name": name}
        if name == "pretrain":
            preset = spec.get("config") or config.train.config
        else:
            preset = spec.get("config") or f"{config.train.config}-{name}"
            if "config" not in spec and preset not in presets():
                raise UalmError(f"train.stages: no preset {preset!r} for the {name} stage",
                                fix=f"give the stage a config: {{name: {name}, config: "
                                    "PRESET_OR_FILE}")
        stage = _stage_config(preset, config.train.overrides, spec.get("overrides") or {},
                              codec_id)
        plan.append((name, dataclasses.replace(stage, stage=dataclasses.replace(
            stage.stage, name=name))))
    return plan


def stage_folder(run: Path, name: str, plan: list[tuple[str, Any]]) -> Path:
    """`train/` for pretrain (or a lone stage), `train-<stage>/` for the others."""
    return run / ("train" if name == "pretrain" or len(plan) == 1 else f"train-{name}")


def _train(ctx: Context) -> StageResult:
    from ualm.train.blend.spec import load_blend
    from ualm.train.stages.stage import run_stage

    plan = stage_plan(ctx.config, _codec_id(ctx))
    folders = [stage_folder(ctx.run, name, plan) for name, _ in plan]
    if ctx.previous is not None and any(f.exists() for f in folders):
        ctx.say("starting training over (the training settings or data changed)")
        for folder in folders:  # a checkpoint of other settings must not be resumed
            shutil.rmtree(folder, ignore_errors=True)
    spec_path = ctx.output("blend", "spec")
    spec = load_blend(spec_path) if spec_path else None
    init = ctx.config.train.init
    heldout = ctx.output("build", "heldout")
    summary: dict[str, Any] = {"stages": {}}
    outputs: dict[str, Path] = {}
    result = None
    for (name, config), out in zip(plan, folders, strict=True):
        if not ctx.progress:  # --quiet: no progress bar either
            config = dataclasses.replace(config, run=dataclasses.replace(config.run,
                                                                         progress_bar=False))
        out.mkdir(parents=True, exist_ok=True)
        if spec_path and name != "dpo":  # the report compares it with the realised blend
            shutil.copyfile(spec_path, out / "blend.yaml")
        if len(plan) > 1:
            ctx.say(f"stage {name}" + (f", from {init}" if init else ""))
        result = run_stage(name, _corpora(ctx), config, out, init=init, blend=spec,
                           heldout=[heldout] if heldout else ())
        if result.checkpoint is None:
            raise UalmError(f"the {name} stage wrote no checkpoint",
                            fix="see the training log above")
        ctx.say(f"{name}: {result.steps} steps in {result.seconds:.0f} s, final loss "
                f"{result.final_loss if result.final_loss is not None else float('nan'):.4f}")
        summary["stages"][name] = {"steps": result.steps, "final_loss": result.final_loss,
                                   **(_preference_summary(ctx, out) if name == "dpo" else {})}
        outputs[f"{name}_run"] = out
        init = str(result.checkpoint)
    assert result is not None and result.checkpoint is not None
    summary.update(summary["stages"][plan[-1][0]])
    checkpoint = result.checkpoint
    names = [n for n, _ in plan]
    main = folders[names.index("pretrain") if "pretrain" in names else 0]
    if heldout is not None:  # the final model, in the main run folder, where the report looks
        summary["heldout_loss"] = _evaluate_final(ctx, plan[-1], checkpoint, heldout, main)
    return StageResult({"run": main, "checkpoint": checkpoint, **outputs}, summary)


def _preference_summary(ctx: Context, out: Path) -> dict[str, Any]:
    """A dpo stage's held-out pairs, first and last measurement."""
    history = json.loads((out / "dpo_heldout.json").read_text())
    first, last = history[0], history[-1]
    ctx.say(f"dpo: held-out pairs' implicit-reward accuracy {first['accuracy']:.2f} -> "
            f"{last['accuracy']:.2f}, margin {first['margin']:.2f} -> {last['margin']:.2f}")
    return {"heldout_pairs": {"accuracy": [first["accuracy"], last["accuracy"]],
                              "margin": [first["margin"], last["margin"]]}}


def _evaluate_final(ctx: Context, stage: tuple[str, Any], checkpoint: Path, heldout: Path,
                    folder: Path) -> float | None:
    """The final model's held-out loss per task, written to `folder/eval.json`."""
    from ualm.train.model.evaluate import evaluate
    from ualm.train.model.module import load_trained

    name, config = stage
    evaluation = evaluate(load_trained(checkpoint), [heldout], config.data.seq_len,
                          config.data.batch_size, codec_id=_codec_id(ctx),
                          max_batches=ctx.config.train.eval_batches)
    evaluation.update(stage=name, checkpoint=str(checkpoint))
    (folder / "eval.json").write_text(json.dumps(evaluation, indent=2, sort_keys=True) + "\n")
    ctx.say(f"held-out loss after {name}: " + ", ".join(
        f"{t} {r['loss']:.4f}" for t, r in evaluation["tasks"].items()))
    return evaluation["loss"]


def _train_settings(config: PipelineConfig) -> Any:
    settings = []
    for name, stage in stage_plan(config):
        values = stage.to_dict()
        values["run"].pop("progress_bar")  # how training is shown does not change its result
        settings.append({"stage": name, "config": values})
    return {"stages": settings, "init": config.train.init,
            "eval_batches": config.train.eval_batches}


register(Stage("train", _train, _train_settings,
               description="UALM's training stages on the blend (align, pretrain, sft, dpo), "
                           "the last evaluated on the held-out corpus"))


def _question(ctx: Context) -> tuple[Path, str, str | None]:
    """(audio, question, expected answer): the configured ones, else the first understanding
    clip of the event world's held-out split (or of its training split)."""
    g = ctx.config.generate
    if g.audio and g.question:
        return Path(g.audio), g.question, None
    world = ctx.output("build", "world")
    for split in ("heldout", "train"):
        manifest = world / f"{split}.jsonl" if world else None
        if manifest is None or not manifest.is_file():
            continue
        for line in manifest.read_text().splitlines():
            row = json.loads(line)
            if "conversations" in row:
                asked = row["conversations"][0]["value"].replace("<sound>", "").strip()
                return world / row["sound"], g.question or asked, row["conversations"][1]["value"]
    raise UalmError("no audio to ask a question about",
                    fix="set generate.audio and generate.question, or use the event world")


def _generate(ctx: Context) -> StageResult:
    from ualm.train.model.choices import describe, options_of
    from ualm.train.model.generate import GenerationConfig
    from ualm.train.model.infer import generate_wav, understand_file

    g = ctx.config.generate
    checkpoint, corpus = ctx.output("train", "checkpoint"), ctx.output("build", "corpus")
    if checkpoint is None or corpus is None:
        raise UalmError("generate needs a trained checkpoint and its corpus",
                        fix="run the build, tokenize and train stages first")
    outputs = ctx.run / "outputs"
    config = GenerationConfig(g.guidance, g.top_k, g.temperature, seed=g.seed)
    made = generate_wav(checkpoint, corpus, g.caption, outputs / "generated.wav", config, g.device,
                        max_seconds=g.max_seconds)
    ctx.say(f"generated {made.seconds:.2f} s for {g.caption!r} → {made.path}")
    audio, question, expected = _question(ctx)
    # multiple choice: the most likely offered option, never an option that was not offered
    reply = understand_file(checkpoint, corpus, audio, question, g.device, g.max_new_tokens,
                            constrained=True)
    right = None if expected is None else reply.strip() == expected.strip()
    ctx.say(f"asked {question!r} about {audio.name}: the model answers {reply!r}"
            + ("" if right is None else f", expected {expected!r} "
               f"({'right' if right else 'wrong'})"))
    heldout = _heldout_choices(ctx, checkpoint)
    answer = {"audio": str(audio), "question": question, "options": options_of(question),
              "answer": reply, "expected": expected, "right": right, "heldout": heldout}
    (outputs / "answer.json").write_text(json.dumps(answer, indent=2) + "\n")
    summary = {"answer": reply, "expected": expected, "seconds": made.seconds}
    if heldout is not None:
        ctx.say(f"held-out questions, answered by option likelihood: {describe(heldout)}")
        summary["heldout"] = {k: v for k, v in heldout.items() if k != "examples"}
    return StageResult({"wav": made.path, "answer": outputs / "answer.json"}, summary)


def _heldout_choices(ctx: Context, checkpoint: Path) -> dict[str, Any] | None:
    """The trained model's multiple-choice accuracy on the held-out corpus's understanding
    questions (None without a held-out corpus)."""
    from ualm.train.model.module import load_trained
    from ualm.train.model.proof import constrained_accuracy

    heldout = ctx.output("build", "heldout")
    if heldout is None:
        return None
    model = load_trained(checkpoint, ctx.config.generate.device)
    return constrained_accuracy(model, heldout, _codec_id(ctx))


register(Stage("generate", _generate, lambda c: dataclasses.asdict(c.generate),
               description="a WAV from a caption and an answered question"))
