"""`ualm export ualm CORPUS OUT [--blend FILE]`: parse and call `ualm.export.run`."""

from __future__ import annotations

import argparse
import sys

from ualm.flags import Command, UsageError

FORMATS = ("ualm",)


def export_commands() -> dict[str, Command]:
    return {"export": Command("a corpus in another trainer's layout (ualm: UALM's own)",
                              _export)}


def _parser(prog: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=(
        "Writes OUT as the data directory UALM's scripts/train.py reads (--data-config-path "
        "OUT --stats-dir OUT/stats): per-dataset manifests, one LMDB, length statistics and "
        "plain tars of the audio; the blend applied by listing samples as often as it draws "
        "them; export_report.json counts what UALM would drop."))
    p.add_argument("format", choices=FORMATS)
    p.add_argument("corpus", metavar="CORPUS", help="a corpus folder or URL (s3://...)")
    p.add_argument("out", metavar="OUT", help="a new folder or URL (s3://...)")
    p.add_argument("--blend", metavar="FILE", help="a blend spec from `ualm blend`")
    p.add_argument("--trainer-path", metavar="PATH",
                   help="where the trainer finds OUT, written into the files: an absolute path, "
                        "or one relative to the trainer's working directory (default: OUT's "
                        "absolute path; needed when OUT is a URL)")
    p.add_argument("--batch-size", type=int, default=16000,
                   help="UALM's batch size: longer samples are left out (UALM drops them)")
    p.add_argument("--seed", type=int, default=0, help="which samples a fraction of a pass takes")
    p.add_argument("--tokenizer", metavar="FOLDER",
                   help="the backbone's tokenizer folder (local), for exact text token counts in "
                        "the length statistics (default: estimated, UTF-8 bytes / 4)")
    return p


def _export(prog: str, argv: list[str]) -> int:
    from ualm.export.run import export_ualm

    if argv and argv[0] not in FORMATS and not argv[0].startswith("-"):
        raise UsageError(f"unknown export format {argv[0]!r}", fix=f"one of: {', '.join(FORMATS)}")
    args = _parser(prog).parse_args(argv)
    report = export_ualm(args.corpus, args.out, args.blend, args.trainer_path, args.batch_size,
                         args.seed, args.tokenizer)
    for line in report["warnings"]:
        print(f"warning: {line}", file=sys.stderr)
    for name, row in report["datasets"].items():
        share = (f"  blend {row['blend_weight']:.4f} -> {row['blend_share']:.4f}"
                 if row.get("blend_share") is not None else "")
        print(f"  {name:36s} {row['ualm_task']:22s} {row['samples']:>8,} samples "
              f"{row['listed']:>8,} listed{share}")
    print(f"wrote {report['out']} ({report['samples_listed']:,} samples, "
          f"{report['audio_files']:,} audio files; report: export_report.json)")
    return 0
