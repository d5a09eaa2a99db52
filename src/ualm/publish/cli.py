"""`ualm publish CORPUS --to URL`: argument parsing only; the work is in `ualm.publish`."""

from __future__ import annotations

import argparse

from ualm.flags import Command, plain_command


def publish_commands() -> dict[str, Command]:
    help = ("push a corpus to the Hugging Face Hub, an object store or a folder (resumable, "
            "nothing sent twice)")
    return {"publish": plain_command(help, _add, _run_publish)}


def _add(p: argparse.ArgumentParser) -> None:
    p.add_argument("corpus", metavar="DIR", help="a complete corpus folder")
    p.add_argument("--to", required=True, metavar="URL",
                   help="hf://datasets/ORG/NAME[@BRANCH], s3://BUCKET/PREFIX, gs://..., or a "
                        "local folder")
    p.add_argument("--revision", "--branch", dest="revision", metavar="BRANCH",
                   help="Hub branch to commit to (created from main if missing; default main)")
    p.add_argument("--private", action="store_true",
                   help="create the Hub repo private (an existing repo keeps its visibility)")
    p.add_argument("--blend", metavar="YAML",
                   help="a blend spec to publish with the corpus as blend.yaml (its entries for "
                        "this corpus are rewritten to the published URL)")
    p.add_argument("--batch-files", type=int, default=200, metavar="N",
                   help="files per commit (Hub) or per index update (stores); default 200")
    p.add_argument("--quiet", action="store_true", help="only the final line")


def _run_publish(args: argparse.Namespace) -> int:
    from ualm.publish import publish

    result = publish(args.corpus, args.to, revision=args.revision, private=args.private,
                     blend=args.blend, batch_files=args.batch_files,
                     progress=None if args.quiet else print)
    print(f"published {result.url}: {result.files} files, {result.sent} sent "
          f"({result.sent_bytes:,} bytes in {result.batches} batches), {result.skipped} already "
          "there")
    if result.extra:
        print(f"note: {len(result.extra)} files at the destination are not in the corpus (left "
              f"as they are), e.g. {result.extra[0]}")
    return 0
