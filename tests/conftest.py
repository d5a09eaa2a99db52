"""Shared fixtures: a small synthetic world (good clips plus every kind of hostile input) and
corpora built from it once per session. Nothing touches the network."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
if "UALM_CACHE" not in os.environ:  # codecs and tokens cached per test session, never in ~
    import atexit
    import shutil
    import tempfile

    os.environ["UALM_CACHE"] = tempfile.mkdtemp(prefix="ualm-test-cache-")
    atexit.register(shutil.rmtree, os.environ["UALM_CACHE"], True)

from collections.abc import Iterator
from pathlib import Path

import pytest

from ualm.audio.synthetic import SyntheticWorld, make_world
from ualm.config import BuildConfig

pytest_plugins = ["tests.publish_corpus"]  # the publish tests' corpus, built once per session

# Small shards and units so a dozen clips exercise several units, buckets and shards.
SMALL = BuildConfig.from_dict({
    "shards": {"max_samples": 7},
    "work": {"unit_size": 5, "dedup_buckets": 3},
    "tokenize": {"enabled": False},
})


@pytest.fixture(scope="session")
def codec_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A codec cache of the session's own (UALM_CACHE while it lasts): the seeded random codecs
    are built into it once, and a test can look at what was cached."""
    root = tmp_path_factory.mktemp("ualm-cache")
    before = os.environ.get("UALM_CACHE")
    os.environ["UALM_CACHE"] = str(root)
    yield root
    if before is None:
        os.environ.pop("UALM_CACHE", None)
    else:
        os.environ["UALM_CACHE"] = before


@pytest.fixture(scope="session")
def world(tmp_path_factory: pytest.TempPathFactory) -> SyntheticWorld:
    return make_world(tmp_path_factory.mktemp("world"), n_clips=12, seed=7)


@pytest.fixture(scope="session")
def local_corpus(world: SyntheticWorld, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from ualm.pipelines.build import build_corpus

    out = tmp_path_factory.mktemp("local") / "corpus"
    build_corpus([world.manifest], out, SMALL, engine="local", progress=False)
    return out


@pytest.fixture(scope="session")
def event_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The training-data tests' corpus: 27 audio clips of three events (generation and
    understanding) and 6 text rows, in several small shards. Read only."""
    from ualm.audio.events import make_event_world
    from ualm.pipelines.build import build_corpus

    root = tmp_path_factory.mktemp("events")
    world = make_event_world(root / "world", per_class=1, heldout_per_class=0, seconds=1.0,
                             events=("a low tone", "white noise", "a click train"), text_rows=6,
                             seed=5)
    config = BuildConfig.from_dict({"shards": {"max_samples": 4}, "tokenize": {"codec": "random"}})
    return build_corpus([world.manifests["train"]], root / "corpus", config, engine="local",
                        progress=False).corpus


def tree_bytes(root: Path) -> dict[str, bytes]:
    """Every published file of a corpus (not the internal _work folder), by relative path."""
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and "_work" not in p.relative_to(root).parts
    }


def skip_without_chromaprint() -> None:
    """Skips the calling test module when libchromaprint cannot load, except on CI, which
    installs it (.ci/run): there its absence must fail, not skip."""
    try:
        import chromaprint  # noqa: F401  (loads libchromaprint)
    except (ImportError, OSError) as exc:
        if not os.environ.get("CI"):
            pytest.skip(f"libchromaprint is not available: {exc}", allow_module_level=True)
