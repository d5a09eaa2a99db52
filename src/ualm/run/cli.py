"""`ualm run CONFIG.yaml [--until STAGE] [--from STAGE] [--set key=value]`: parsing only."""

from __future__ import annotations

import argparse

from ualm.flags import Command, plain_command
from ualm.run.registry import ORDER


def run_commands() -> dict[str, Command]:
    help = "the whole pipeline from one YAML config (examples/demo.yaml)"
    return {"run": plain_command(help, _add, _run)}


def _add(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", metavar="CONFIG.yaml")
    p.add_argument("--until", metavar="STAGE", help=f"stop after this stage ({', '.join(ORDER)})")
    p.add_argument("--from", dest="start", metavar="STAGE",
                   help="redo this stage and every later one (earlier ones must be complete)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set train.overrides.run.max_steps=50 "
                        "(repeatable; the value is YAML)")
    p.add_argument("--out", metavar="DIR", help="the run folder (overrides run.out)")
    p.add_argument("--dry-run", action="store_true",
                   help="check the config and say which stages would run; run nothing")
    p.add_argument("--quiet", action="store_true", help="stage lines only, no unit progress")


def _run(args: argparse.Namespace) -> int:
    from ualm.run.config import PipelineConfig
    from ualm.run.pipeline import format_summary, run_pipeline

    overrides = list(args.overrides) + ([f"run.out={args.out}"] if args.out else [])
    config = PipelineConfig.load(args.config, overrides)
    result = run_pipeline(config, until=args.until, start=args.start, progress=not args.quiet,
                          dry_run=args.dry_run)
    print(format_summary(result))
    return 0
