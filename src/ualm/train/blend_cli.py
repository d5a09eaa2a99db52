"""`ualm blend CORPUS... --out blend.yaml` and `ualm blend stats CORPUS...`.

argparse has no optional subcommands: `blend` takes verbs (`stats`), and a first word that is
no verb is the first corpus of the default verb, which computes a spec. (A corpus folder named
like a verb is written `./stats`.)
"""

from __future__ import annotations

import argparse
import json
import math
from typing import Any

DEFAULT_VERB = "compute"
USAGE = ("ualm blend CORPUS... --out FILE [options]\n"
         "       ualm blend stats CORPUS... [--json] [--tokenizer T] [--codec-id ID]\n"
         "       ualm blend fit CORPUS... --heldout CORPUS... --out FILE [--proxies K] "
         "[--steps S]")


class _AnyWord:
    """Choices that admit every word: argparse checks the first word against the choices before
    the action sees it, and here any word may begin a list of corpora."""

    def __contains__(self, word: object) -> bool:
        return True


class _VerbOrCorpus(argparse._SubParsersAction):
    """Subcommands where an unknown first word starts the default verb's arguments."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.choices = _AnyWord()

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        if values and values[0] not in self._name_parser_map:
            values = [DEFAULT_VERB, *values]
        super().__call__(parser, namespace, values, option_string)


def add_blend_commands(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "blend", usage=USAGE, help="blend ratios: corpus token statistics and a blend spec",
        description="Compute the share of training tokens each source gets (a blend spec the "
                    "trainer applies), or show the statistics it is computed from.")
    verbs = parser.add_subparsers(dest="blend_verb", action=_VerbOrCorpus, required=True,
                                  metavar="{stats,fit} | CORPUS")
    compute = verbs.add_parser(DEFAULT_VERB, prog="ualm blend", usage=USAGE.splitlines()[0],
                               description="Writes a blend spec (YAML) for the trainer.")
    _add_inputs(compute)
    compute.add_argument("--out", required=True, metavar="FILE", help="blend spec to write")
    compute.add_argument("--targets", metavar="TASK=SHARE,...",
                         help="share of tokens per task, summing to 1 (default: UALM's "
                              "understanding=0.277,generation=0.331,text=0.392)")
    compute.add_argument("--temperature", type=float, default=1.0, metavar="T",
                         help="within a task, weight ∝ tokens^(1/T); default 1 (by size)")
    compute.add_argument("--max-epochs", type=_epochs, default="4", metavar="N",
                         help="most times a source may repeat within the budget (default 4; "
                              "`none`: no cap)")
    compute.add_argument("--min-share", type=float, default=0.0, metavar="F",
                         help="least share of its task any source gets (default 0)")
    compute.add_argument("--budget", type=_tokens, metavar="TOKENS",
                         help="training tokens to plan for (1e9, 500M, 2B...); default: one "
                              "pass at the targets' proportions (the scarcest task seen once)")
    compute.add_argument("--allow-infeasible", action="store_true",
                         help="when the caps bind, write the closest feasible blend (and say "
                              "so in its notes) instead of failing")
    compute.set_defaults(run=_run_compute)
    stats = verbs.add_parser("stats", prog="ualm blend stats", usage=USAGE.splitlines()[1].strip(),
                             help="samples, hours and tokens per source x task x language")
    _add_inputs(stats)
    stats.add_argument("--json", action="store_true", help="one JSON object on stdout")
    stats.set_defaults(run=_run_stats)
    fit = verbs.add_parser("fit", prog="ualm blend fit",
                           help="the mixture minimising predicted held-out loss, from proxy runs")
    _add_inputs(fit)
    fit.add_argument("--heldout", nargs="+", required=True, metavar="CORPUS",
                     help="held-out corpora the proxies are scored on")
    fit.add_argument("--out", required=True, metavar="FILE", help="blend spec to write")
    fit.add_argument("--proxies", type=int, default=6, metavar="K", help="proxy runs (default 6)")
    fit.add_argument("--steps", type=int, default=50, metavar="S",
                     help="optimizer steps per proxy (default 50)")
    fit.add_argument("--config", default="tiny", metavar="PRESET|FILE",
                     help="trainer config of the proxies (default: the tiny preset)")
    fit.add_argument("--workdir", metavar="DIR",
                     help="proxy runs, fit.json and fit.png (default: next to --out); a rerun "
                          "reuses finished proxies")
    fit.add_argument("--task-weights", metavar="TASK=W,...",
                     help="weight of each task's loss in the objective (default: equal)")
    fit.add_argument("--budget", type=_tokens, metavar="TOKENS",
                     help="tokens the spec plans for (default: one pass over the sources)")
    fit.add_argument("--seed", type=int, default=0)
    fit.set_defaults(run=_run_fit)


def _add_inputs(p: argparse.ArgumentParser) -> None:
    p.add_argument("corpora", nargs="+", metavar="CORPUS", help="corpus folders")
    p.add_argument("--tokenizer", default="bytes", metavar="bytes|FOLDER",
                   help="text tokenizer: `bytes` (offline UTF-8 bytes) or a local tokenizer or "
                        "model folder (the backbone's)")
    p.add_argument("--codec-id", metavar="ID", help="which token set, when a corpus holds several")


def _epochs(text: str) -> float | None:
    if text.lower() == "none":
        return None
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number (or `none`)") from None


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
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive whole number of tokens")
    return round(number * factor)


def _stats(args: argparse.Namespace) -> Any:
    from ualm.train.blend.stats import corpus_stats
    from ualm.train.sequence.text_tokenizer import load_text_tokenizer

    return corpus_stats(args.corpora, load_text_tokenizer(args.tokenizer), args.codec_id)


def _run_stats(args: argparse.Namespace) -> int:
    from ualm.train.blend.stats import format_stats

    stats = _stats(args)
    print(json.dumps(stats.to_dict(), sort_keys=True) if args.json else format_stats(stats))
    return 0


def _run_fit(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ualm.train.blend.fit import FitOptions
    from ualm.train.stages.proxies import fit_blend

    weights = None
    if args.task_weights:
        from ualm.train.blend.weights import parse_targets

        weights = parse_targets(args.task_weights)
    options = FitOptions(proxies=args.proxies, steps=args.steps, config=args.config,
                         seed=args.seed, task_weights=weights, budget=args.budget)
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


def _run_compute(args: argparse.Namespace) -> int:
    from ualm.train.blend.weights import BlendOptions, compute_blend, format_blend, parse_targets

    targets = parse_targets(args.targets) if args.targets else None
    options = BlendOptions(**({"targets": targets} if targets else {}),
                           temperature=args.temperature, max_epochs=args.max_epochs,
                           min_share=args.min_share, budget=args.budget,
                           allow_infeasible=args.allow_infeasible)
    stats = _stats(args)
    spec = compute_blend(stats, options)
    spec.dump(args.out)
    print(format_blend(spec, stats))
    print(f"wrote {args.out}")
    return 0

