"""`ualm run CONFIG.yaml [--until STAGE] [--from STAGE] [--set key=value]`: parsing only."""

from __future__ import annotations

from typing import Any

from ualm import flags
from ualm.flags import Command, Spellings
from ualm.run.registry import ORDER

SPELLINGS = Spellings(renamed={"--out": "--run.out"})


def run_commands() -> dict[str, Command]:
    return {"run": Command("the whole pipeline from one YAML config (examples/demo.yaml)", _run)}


def _parser(prog: str) -> Any:
    from ualm.run.config import PipelineConfig

    p = flags.parser(prog, "The whole pipeline from one YAML config. Every config key is a flag "
                     "(--SECTION.KEY VALUE, e.g. --engine.name local) that wins over the file "
                     "and --set.", "old spellings still read: --out = --run.out")
    p.add_argument("config", metavar="CONFIG.yaml")
    p.add_argument("--until", metavar="STAGE", help=f"stop after this stage ({', '.join(ORDER)})")
    p.add_argument("--from", dest="start", metavar="STAGE",
                   help="redo this stage and every later one (earlier ones must be complete)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a value at any depth, also inside a mapping, e.g. --set "
                        "train.overrides.run.max_steps=50 (repeatable; the value is YAML)")
    p.add_argument("--dry-run", action="store_true",
                   help="check the config and say which stages would run; run nothing")
    p.add_argument("--quiet", action="store_true", help="stage lines only, no unit progress")
    flags.add_config(p, PipelineConfig)
    return p


def parse_run(argv: list[str], prog: str = "ualm run") -> tuple[Any, Any]:
    """`ualm run`'s arguments and its PipelineConfig (the file, --set, then the flags)."""
    from ualm.run.config import PipelineConfig

    args, given, _ = flags.parse(_parser(prog), argv, SPELLINGS)
    given = flags.pick(given, flags.field_names(PipelineConfig))
    return args, PipelineConfig.load(args.config, args.overrides, given)


def _run(prog: str, argv: list[str]) -> int:
    from ualm.run.pipeline import format_summary, run_pipeline

    args, config = parse_run(argv, prog)
    result = run_pipeline(config, until=args.until, start=args.start, progress=not args.quiet,
                          dry_run=args.dry_run)
    print(format_summary(result))
    return 0
