"""The sha256 of every published file of a corpus built from the synthetic world, for checking
that a refactor leaves corpus bytes as they were.

Build with the old code and the new at the same folder (manifests record input paths), e.g.:

    git worktree add /tmp/old <commit before the change>
    PYTHONPATH=/tmp/old/src .venv/bin/python scripts/corpus_digests.py /tmp/digests local > old.json
    rm -rf /tmp/digests
    .venv/bin/python scripts/corpus_digests.py /tmp/digests dask > new.json
    cmp old.json new.json

The world has 12 clips (`--clips`) with every kind of hostile input; the build tokenizes with
the seeded random codec, so token shards are compared too. `--clips 300 --default-config` is a
corpus of benchmark size with the default config.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path


def main(out: Path, engine: str, clips: int = 12, default_config: bool = False) -> dict[str, str]:
    from ualm.audio.synthetic import make_world
    from ualm.config import BuildConfig
    from ualm.pipelines.build import build_corpus

    world = make_world(out / "world", n_clips=clips, seed=7)
    config = BuildConfig() if default_config else BuildConfig.from_dict(
        {"shards": {"max_samples": 7}, "work": {"unit_size": 5, "dedup_buckets": 3}})
    root = build_corpus([world.manifest], out / "corpus", config, engine=engine,
                        progress=False).corpus
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*"))
            if p.is_file() and "_work" not in p.relative_to(root).parts}


if __name__ == "__main__":  # Dask's workers import this file again
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("engine", nargs="?", default="local", choices=["local", "dask", "beam"])
    parser.add_argument("--clips", type=int, default=12, help="good clips in the world")
    parser.add_argument("--default-config", action="store_true",
                        help="the default build config (units of 64, tokens on) instead of "
                             "small units and shards that exercise every boundary")
    args = parser.parse_args()
    print(json.dumps(main(args.out, args.engine, args.clips, args.default_config),
                     indent=1, sort_keys=True))
