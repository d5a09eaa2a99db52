"""A small tokenized corpus for the publish tests (built once per session), with a trace shard
and its manifest beside the build's files, as the synthesis stage leaves them."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pyarrow as pa
import pytest

from ualm.manifests.layout import atomic_write_table
from ualm.manifests.shards import TarShardWriter

LEAVE_OUT = ("README.md", "publish.json")
"""Files the publisher writes itself (the card is rendered for the destination)."""


@pytest.fixture(scope="session")
def publish_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from ualm.audio.events import make_event_world
    from ualm.config import BuildConfig
    from ualm.pipelines.build import build_corpus

    root = tmp_path_factory.mktemp("publish")
    world = make_event_world(root / "world", per_class=1, heldout_per_class=0, seconds=1.0,
                             events=("a low tone", "white noise"), text_rows=2, seed=5)
    config = BuildConfig.from_dict({"shards": {"max_samples": 3},
                                    "work": {"unit_size": 4, "dedup_buckets": 2}})
    corpus = build_corpus([world.manifests["train"]], root / "corpus", config, engine="local",
                          progress=False).corpus
    with TarShardWriter(corpus / "traces" / "traces-000000.tar") as writer:
        writer.write({"__key__": "t0", "json": b'{"trace": "plan, audio, critique"}'})
    atomic_write_table(corpus / "manifests" / "traces" / "part-000000.parquet",
                       pa.table({"key": ["t0"], "teacher": ["tiny"]}))
    return corpus


def local_files(corpus: Path) -> dict[str, bytes]:
    """What a publish must carry byte for byte: every file but _work/ and the card."""
    return {p.relative_to(corpus).as_posix(): p.read_bytes() for p in sorted(corpus.rglob("*"))
            if p.is_file() and p.relative_to(corpus).parts[0] != "_work"
            and p.name not in LEAVE_OUT}


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
