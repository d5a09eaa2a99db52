"""`ualm train`, `ualm generate`, `ualm understand`, `ualm eval`: argument parsing only; the work
is in ualm.train's library functions."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from ualm import flags
from ualm.errors import UalmError
from ualm.flags import Command, Spellings, plain_command
from ualm.recipes import merged
from ualm.sections import build_section

SPELLINGS = Spellings(renamed={
    "--stage": "--stage.name", "--max-steps": "--run.max_steps", "--val-every": "--run.val_every",
    "--devices": "--run.devices", "--strategy": "--run.strategy",
    "--accelerator": "--run.accelerator"})


def train_commands() -> dict[str, Command]:
    return {
        "train": Command("train a UALM model on token shards", _run_train),
        "generate": Command("audio from a caption, decoded with the corpus's codec",
                            _run_generate),
        "understand": plain_command("answer a question about an audio file (greedy)",
                                    _add_understand, _run_understand),
        "eval": Command("held-out loss and accuracy per task", _run_eval),
    }


def _train_parser(prog: str) -> Any:
    from ualm.train.config import TrainConfig

    p = flags.parser(prog, "Train a UALM model on token shards. Every config key is a flag "
                     "(--SECTION.KEY VALUE) that wins over --config.", "old spellings still "
                     "read: " + ", ".join(f"{o} = {n}" for o, n in SPELLINGS.renamed.items()))
    p.add_argument("corpora", nargs="+", metavar="CORPUS", help="corpus folders to stream")
    p.add_argument("--config", required=True, metavar="YAML",
                   help="a training config, or a preset name: tiny, qwen2.5-1.5b")
    p.add_argument("--blend", metavar="YAML", help="blend spec from `ualm blend` (default: "
                   "every source equally often)")
    p.add_argument("--out", default="runs/ualm", metavar="DIR",
                   help="run folder (rerun with the same folder to resume)")
    p.add_argument("--init", metavar="CKPT", help="start from this checkpoint's weights (the "
                   "previous stage's; for dpo also the reference model)")
    p.add_argument("--heldout", nargs="+", default=[], metavar="CORPUS",
                   help="held-out corpora: their loss is logged every run.val_every steps")
    p.add_argument("--no-resume", action="store_true", help="start over even if a checkpoint "
                   "exists in --out")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    flags.add_config(p, TrainConfig)
    return p


def _generate_parser(prog: str) -> Any:
    from ualm.train.model.generate import GenerationConfig

    p = flags.parser(prog, "Audio from a caption, decoded with the corpus's codec.",
                     "old spellings still read: dashes for underscores (--top-k)")
    p.add_argument("caption")
    p.add_argument("--checkpoint", required=True, metavar="CKPT")
    p.add_argument("--corpus", required=True, metavar="DIR", help="a corpus the model was "
                   "trained on (its codec decodes the codes)")
    p.add_argument("-o", "--out", required=True, metavar="WAV")
    p.add_argument("--max-seconds", type=float, metavar="S",
                   help="length bound in seconds (instead of --max_frames; default 10)")
    p.add_argument("--device", default="cpu")
    flags.add_config(p, GenerationConfig)
    return p


def _add_understand(p: argparse.ArgumentParser) -> None:
    p.add_argument("audio", metavar="AUDIO")
    p.add_argument("question")
    p.add_argument("--checkpoint", required=True, metavar="CKPT")
    p.add_argument("--corpus", required=True, metavar="DIR",
                   help="a corpus the model was trained on (its codec encodes the audio)")
    p.add_argument("--max-new-tokens", type=int, default=128)
    p.add_argument("--device", default="cpu")


def _eval_parser(prog: str) -> Any:
    from ualm.train.data.datamodule import DataConfig

    p = flags.parser(prog, "Held-out loss and accuracy per task; --seq_len and --batch_size "
                     "are the data config's.", "old spellings still read: dashes for "
                     "underscores (--seq-len, --batch-size)")
    p.add_argument("corpora", nargs="+", metavar="CORPUS")
    p.add_argument("--checkpoint", required=True, metavar="CKPT")
    p.add_argument("--max-batches", type=int, help="default: one whole pass")
    p.add_argument("--device", default="cpu")
    p.add_argument("--json", action="store_true", help="one JSON object on stdout")
    flags.add_config(p, DataConfig, skip=[f for f in flags.field_names(DataConfig)
                                          if f not in ("seq_len", "batch_size")])
    return p


def parse_train(argv: list[str], prog: str = "ualm train") -> tuple[Any, Any]:
    """`ualm train`'s arguments and its TrainConfig (--config, then the flags)."""
    from ualm.train.config import TrainConfig

    args, given, _ = flags.parse(_train_parser(prog), argv, SPELLINGS)
    given = flags.pick(given, flags.field_names(TrainConfig))
    if args.quiet:
        given = merged(given, {"run": {"progress_bar": False}})
    return args, TrainConfig.from_yaml(args.config, overrides=given)


def _run_train(prog: str, argv: list[str]) -> int:
    from ualm.train.blend.spec import load_blend
    from ualm.train.stages.stage import run_stage

    args, config = parse_train(argv, prog)
    blend = load_blend(args.blend) if args.blend else None
    if args.heldout and not config.run.val_every:
        raise UalmError("--heldout needs run.val_every (how often to measure)",
                        fix="add --run.val_every N, or set it in the config")
    resumed = Path(args.out) / "checkpoints" / "last.ckpt"
    if not args.no_resume and resumed.is_file():
        print(f"resuming from {resumed} (--no-resume starts over)")
    result = run_stage(None, args.corpora, config, args.out, init=args.init, blend=blend,
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
    _print_paths(result.out, result.checkpoint)
    return 0


def _print_paths(out: Path, checkpoint: Path) -> None:
    """The run's last held-out loss, and where its files are."""
    from ualm.train.metrics import loss_series, read_metrics

    metrics = out / "logs" / "metrics.csv"
    held = loss_series(read_metrics(metrics), "val").get("loss")
    if held:
        print(f"  held-out loss {held[-1][1]:.4f} at step {held[-1][0]} "
              f"({held[0][1]:.4f} at step {held[0][0]})")
    print(f"run folder  {out}")
    print(f"checkpoint  {checkpoint}   (ualm eval / generate / understand --checkpoint)")
    print(f"metrics     {metrics}" + (f", loss curve {out / 'loss.png'}"
                                       if (out / "loss.png").is_file() else ""))


DEFAULT_GENERATE_SECONDS = 10.0


def parse_generate(argv: list[str], prog: str = "ualm generate") -> tuple[Any, Any]:
    """`ualm generate`'s arguments and its GenerationConfig."""
    from ualm.train.model.generate import GenerationConfig

    args, given, _ = flags.parse(_generate_parser(prog), argv)
    given = flags.pick(given, flags.field_names(GenerationConfig))
    # --max-seconds (10 by default) counts at the corpus's frame rate, read when it runs
    seconds = args.max_seconds if args.max_seconds is not None else DEFAULT_GENERATE_SECONDS
    args.seconds_bound = seconds if "max_frames" not in given else None
    return args, build_section(GenerationConfig, "generate", given, "generation config",
                               "see ualm generate --help", source="the command line")


def _run_generate(prog: str, argv: list[str]) -> int:
    from ualm.train.model.infer import generate_wav

    args, config = parse_generate(argv, prog)
    result = generate_wav(args.checkpoint, args.corpus, args.caption, args.out, config,
                          args.device, max_seconds=args.seconds_bound)
    print(f"wrote {result.path} ({result.seconds:.2f} s, {result.frames} frames)")
    if result.random_codec:
        print("note: the corpus's codec has random weights, so the audio is noise-like")
    return 0


def _run_understand(args: argparse.Namespace) -> int:
    from ualm.train.model.infer import understand_file

    print(understand_file(args.checkpoint, args.corpus, args.audio, args.question, args.device,
                          args.max_new_tokens))
    return 0


def _run_eval(prog: str, argv: list[str]) -> int:
    from ualm.train.model.evaluate import evaluate
    from ualm.train.model.module import load_trained

    args, _, _ = flags.parse(_eval_parser(prog), argv)
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
