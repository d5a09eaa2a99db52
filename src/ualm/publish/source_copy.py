"""Publishing a corpus that sits in a store (s3://, gs://, hf://): the plan hashes and sends
local files, so the corpus's published files and the completion records that vouch for them are
first copied into a temporary folder of this machine's own, removed afterwards. It needs as much
local disk as the corpus's published files."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ualm.manifests import names, remote
from ualm.manifests.layout import CorpusLayout


@contextmanager
def local_copy(corpus: str) -> Iterator[Path]:
    layout = CorpusLayout(corpus)
    layout.meta(fix="finish it with `ualm build` (rerun the same command) first")
    with remote.local_folder("publish-source") as folder:
        for path in layout.walk():
            rel = layout.relative(path)
            if rel.startswith(names.WORK + "/") and not rel.startswith(names.DONE + "/"):
                continue  # the work area is never published; only its records are checked
            target = folder / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            layout.fs.get_file(path, str(target))
        yield folder
