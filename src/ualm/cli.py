"""The `ualm` command. It only parses arguments and calls library functions."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ualm import flags
from ualm.cli_spellings import BUILD_SPELLINGS, ENGINE_SPELLINGS, TOKENIZE_SPELLINGS
from ualm.errors import UalmError
from ualm.flags import Command, Spellings, UsageError, plain_command
from ualm.redact import redact_logs, redact_text
from ualm.terminal import global_flags, print_traceback, quiet_libraries


def _epilog(spellings: Spellings) -> str:
    return "old spellings still read: " + ", ".join(
        f"{old} = {new}" for old, new in spellings.renamed.items())


def _build_parser(prog: str) -> Any:
    from ualm.config import BuildConfig

    p = flags.parser(prog, "Build or resume a corpus from audio inputs. Every config key is a "
                     "flag (--SECTION.KEY VALUE) that wins over --preset and --config.",
                     _epilog(BUILD_SPELLINGS))
    p.add_argument("--input", action="append", required=True, metavar="PATH",
                   help="a folder of audio, a JSONL/CSV/parquet manifest (a path or a URL: "
                        "s3://, gs://, any fsspec store), a urls.txt, a Hugging Face dataset "
                        "(hf://datasets/ORG/NAME or a local folder in its layout) or WebDataset "
                        "tars (repeatable)")
    p.add_argument("--out", required=True, metavar="DIR",
                   help="corpus folder (or s3://BUCKET/PREFIX, gs://...) to create or resume")
    _add_engine_options(p)
    p.add_argument("--config", metavar="FILE", help="YAML build config (see examples/)")
    p.add_argument("--preset", metavar="NAME",
                   help="a packaged recipe (sound-captions, speech); --config merges on top")
    p.add_argument("--allow-root", action="append", default=[], metavar="DIR",
                   help="another folder or URL prefix (s3://BUCKET/PREFIX) that manifest paths "
                        "may point into")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.add_argument("--dry-run", action="store_true",
                   help="list the inputs and plan the units; write nothing, run nothing")
    p.add_argument("--json", action="store_true", help="with --dry-run: the plan as one JSON line")
    flags.add_config(p, BuildConfig)
    return p


def _add_engine_options(p: Any) -> None:
    """Where the work runs: `ualm run`'s engine section (its Beam options are the command
    line's own `--option=value` words)."""
    from ualm.run.config import EngineSection

    flags.add_config(p, EngineSection, "engine", skip=("options",))


def _tokenize_parser(prog: str) -> Any:
    from ualm.config import TokenizeConfig

    p = flags.parser(prog, "Codec token shards for every audio shard of a corpus.",
                     _epilog(TOKENIZE_SPELLINGS))
    p.add_argument("corpus", metavar="DIR")
    _add_engine_options(p)
    p.add_argument("--quiet", action="store_true")
    flags.add_config(p, TokenizeConfig, skip=("enabled",))
    return p


def _parse_engine(p: Any, argv: list[str], spellings: Spellings) -> tuple[Any, dict]:
    """Arguments and the config flags given; `--name=value` options no flag knows go to Beam.
    `args.engine` is the `EngineSection` (checked), with those options."""
    from ualm.run.config import EngineSection
    from ualm.sections import build_section

    args, given, beam = flags.parse(p, argv, spellings, passthrough=True)
    engine = build_section(EngineSection, "engine", {**flags.section(given, "engine"),
                                                     "options": beam},
                           "engine", "see the command's --help", source="the command line")
    if beam and engine.name != "beam":
        raise UsageError(f"unrecognized arguments: {' '.join(beam)}",
                         fix="pipeline options are passed on only with --engine.name beam")
    args.engine = engine
    return args, given


def _engine(args: Any) -> dict[str, Any]:
    e = args.engine
    return {"engine": e.name, "scheduler": e.scheduler, "workers": e.workers,
            "beam_runner": e.runner, "beam_options": list(e.options)}


def _add_listen(p: argparse.ArgumentParser) -> None:
    p.add_argument("corpus", metavar="DIR")
    p.add_argument("key", help="the sample key (manifests/samples, column `key`)")
    p.add_argument("-o", "--out", required=True, metavar="WAV")
    p.add_argument("--codec-id", help="which token set, when the corpus holds several")
    p.add_argument("--device", default=None)


def _add_inspect(p: argparse.ArgumentParser) -> None:
    p.add_argument("corpus", metavar="DIR")
    p.add_argument("--json", action="store_true", help="one JSON object on stdout")
    p.add_argument("--plot", metavar="PNG", help="also draw the funnel in hours to this file")


def _demo_parser(prog: str) -> Any:
    p = flags.parser(prog, "Build a corpus from the package's own synthetic audio.",
                     "old spellings still read: --engine = --engine.name")
    p.add_argument("--out", default="corpus-demo", metavar="DIR")
    p.add_argument("--clips", type=int, default=48, help="good clips in the synthetic world")
    p.add_argument("--seed", type=int, default=0, help="seed of the synthetic world")
    _add_engine_options(p)
    return p


def parse_build(argv: list[str], prog: str = "ualm build") -> tuple[Any, Any]:
    """`ualm build`'s arguments and its BuildConfig (preset, then --config, then flags)."""
    from ualm.config import BuildConfig

    args, given = _parse_engine(_build_parser(prog), argv, BUILD_SPELLINGS)
    given = flags.pick(given, flags.field_names(BuildConfig))
    return args, BuildConfig.from_sources(args.preset, args.config, overrides=given)


def _run_build(prog: str, argv: list[str]) -> int:
    from ualm.manifests.inspect import format_summary
    from ualm.pipelines.build import build_corpus, plan_build
    from ualm.pipelines.tokens import format_tokens, no_codec_hint

    args, config = parse_build(argv, prog)
    if args.dry_run:
        return _print_plan(plan_build(args.input, config, args.allow_root), args.json)
    result = build_corpus(args.input, args.out, config, allow_roots=args.allow_root,
                          progress=not args.quiet, **_engine(args))
    print(format_summary(result.summary))
    if result.skipped_units:
        print(f"(resumed: {result.skipped_units} finished units were not redone)")
    if result.tokens:
        print(format_tokens(result.tokens))
    elif config.tokenize.enabled and config.tokenize.codec is None:
        print(no_codec_hint(result.corpus))
    return 0


def _print_plan(plan: dict, as_json: bool) -> int:
    if as_json:
        print(json.dumps(plan, sort_keys=True))
        return 0
    print(f"inputs   {plan['inputs']:,}, digest {plan['inputs_digest']}")
    print(f"units    {plan['units']:,} of up to {plan['unit_size']:,} inputs")
    print(f"config   {plan['config_hash']}")
    print("stages   " + " -> ".join(f"{s['name']} ({s['kind']})" for s in plan["stages"]))
    print("(dry run: nothing was written)")
    return 0


def parse_tokenize(argv: list[str], prog: str = "ualm tokenize") -> tuple[Any, Any]:
    """`ualm tokenize`'s arguments and its TokenizeConfig."""
    from ualm.config import BuildConfig, TokenizeConfig

    args, given = _parse_engine(_tokenize_parser(prog), argv, TOKENIZE_SPELLINGS)
    given = flags.pick(given, flags.field_names(TokenizeConfig))
    return args, BuildConfig.from_dict({"tokenize": given}, source="the command line").tokenize


def _run_tokenize(prog: str, argv: list[str]) -> int:
    from ualm.pipelines.tokens import format_tokens, tokenize_corpus

    args, config = parse_tokenize(argv, prog)
    tokens = tokenize_corpus(args.corpus, config, progress=not args.quiet, **_engine(args))
    print(format_tokens(tokens))
    if tokens["skipped_shards"]:
        print(f"(already done: {tokens['skipped_shards']} token shards were not redone)")
    return 0


def _run_listen(args: argparse.Namespace) -> int:
    from ualm.tokenize.listen import listen

    result = listen(args.corpus, args.key, args.out, codec_id=args.codec_id, device=args.device)
    print(f"wrote {result.path} ({result.seconds:.2f} s, codec {result.codec_id})")
    if result.random_weights:
        print("note: this codec has random weights, so the audio is noise")
    return 0


def _run_inspect(args: argparse.Namespace) -> int:
    from ualm.manifests.inspect import format_summary, plot_funnel, summarize

    summary = summarize(args.corpus)
    if args.plot:
        plot_funnel(summary, args.plot)
    print(json.dumps(summary, sort_keys=True) if args.json else format_summary(summary))
    return 0


def _run_demo(prog: str, argv: list[str]) -> int:
    from ualm.audio.synthetic import make_world
    from ualm.config import BuildConfig
    from ualm.manifests.inspect import format_summary, plot_funnel
    from ualm.manifests.layout import CorpusLayout
    from ualm.pipelines.build import build_corpus
    from ualm.pipelines.tokens import format_tokens
    from ualm.tokenize.listen import listen

    args, _ = _parse_engine(_demo_parser(prog), argv, Spellings(renamed=ENGINE_SPELLINGS))
    out = Path(args.out)
    world = make_world(out / "world", n_clips=args.clips, seed=args.seed)
    # Shards of 24 samples: a demo's few minutes of audio then make several token shards, so
    # every worker tokenizes (one 1,000-sample shard would keep all but one idle).
    config = BuildConfig.from_dict({"shards": {"max_samples": 24},
                                    "tokenize": {"codec": "random:encodec"}})  # labelled below
    result = build_corpus([world.manifest], out / "corpus", config, **_engine(args))
    print(format_summary(result.summary))
    if result.tokens:
        print(format_tokens(result.tokens))
    funnel = plot_funnel(result.summary, out / "funnel.png")
    print(f"\ncorpus: {result.corpus}\nfunnel: {funnel}")
    if result.tokens:
        layout = CorpusLayout(result.corpus)
        first = layout.read_table(layout.samples_part("audio", 0),
                                  columns=["key"]).column("key")[0].as_py()
        heard = listen(result.corpus, first, out / "listen.wav")
        print(f"listen: {heard.path} ({first} decoded from its codes"
              + (", random codec: noise)" if heard.random_weights else ")"))
    return 0


def commands() -> dict[str, Command]:
    """Every `ualm` command by name (each module's parsers are made only when it runs)."""
    from ualm.export.cli import export_commands
    from ualm.publish.cli import publish_commands
    from ualm.report.cli import report_commands
    from ualm.run.cli import run_commands
    from ualm.synth.cli import synth_commands
    from ualm.train.blend_cli import blend_commands
    from ualm.train.train_cli import train_commands

    table = {
        "build": Command("build or resume a corpus from audio inputs", _run_build),
        "tokenize": Command("codec token shards for every audio shard of a corpus",
                            _run_tokenize),
        "listen": plain_command("decode a sample's codes back to a WAV file", _add_listen,
                                _run_listen),
        "inspect": plain_command("counts, reasons and the funnel of a corpus", _add_inspect,
                                 _run_inspect),
        "demo": Command("build a corpus from the package's own synthetic audio", _run_demo),
    }
    for more in (blend_commands, train_commands, synth_commands, report_commands,
                 run_commands, publish_commands, export_commands):
        table.update(more())
    return table


def usage(table: dict[str, Command]) -> str:
    rows = "\n".join(f"  {name:11s} {command.help}" for name, command in table.items())
    return (f"usage: ualm [--debug] [--verbose] COMMAND ...\n\n{__doc__}\n\ncommands:\n"
            f"{rows}\n\noptions:\n  --debug     show tracebacks\n  --verbose   show the "
            "libraries' tips, notices and warnings (hidden by default)\n\n`ualm COMMAND "
            "--help` lists a command's flags.")


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug, verbose, argv = global_flags(argv)
    if not verbose:
        quiet_libraries()
    redact_logs()
    table = commands()
    if not argv or argv[0] in ("-h", "--help"):
        print(usage(table), file=sys.stdout if argv else sys.stderr)
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    try:
        if name not in table:
            raise UsageError(f"unknown command {name!r}", fix=f"one of: {', '.join(table)}")
        return table[name].run(f"ualm {name}", rest)
    except UalmError as exc:
        if debug:
            print_traceback()
        else:
            print(f"ualm: error: {redact_text(str(exc))}", file=sys.stderr)  # no credentials
        return 2
    except KeyboardInterrupt:
        print("ualm: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130
    except Exception:  # a bug: its traceback, as Python prints it, less any credential
        print_traceback()
        return 1


if __name__ == "__main__":
    sys.exit(main())
