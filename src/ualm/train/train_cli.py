"""`ualm train`, `ualm generate`, `ualm understand`, `ualm eval`: argument parsing only; the work
is in ualm.train's library functions."""

from __future__ import annotations

import argparse
import dataclasses
import json

from ualm.errors import UalmError


def add_train_commands(sub: argparse._SubParsersAction) -> None:
    _add_train(sub)
    _add_generate(sub)
    _add_understand(sub)
    _add_eval(sub)


def _add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a UALM model on token shards")
    p.add_argument("corpora", nargs="+", metavar="CORPUS", help="corpus folders to stream")
    p.add_argument("--config", required=True, metavar="YAML",
                   help="a training config, or a preset name: tiny, qwen2.5-1.5b")
    p.add_argument("--blend", metavar="YAML", help="blend spec from `ualm blend` (default: "
                   "every source equally often)")
    p.add_argument("--out", default="runs/ualm", metavar="DIR",
                   help="run folder (rerun with the same folder to resume)")
    p.add_argument("--stage", choices=("align", "pretrain", "sft", "dpo"),
                   help="training stage (default: the config's stage.name, else pretrain)")
    p.add_argument("--init", metavar="CKPT", help="start from this checkpoint's weights (the "
                   "previous stage's; for dpo also the reference model)")
    p.add_argument("--heldout", nargs="+", default=[], metavar="CORPUS",
                   help="held-out corpora: their loss is logged every run.val_every steps")
    p.add_argument("--val-every", type=int, help="override run.val_every")
    p.add_argument("--max-steps", type=int, help="override run.max_steps")
    p.add_argument("--devices", help="override run.devices (e.g. 2)")
    p.add_argument("--strategy", help="override run.strategy (ddp, fsdp, ...)")
    p.add_argument("--accelerator", help="override run.accelerator (cpu, gpu, auto)")
    p.add_argument("--no-resume", action="store_true", help="start over even if a checkpoint "
                   "exists in --out")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=_run_train)


def _add_generate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("generate", help="audio from a caption, decoded with the corpus's codec")
    p.add_argument("caption")
    p.add_argument("--checkpoint", required=True, metavar="CKPT")
    p.add_argument("--corpus", required=True, metavar="DIR", help="a corpus the model was "
                   "trained on (its codec decodes the codes)")
    p.add_argument("-o", "--out", required=True, metavar="WAV")
    p.add_argument("--guidance", type=float, default=3.0, help="classifier-free guidance λ")
    p.add_argument("--top-k", type=int, default=20)
    p.add_argument("--temperature", type=float, default=0.8)
    p.add_argument("--max-seconds", type=float, default=10.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.set_defaults(run=_run_generate)


def _add_understand(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("understand", help="answer a question about an audio file (greedy)")
    p.add_argument("audio", metavar="AUDIO")
    p.add_argument("question")
    p.add_argument("--checkpoint", required=True, metavar="CKPT")
    p.add_argument("--corpus", required=True, metavar="DIR",
                   help="a corpus the model was trained on (its codec encodes the audio)")
    p.add_argument("--max-new-tokens", type=int, default=128)
    p.add_argument("--device", default="cpu")
    p.set_defaults(run=_run_understand)


def _add_eval(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="held-out loss and accuracy per task")
    p.add_argument("corpora", nargs="+", metavar="CORPUS")
    p.add_argument("--checkpoint", required=True, metavar="CKPT")
    p.add_argument("--seq-len", type=int, default=1024)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--max-batches", type=int)
    p.add_argument("--device", default="cpu")
    p.add_argument("--json", action="store_true", help="one JSON object on stdout")
    p.set_defaults(run=_run_eval)


def _run_train(args: argparse.Namespace) -> int:
    from ualm.train.blend.spec import load_blend
    from ualm.train.config import TrainConfig
    from ualm.train.stages.stage import run_stage

    config = TrainConfig.from_yaml(args.config)
    overrides = {"max_steps": args.max_steps, "strategy": args.strategy,
                 "val_every": args.val_every,
                 "accelerator": args.accelerator,
                 "devices": int(args.devices) if args.devices and args.devices.isdigit()
                 else args.devices}
    overrides = {k: v for k, v in overrides.items() if v is not None}
    if args.quiet:
        overrides["progress_bar"] = False
    if overrides:
        config = dataclasses.replace(config, run=dataclasses.replace(config.run, **overrides))
    blend = load_blend(args.blend) if args.blend else None
    if args.heldout and not config.run.val_every:
        raise UalmError("--heldout needs run.val_every (how often to measure)",
                        fix="add --val-every N, or set run.val_every in the config")
    result = run_stage(args.stage, args.corpora, config, args.out, init=args.init, blend=blend,
                       resume=not args.no_resume, heldout=args.heldout)
    if result.checkpoint is None:  # a non-zero rank of a multi-process run
        return 0
    print(f"trained {result.steps} steps in {result.seconds:.0f} s "
          f"({result.positions_per_second:,.0f} positions/s), final loss "
          f"{result.final_loss if result.final_loss is not None else float('nan'):.4f}")
    for label, row in result.realised.get("sources", {}).items():
        print(f"  {label:40s} {row['samples']:>8,} samples {row['sample_share']:6.1%}  "
              f"{row['tokens']:>10,} tokens {row['token_share']:6.1%}")
    if "pairs" in result.realised:
        print("  preference pairs: " + ", ".join(f"{k} {v:,}" for k, v in
                                                 result.realised["pairs"].items()))
    heldout = result.out / "dpo_heldout.json"
    if heldout.is_file():
        history = json.loads(heldout.read_text())
        first, last = history[0], history[-1]
        print(f"  held-out pairs: reward accuracy {first['accuracy']:.1%} -> "
              f"{last['accuracy']:.1%}, reward margin {last['margin']:+.3f}, log-prob margin "
              f"(chosen - rejected) {first['logp_margin']:+.2f} -> {last['logp_margin']:+.2f}")
    print(f"run folder: {result.out} (checkpoint {result.checkpoint})")
    return 0


def _run_generate(args: argparse.Namespace) -> int:
    from ualm.train.model.generate import GenerationConfig
    from ualm.train.model.infer import FRAME_RATE, generate_wav

    config = GenerationConfig(args.guidance, args.top_k, args.temperature,
                              max(1, round(args.max_seconds * FRAME_RATE)), args.seed)
    result = generate_wav(args.checkpoint, args.corpus, args.caption, args.out, config,
                          args.device)
    print(f"wrote {result.path} ({result.seconds:.2f} s, {result.frames} frames)")
    if result.random_codec:
        print("note: the corpus's codec has random weights, so the audio is noise-like")
    return 0


def _run_understand(args: argparse.Namespace) -> int:
    from ualm.train.model.infer import understand_file

    print(understand_file(args.checkpoint, args.corpus, args.audio, args.question, args.device,
                          args.max_new_tokens))
    return 0


def _run_eval(args: argparse.Namespace) -> int:
    from ualm.train.model.evaluate import evaluate
    from ualm.train.model.module import load_trained

    model = load_trained(args.checkpoint, args.device)
    result = evaluate(model, args.corpora, args.seq_len, args.batch_size,
                      max_batches=args.max_batches)
    if args.json:
        print(json.dumps(result, sort_keys=True))
        return 0
    print(f"loss {result['loss']:.4f} over {result['samples']:,} samples")
    for task, row in result["tasks"].items():
        parts = [f"loss {row['loss']:.4f}"]
        if "text_accuracy" in row:
            parts.append(f"text accuracy {row['text_accuracy']:.1%}")
        if "code_accuracy" in row:
            parts.append(f"code accuracy {row['code_accuracy']:.1%}")
        print(f"  {task:14s} " + ", ".join(parts))
    return 0
