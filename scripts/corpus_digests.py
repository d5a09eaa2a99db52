"""The sha256 of every published file of a corpus built from the synthetic world, for checking
that a refactor leaves corpus bytes as they were.

Build with the old code and the new at the same folder (manifests record input paths), e.g.:

    git worktree add /tmp/old <commit before the change>
    PYTHONPATH=/tmp/old/src .venv/bin/python scripts/corpus_digests.py /tmp/digests local > old.json
    rm -rf /tmp/digests
    .venv/bin/python scripts/corpus_digests.py /tmp/digests dask > new.json
    cmp old.json new.json

The world has 12 clips with every kind of hostile input; the build tokenizes with the seeded
random codec, so token shards are compared too.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path


def main(out: Path, engine: str) -> dict[str, str]:
    from ualm.audio.synthetic import make_world
    from ualm.config import BuildConfig
    from ualm.pipelines.build import build_corpus

    world = make_world(out / "world", n_clips=12, seed=7)
    config = BuildConfig.from_dict({"shards": {"max_samples": 7},
                                    "work": {"unit_size": 5, "dedup_buckets": 3}})
    root = build_corpus([world.manifest], out / "corpus", config, engine=engine,
                        progress=False).corpus
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*"))
            if p.is_file() and "_work" not in p.relative_to(root).parts}


if __name__ == "__main__":  # Dask's workers import this file again
    print(json.dumps(main(Path(sys.argv[1]), sys.argv[2] if len(sys.argv) > 2 else "local"),
                     indent=1, sort_keys=True))
