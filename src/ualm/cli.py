"""The `ualm` command. It only parses arguments and calls library functions."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from ualm.errors import UalmError


def _add_build(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("build", help="build or resume a corpus from audio inputs")
    p.add_argument("--input", action="append", required=True, metavar="PATH",
                   help="a folder of audio or a JSONL/CSV/parquet manifest (repeatable)")
    p.add_argument("--out", required=True, metavar="DIR", help="corpus folder to create or resume")
    p.add_argument("--engine", default="dask", choices=["local", "dask"])
    p.add_argument("--scheduler", metavar="ADDR", help="address of an existing Dask scheduler")
    p.add_argument("--workers", type=int, help="local Dask workers (default: one per core)")
    p.add_argument("--config", metavar="FILE", help="YAML build config (see examples/)")
    p.add_argument("--allow-root", action="append", default=[], metavar="DIR",
                   help="another folder that manifest paths may point into")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.set_defaults(run=_run_build)


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
    p.add_argument("--engine", default="dask", choices=["local", "dask"])
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(run=_run_demo)


def _run_build(args: argparse.Namespace) -> int:
    from ualm.config import BuildConfig
    from ualm.manifests.inspect import format_summary
    from ualm.pipelines.build import build_corpus

    config = BuildConfig.from_yaml(args.config) if args.config else BuildConfig()
    result = build_corpus(args.input, args.out, config, engine=args.engine,
                          scheduler=args.scheduler, workers=args.workers,
                          allow_roots=args.allow_root, progress=not args.quiet)
    print(format_summary(result.summary))
    if result.skipped_units:
        print(f"(resumed: {result.skipped_units} finished units were not redone)")
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
    from ualm.manifests.inspect import format_summary, plot_funnel
    from ualm.pipelines.build import build_corpus

    out = Path(args.out)
    world = make_world(out / "world", n_clips=args.clips, seed=args.seed)
    result = build_corpus([world.manifest], out / "corpus", engine=args.engine)
    print(format_summary(result.summary))
    funnel = plot_funnel(result.summary, out / "funnel.png")
    print(f"\ncorpus: {result.corpus}\nfunnel: {funnel}")
    return 0


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ualm", description=__doc__)
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", required=True)
    for add in (_add_build, _add_inspect, _add_demo):
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
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
