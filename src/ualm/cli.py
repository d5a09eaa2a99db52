"""The `ualm` command. It only parses arguments and calls library functions."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from ualm.errors import UalmError
from ualm.publish.cli import add_publish_command
from ualm.report.cli import add_report_command
from ualm.run.cli import add_run_command
from ualm.synth.cli import add_synth_command
from ualm.train.blend_cli import add_blend_commands


def _add_build(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("build", help="build or resume a corpus from audio inputs")
    p.add_argument("--input", action="append", required=True, metavar="PATH",
                   help="a folder of audio, a JSONL/CSV/parquet manifest, a urls.txt, a Hugging "
                        "Face dataset (hf://datasets/ORG/NAME or a local folder in its layout) or "
                        "WebDataset tars (repeatable)")
    p.add_argument("--out", required=True, metavar="DIR", help="corpus folder to create or resume")
    _add_engine_options(p)
    p.add_argument("--config", metavar="FILE", help="YAML build config (see examples/)")
    p.add_argument("--preset", metavar="NAME",
                   help="a packaged recipe (sound-captions, speech); --config merges on top")
    p.add_argument("--allow-root", action="append", default=[], metavar="DIR",
                   help="another folder that manifest paths may point into")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.add_argument("--no-tokenize", action="store_true", help="skip the codec stage")
    p.add_argument("--allow-private-network", action="store_true",
                   help="let the crawler fetch from loopback and private addresses (intranets, "
                        "tests); link-local and cloud metadata addresses stay refused")
    _add_codec_options(p, defaults=False)
    p.set_defaults(run=_run_build)


def _add_engine_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--engine", default="dask", choices=["local", "dask", "beam"])
    p.add_argument("--scheduler", metavar="ADDR", help="address of an existing Dask scheduler")
    p.add_argument("--workers", type=int,
                   help="local Dask workers or DirectRunner processes (default: one per core)")
    p.add_argument("--runner", metavar="NAME",
                   help="Beam runner: DirectRunner (default), PortableRunner, FlinkRunner, "
                        "SparkRunner, DataflowRunner; any further --option=value is passed to "
                        "Beam unchanged")
    p.set_defaults(accepts_beam_options=True)


def _add_codec_options(p: argparse.ArgumentParser, defaults: bool) -> None:
    """Codec options; on `build` they override the config file only when given."""
    p.add_argument("--codec", default="random" if defaults else None, metavar="PATH|random",
                   help="EnCodec .th checkpoint, Hugging Face EncodecModel folder, or `random`")
    p.add_argument("--bandwidth", type=float, default=6.0 if defaults else None, metavar="KBPS",
                   help="1.5, 3, 6, 12 or 24 kbps (2-32 codebooks); default 6")
    p.add_argument("--device", default=None, help="cuda or cpu (default: cuda when available)")
    p.add_argument("--batch-size", type=int, default=None, help="default: adapts to memory")
    p.add_argument("--cache", default=None, metavar="DIR", help="token cache (default ~/.cache/ualm)")


def _add_tokenize(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("tokenize", help="codec token shards for every audio shard of a corpus")
    p.add_argument("corpus", metavar="DIR")
    _add_engine_options(p)
    p.add_argument("--seed", type=int, default=0, help="seed of the random codec")
    p.add_argument("--quiet", action="store_true")
    _add_codec_options(p, defaults=True)
    p.set_defaults(run=_run_tokenize)


def _add_listen(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("listen", help="decode a sample's codes back to a WAV file")
    p.add_argument("corpus", metavar="DIR")
    p.add_argument("key", help="the sample key (manifests/samples, column `key`)")
    p.add_argument("-o", "--out", required=True, metavar="WAV")
    p.add_argument("--codec-id", help="which token set, when the corpus holds several")
    p.add_argument("--device", default=None)
    p.set_defaults(run=_run_listen)


def _add_inspect(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("inspect", help="counts, reasons and the funnel of a corpus")
    p.add_argument("corpus", metavar="DIR")
    p.add_argument("--json", action="store_true", help="one JSON object on stdout")
    p.add_argument("--plot", metavar="PNG", help="also draw the funnel in hours to this file")
    p.set_defaults(run=_run_inspect)


def _add_demo(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="build a corpus from the package's own synthetic audio")
    p.add_argument("--out", default="corpus-demo", metavar="DIR")
    p.add_argument("--clips", type=int, default=48, help="good clips in the synthetic world")
    p.add_argument("--engine", default="dask", choices=["local", "dask", "beam"])
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(run=_run_demo)


def _codec_overrides(args: argparse.Namespace) -> dict:
    given = {"codec": args.codec, "bandwidth": args.bandwidth, "device": args.device,
             "batch_size": args.batch_size, "cache_dir": args.cache}
    return {k: v for k, v in given.items() if v is not None}


def _run_build(args: argparse.Namespace) -> int:
    import dataclasses

    from ualm.config import BuildConfig
    from ualm.manifests.inspect import format_summary
    from ualm.pipelines.build import build_corpus

    config = BuildConfig.from_sources(args.preset, args.config)
    overrides = _codec_overrides(args)
    if args.no_tokenize:
        overrides["enabled"] = False
    if overrides:
        tokenize = BuildConfig.from_dict({"tokenize": {**dataclasses.asdict(config.tokenize),
                                                       **overrides}}).tokenize
        config = dataclasses.replace(config, tokenize=tokenize)
    if args.allow_private_network:
        config = dataclasses.replace(
            config, crawl=dataclasses.replace(config.crawl, allow_private_network=True))
    result = build_corpus(args.input, args.out, config, engine=args.engine,
                          scheduler=args.scheduler, workers=args.workers,
                          beam_runner=args.runner, beam_options=args.beam_options,
                          allow_roots=args.allow_root, progress=not args.quiet)
    print(format_summary(result.summary))
    if result.skipped_units:
        print(f"(resumed: {result.skipped_units} finished units were not redone)")
    if result.tokens:
        _print_tokens(result.tokens)
    return 0


def _print_tokens(tokens: dict) -> None:
    print(f"tokens   {tokens['codec_id']}: {tokens['samples']:,} samples, {tokens['tokens']:,} "
          f"tokens ({tokens['codebooks']} codebooks x {tokens['frame_rate']:g} frames/s), "
          f"{tokens['token_to_audio_bytes']:.3f} of the audio's bytes")
    if tokens["random_weights"]:
        print("warning: the codec has RANDOM weights (tests and demos only); pass --codec PATH "
              "with real EnCodec weights for training data")


def _run_tokenize(args: argparse.Namespace) -> int:
    from ualm.config import TokenizeConfig
    from ualm.pipelines.tokens import tokenize_corpus

    config = TokenizeConfig(seed=args.seed, **_codec_overrides(args))
    tokens = tokenize_corpus(args.corpus, config, engine=args.engine, scheduler=args.scheduler,
                             workers=args.workers, beam_runner=args.runner,
                             beam_options=args.beam_options, progress=not args.quiet)
    _print_tokens(tokens)
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


def _run_demo(args: argparse.Namespace) -> int:
    from ualm.audio.synthetic import make_world
    from ualm.config import BuildConfig
    from ualm.manifests.inspect import format_summary, plot_funnel
    from ualm.manifests.layout import CorpusLayout
    from ualm.pipelines.build import build_corpus
    from ualm.tokenize.listen import listen

    out = Path(args.out)
    world = make_world(out / "world", n_clips=args.clips, seed=args.seed)
    # Shards of 24 samples: a demo's few minutes of audio then make several token shards, so
    # every worker tokenizes (one 1,000-sample shard would keep all but one idle).
    config = BuildConfig.from_dict({"shards": {"max_samples": 24}})
    result = build_corpus([world.manifest], out / "corpus", config, engine=args.engine)
    print(format_summary(result.summary))
    if result.tokens:
        _print_tokens(result.tokens)
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


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ualm", description=__doc__)
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", required=True)
    for add in (_add_build, _add_tokenize, _add_listen, _add_inspect, _add_demo):
        add(sub)
    add_blend_commands(sub)
    from ualm.train.train_cli import add_train_commands

    add_train_commands(sub)
    add_synth_command(sub)
    add_report_command(sub)
    add_run_command(sub)
    add_publish_command(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = make_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and not (getattr(args, "accepts_beam_options", False) and args.engine == "beam"):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.beam_options = extra
    try:
        return args.run(args)
    except UalmError as exc:
        if args.debug:
            raise
        print(f"ualm: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("ualm: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
