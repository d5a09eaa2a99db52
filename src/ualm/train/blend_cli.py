"""`ualm blend CORPUS... --out blend.yaml` and `ualm blend stats CORPUS...`.

`blend` takes verbs (`stats`, `fit`), and a first word that is no verb is the first corpus of
the default verb, which computes a spec. (A corpus folder named like a verb is written
`./stats`.) The options of `compute` and `fit` are `BlendOptions` and `FitOptions` fields.
"""

from __future__ import annotations

import argparse
import json
import math
from typing import Any

from ualm import flags
from ualm.flags import Command, Spellings, UsageError, plain_command
from ualm.sections import build_section

USAGE = ("ualm blend CORPUS... --out FILE [options]\n"
         "       ualm blend stats CORPUS... [--json] [--tokenizer T] [--codec-id ID] "
         "[--seq_len N]\n"
         "       ualm blend fit CORPUS... --heldout CORPUS... --out FILE [--proxies K] "
         "[--steps S]")
SPELLINGS = Spellings(
    renamed={"--allow-infeasible": "--allow_infeasible=true"},
    convert={"--targets": lambda v: _mapping(v), "--task_weights": lambda v: _mapping(v),
             "--max_epochs": lambda v: "null" if v.lower() == "none" else v,
             "--budget": lambda v: v if v.lower() == "null" else str(_tokens(v))})
OLD = ("old spellings still read: dashes for underscores (--max-epochs), TASK=SHARE,... for "
       "a mapping, `none` for null, 500M / 2B token counts, --allow-infeasible alone")


def blend_commands() -> dict[str, Command]:
    return {"blend": Command("blend ratios: corpus token statistics and a blend spec", _blend)}


def _blend(prog: str, argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(f"usage: {USAGE}\n\nCompute the share of training tokens each source gets (a "
              "blend spec the trainer applies), or show the statistics it is computed from. "
              "`ualm blend [stats|fit] --help` lists the flags.")
        return 0 if argv else 2
    verb = argv[0] if argv[0] in ("compute", "stats", "fit") else "compute"
    rest = argv[1:] if argv[0] == verb else argv
    if verb == "stats":
        return plain_command("samples, hours and tokens per source x task x language",
                             _add_stats, _run_stats).run(f"{prog} stats", rest)
    return (_run_fit if verb == "fit" else _run_compute)(prog, rest)


def _compute_parser(prog: str) -> Any:
    from ualm.train.blend.weights import BlendOptions

    p = flags.parser(prog, "Writes a blend spec (YAML) for the trainer.", OLD)
    _add_inputs(p)
    p.add_argument("--out", required=True, metavar="FILE", help="blend spec to write")
    flags.add_config(p, BlendOptions)
    return p


def _add_stats(p: argparse.ArgumentParser) -> None:
    _add_inputs(p)
    p.add_argument("--json", action="store_true", help="one JSON object on stdout")


def _fit_parser(prog: str) -> Any:
    from ualm.train.blend.fit import FitOptions

    p = flags.parser(prog, "The mixture minimising predicted held-out loss, from proxy runs.",
                     OLD)
    _add_inputs(p)
    p.add_argument("--heldout", nargs="+", required=True, metavar="CORPUS",
                   help="held-out corpora the proxies are scored on")
    p.add_argument("--out", required=True, metavar="FILE", help="blend spec to write")
    p.add_argument("--workdir", metavar="DIR",
                   help="proxy runs, fit.json and fit.png (default: next to --out); a rerun "
                        "reuses finished proxies")
    flags.add_config(p, FitOptions)
    return p


def _add_inputs(p: Any) -> None:
    p.add_argument("corpora", nargs="+", metavar="CORPUS", help="corpus folders")
    p.add_argument("--tokenizer", default="bytes", metavar="bytes|FOLDER",
                   help="text tokenizer: `bytes` (offline UTF-8 bytes) or a local tokenizer or "
                        "model folder (the backbone's)")
    p.add_argument("--codec-id", metavar="ID", help="which token set, when a corpus holds several")
    p.add_argument("--seq_len", type=int, metavar="N",
                   help="the trainer's data.seq_len: a longer sample counts as the pieces the "
                        "trainer cuts it into, or 0 tokens when it cannot be cut to fit "
                        "(default: every sample whole)")


def _mapping(value: str) -> str:
    """`a=1,b=2` (the old spelling) as the YAML mapping `{a: 1, b: 2}`."""
    if value.lstrip().startswith("{") or "=" not in value:
        return value
    pairs = (part.partition("=") for part in value.split(",") if part.strip())
    return "{" + ", ".join(f"{k.strip()}: {v.strip()}" for k, _, v in pairs) + "}"


def parse_options(p: Any, cls: type, argv: list[str]) -> tuple[Any, Any]:
    """The arguments, and `cls` (BlendOptions or FitOptions) from the flags."""
    args, given, _ = flags.parse(p, argv, SPELLINGS)
    return args, build_section(cls, "blend", flags.pick(given, flags.field_names(cls)),
                               "blend options", "see `ualm blend --help`",
                               source="the command line")


def _tokens(text: str) -> int:
    """A token count, with an optional K/M/B/T suffix or in scientific notation."""
    scale = {"k": 10**3, "m": 10**6, "b": 10**9, "g": 10**9, "t": 10**12}
    text = text.strip().replace(",", "").replace("_", "")
    factor = scale.get(text[-1:].lower(), 1)
    try:
        number = float(text[:-1] if factor > 1 else text)
    except ValueError:
        number = -1.0
    if not number > 0 or math.isinf(number) or number * factor != round(number * factor):
        raise UsageError(f"{text!r} is not a positive whole number of tokens",
                         fix="write e.g. 500M, 2B or 1e9")
    return round(number * factor)


def _stats(args: argparse.Namespace) -> Any:
    from ualm.train.blend.stats import corpus_stats
    from ualm.train.sequence.text_tokenizer import load_text_tokenizer

    return corpus_stats(args.corpora, load_text_tokenizer(args.tokenizer), args.codec_id,
                        args.seq_len)


def _run_stats(args: argparse.Namespace) -> int:
    from ualm.train.blend.stats import format_stats

    stats = _stats(args)
    print(json.dumps(stats.to_dict(), sort_keys=True) if args.json else format_stats(stats))
    return 0


def _run_fit(prog: str, argv: list[str]) -> int:
    from pathlib import Path

    from ualm.train.blend.fit import FitOptions
    from ualm.train.stages.proxies import fit_blend

    args, options = parse_options(_fit_parser(prog), FitOptions, argv)
    out = Path(args.out)
    workdir = Path(args.workdir) if args.workdir else out.with_name(out.stem + "-fit")
    spec, report = fit_blend(args.corpora, args.heldout, _stats(args), options, workdir)
    spec.dump(out)
    for name, weight in report["mixture"].items():
        print(f"  {name:40s} {weight:.4f}")
    print("predicted held-out loss: " + ", ".join(
        f"{t} {v:.4f}" for t, v in report["predicted_loss"].items()))
    print(f"fit R^2: {report['fit_r2']}\nplot: {report['plot']}\nwrote {out}")
    return 0


def _run_compute(prog: str, argv: list[str]) -> int:
    from ualm.train.blend.weights import BlendOptions, compute_blend, format_blend

    args, options = parse_options(_compute_parser(prog), BlendOptions, argv)
    stats = _stats(args)
    spec = compute_blend(stats, options)
    spec.dump(args.out)
    print(format_blend(spec, stats))
    print(f"wrote {args.out}")
    return 0

