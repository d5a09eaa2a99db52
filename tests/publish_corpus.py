"""A small tokenized corpus for the publish tests (built once per session), with the trace and
pair shards and manifests that `ualm synth` writes into it."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from tests.hub_server import HubServer

LEAVE_OUT = ("README.md", "publish.json")
"""Files the publisher writes itself (the card is rendered for the destination)."""


@pytest.fixture(scope="session")
def publish_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from ualm.audio.events import make_event_world
    from ualm.config import BuildConfig
    from ualm.pipelines.build import build_corpus
    from ualm.synth.config import SynthConfig
    from ualm.synth.run import synth_corpus

    root = tmp_path_factory.mktemp("publish")
    world = make_event_world(root / "world", per_class=1, heldout_per_class=0, seconds=1.0,
                             events=("a low tone", "white noise"), text_rows=2, seed=5)
    config = BuildConfig.from_dict({"shards": {"max_samples": 3},
                                    "work": {"unit_size": 4, "dedup_buckets": 2},
                                    "tokenize": {"codec": "random"}})
    corpus = build_corpus([world.manifests["train"]], root / "corpus", config, engine="local",
                          progress=False).corpus
    synth_corpus(corpus, SynthConfig(kinds=("enrichment", "pairs")), progress=False)
    return corpus


def local_files(corpus: Path) -> dict[str, bytes]:
    """What a publish must carry byte for byte: every file but _work/ and the card."""
    return {p.relative_to(corpus).as_posix(): p.read_bytes() for p in sorted(corpus.rglob("*"))
            if p.is_file() and p.relative_to(corpus).parts[0] != "_work"
            and p.name not in LEAVE_OUT}


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def check_arrived(hub: HubServer, repo: str, corpus: Path, rev: str = "main") -> dict:
    """What the branch holds, checked: every local file byte for byte, no _work/, and a
    publish record whose hashes match what arrived."""
    arrived = hub.files(repo, rev)
    expected = local_files(corpus)
    for path, data in expected.items():
        assert arrived.get(path) == data, path
    assert not any(p.startswith("_work/") for p in arrived)
    record = json.loads(arrived["publish.json"])
    assert set(record["files"]) == set(arrived) - {".gitattributes", "publish.json"}
    for path, meta in record["files"].items():
        assert sha256(arrived[path]) == meta["sha256"], path
    return arrived
