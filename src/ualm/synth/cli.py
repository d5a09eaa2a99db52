"""`ualm synth CORPUS --teacher ... --kinds enrichment,dialogue,reflection,pairs`: parses flags
into a `SynthConfig` and calls `synth_corpus`."""

from __future__ import annotations

import argparse
import json

from ualm.synth.config import ALL_KINDS, SynthConfig


def add_synth_command(sub: argparse._SubParsersAction) -> None:
    d = SynthConfig()
    p = sub.add_parser("synth", help="reasoning traces and preference pairs from a teacher LLM")
    p.add_argument("corpus", metavar="DIR", help="a built and tokenized corpus")
    p.add_argument("--teacher", default=d.teacher, metavar="SPEC",
                   help="rule (embedded, offline; default), openai:MODEL[@BASE_URL] (any "
                        "OpenAI-compatible server) or local:MODEL_FOLDER (transformers)")
    p.add_argument("--kinds", default=",".join(d.kinds),
                   help=f"comma-separated, of: {', '.join(ALL_KINDS)}")
    p.add_argument("--api-key-env", default=d.api_key_env, metavar="VAR",
                   help="environment variable that holds the API key")
    p.add_argument("--concurrency", type=int, default=d.concurrency)
    p.add_argument("--timeout", type=float, default=d.timeout, metavar="S")
    p.add_argument("--max-retries", type=int, default=d.max_retries)
    p.add_argument("--max-repairs", type=int, default=d.max_repairs)
    p.add_argument("--max-requests", type=int, default=None, help="request budget")
    p.add_argument("--max-tokens", type=int, default=None, help="token budget")
    p.add_argument("--temperature", type=float, default=d.temperature)
    p.add_argument("--reply-tokens", type=int, default=d.reply_tokens)
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--clap-model", metavar="DIR", help="local CLAP folder (near-miss, pairs)")
    p.add_argument("--device", default=None)
    p.add_argument("--codec-id", default=None)
    p.add_argument("--dedup-threshold", type=float, default=d.dedup_threshold)
    p.add_argument("--pair-margin", type=float, default=d.pair_margin)
    p.add_argument("--pair-candidates", type=int, default=d.pair_candidates)
    p.add_argument("--pairs-per-clip", type=int, default=d.pairs_per_clip)
    p.add_argument("--limit", type=int, default=None, help="only the first N clips")
    p.add_argument("--cache", default=None, metavar="DIR", help="reply cache folder")
    p.add_argument("--json", action="store_true", help="print the funnel as one JSON line")
    p.add_argument("--quiet", action="store_true", help="no progress line")
    p.set_defaults(run=_run_synth)


def _run_synth(args: argparse.Namespace) -> int:
    from ualm.manifests import names
    from ualm.manifests.layout import CorpusLayout
    from ualm.synth.run import synth_corpus

    config = SynthConfig(
        teacher=args.teacher, kinds=tuple(k.strip() for k in args.kinds.split(",") if k.strip()),
        api_key_env=args.api_key_env, concurrency=args.concurrency, timeout=args.timeout,
        max_retries=args.max_retries, max_repairs=args.max_repairs,
        max_requests=args.max_requests, max_tokens=args.max_tokens,
        temperature=args.temperature, reply_tokens=args.reply_tokens, seed=args.seed,
        clap_model=args.clap_model, device=args.device, codec_id=args.codec_id,
        dedup_threshold=args.dedup_threshold, pair_margin=args.pair_margin,
        pair_candidates=args.pair_candidates, pairs_per_clip=args.pairs_per_clip, limit=args.limit, cache_dir=args.cache)
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
