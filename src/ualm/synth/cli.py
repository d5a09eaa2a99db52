"""`ualm synth CORPUS --teacher ... --kinds [enrichment,dialogue,reflection,pairs]`: flags made
from `SynthConfig`'s fields (over an optional --config YAML) into a `SynthConfig`, then
`synth_corpus`."""

from __future__ import annotations

import json
from typing import Any

from ualm import flags
from ualm.flags import Command, Spellings, comma_list
from ualm.synth.config import SynthConfig

SPELLINGS = Spellings(renamed={"--cache": "--cache_dir"}, convert={"--kinds": comma_list})


def synth_commands() -> dict[str, Command]:
    return {"synth": Command("reasoning traces and preference pairs from a teacher LLM", _run)}


def _parser(prog: str) -> Any:
    p = flags.parser(prog, "Reasoning traces and preference pairs from a teacher LLM. Every "
                     "SynthConfig field is a flag; flags win over --config.",
                     "old spellings still read: --cache = --cache_dir, --kinds a,b = "
                     "--kinds [a,b], and dashes for underscores (--max-retries)")
    p.add_argument("corpus", metavar="DIR", help="a built and tokenized corpus")
    p.add_argument("--config", metavar="YAML", help="SynthConfig fields (flags win over it)")
    p.add_argument("--json", action="store_true", help="print the funnel as one JSON line")
    p.add_argument("--quiet", action="store_true", help="no progress line")
    flags.add_config(p, SynthConfig)
    return p


def load_config(path: str | None, given: dict[str, Any]) -> SynthConfig:
    """SynthConfig from a YAML file of its fields (if any) with `given` values on top."""
    from ualm.config import read_yaml_mapping
    from ualm.recipes import merged
    from ualm.sections import build_section

    data = merged(read_yaml_mapping(path) if path else {}, given)
    return build_section(SynthConfig, "synth", data, "synth config",
                         f"SynthConfig's fields: {', '.join(flags.field_names(SynthConfig))}",
                         source=path or "the command line")


def parse_synth(argv: list[str], prog: str = "ualm synth") -> tuple[Any, SynthConfig]:
    """`ualm synth`'s arguments and its SynthConfig (--config, then the flags)."""
    args, given, _ = flags.parse(_parser(prog), argv, SPELLINGS)
    return args, load_config(args.config, flags.pick(given, flags.field_names(SynthConfig)))


def _run(prog: str, argv: list[str]) -> int:
    from ualm.manifests import names
    from ualm.manifests.layout import CorpusLayout
    from ualm.synth.run import synth_corpus

    args, config = parse_synth(argv, prog)
    result = synth_corpus(args.corpus, config, progress=not args.quiet)
    if args.json:
        print(json.dumps({"funnel": result.funnel, "run": result.stats}, sort_keys=True))
        return 0
    print(format_funnel(result.funnel))
    s = result.stats
    print(f"run      {s['requests_sent']} requests sent, {s['cache_hits']} from the cache, "
          f"{s['retries']} retries, {s['tokens']:,} tokens in {s['seconds']:.1f} s")
    print(f"funnel   {CorpusLayout(result.corpus).synth(names.SYNTH_FUNNEL)} (+ funnel.png)")
    return 0


def format_funnel(funnel: dict) -> str:
    lines = [f"teacher  {funnel['teacher']}   scorer {funnel['scorer']}"]
    for kind, c in funnel["traces"].items():
        rejected = ", ".join(f"{r} {n}" for r, n in c["rejected"].items()) or "none"
        lines.append(f"{kind:<11} requested {c['requested']}, valid {c['valid']}, repaired "
                     f"{c['repaired']}, deduplicated {c['deduplicated']}, written "
                     f"{c['written']}; rejected: {rejected}")
    pairs = funnel.get("pairs")
    if pairs:
        missing = ", ".join(f"{r} {n}" for r, n in pairs["no_pair"].items()) or "none"
        lines.append(f"{'pairs':<11} captions {pairs['captions']}, paired {pairs['paired']}, "
                     f"written {pairs['written']} ({pairs['rejected_clips']} distinct rejected "
                     f"clips); no pair: {missing}")
    return "\n".join(lines)
