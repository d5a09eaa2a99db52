"""`ualm report CORPUS_OR_RUN... -o report.html`: argument parsing only."""

from __future__ import annotations

import argparse

from ualm.flags import Command, plain_command


def report_commands() -> dict[str, Command]:
    help = "one self-contained HTML page about corpora and runs"
    return {"report": plain_command(help, _add, _run_report)}


def _add(p: argparse.ArgumentParser) -> None:
    p.add_argument("paths", nargs="+", metavar="CORPUS_OR_RUN",
                   help="corpus folders (corpus.json) and training run folders (logs/metrics.csv)")
    p.add_argument("-o", "--out", default="report.html", metavar="HTML")
    p.add_argument("--samples", type=int, default=3, help="audio players per corpus (default 3)")
    p.add_argument("--blend", metavar="YAML", help="the blend spec a run trained with (default: "
                   "blend.yaml in the run folder)")
    p.add_argument("--device", default=None, help="where the codec decodes (default: cpu/cuda)")


def _run_report(args: argparse.Namespace) -> int:
    from ualm.report.build import write_report

    out = write_report(args.paths, args.out, samples=args.samples, blend=args.blend,
                       device=args.device)
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB)")
    return 0
