"""Randomised kills (tests/chaos.py, tests/chaos_trials.py), a few of each so CI stays fast: Dask
workers killed at random moments during one build, the whole `ualm build` job SIGKILLed at
random moments and resumed, a Beam worker process killed (the build stops, a rerun resumes), `ualm synth` killed with teacher calls in flight and `ualm publish`
with uploads in flight. Each ends with the bytes of a clean run and every input (or trace, or
file) counted once. benchmarks/bench_chaos.py runs the full counts, Beam included. The seed is
printed (pytest -s); UALM_CHAOS_SEED=N replays one."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from ualm.audio.synthetic import SyntheticWorld
from ualm.manifests.atomic import temporary_sibling
from ualm.pipelines.build import build_corpus
from ualm.synth.config import SynthConfig
from ualm.synth.run import synth_corpus

from .chaos import chaos_seed
from .chaos_trials import (
    BuildInputs,
    beam_worker_kills,
    job_kills,
    publish_kills,
    synth_kills,
    worker_kills,
)
from .conftest import SMALL, tree_bytes
from .synth_helpers import copy_corpus, published


@pytest.fixture
def build(world: SyntheticWorld, local_corpus: Path, tmp_path: Path) -> BuildInputs:
    return BuildInputs.of(world.manifest, SMALL, local_corpus, tmp_path)


def test_random_worker_kills_during_one_build(build: BuildInputs, tmp_path: Path) -> None:
    worker_kills(build, tmp_path / "corpus", chaos_seed("dask worker kills"), kills=3)


def test_random_job_kills_then_resume(build: BuildInputs, tmp_path: Path) -> None:
    result = job_kills(build, tmp_path / "corpus", chaos_seed("build job kills"), 2,
                       "--engine", "local")
    assert len(result.kills) == 2 and result.checked >= 2  # the timing run and the last


def test_a_killed_beam_worker_stops_the_build_and_a_rerun_resumes(build: BuildInputs,
                                                                tmp_path: Path) -> None:
    result = beam_worker_kills(build, tmp_path / "corpus", chaos_seed("beam worker kills"), 1)
    assert len(result.kills) == 1 and result.checked >= 1


def test_synth_killed_with_teacher_calls_in_flight(publish_corpus: Path, tmp_path: Path) -> None:
    result = synth_kills(publish_corpus, tmp_path, chaos_seed("synth kills"), kills=1)
    assert len(result.kills) == 1 and result.checked >= 2


def test_publish_killed_with_uploads_in_flight(publish_corpus: Path, tmp_path: Path) -> None:
    result = publish_kills(publish_corpus, tmp_path, chaos_seed("publish kills"), kills=1)
    assert len(result.kills) == 1 and result.checked >= 2


def test_a_rerun_removes_what_a_killed_writer_left(world: SyntheticWorld, local_corpus: Path,
                                                    tmp_path: Path) -> None:
    """A job SIGKILLed while writing a shard leaves its temporary sibling beside it (found by
    bench_chaos.py: a Dask build killed 5 times kept `audio/.audio-000002.tar.<pid>.<hex>.tmp`
    after the resume). The resumed run's commit removes such leftovers, and only those."""
    out = tmp_path / "corpus"
    shutil.copytree(local_corpus, out)
    (out / "corpus.json").unlink()  # killed before its commit
    left = [temporary_sibling(out / "audio" / "audio-000001.tar"),
            temporary_sibling(out / "manifests" / "samples" / "part-000000.parquet")]
    mine = out / "audio" / ".notes.tmp"  # a hidden file that is no temporary sibling: kept
    for path in (*left, mine):
        path.write_bytes(b"partial")
    build_corpus([world.manifest], out, SMALL, engine="local", progress=False)
    mine.unlink()
    assert tree_bytes(out) == tree_bytes(local_corpus)


def test_a_synth_rerun_removes_what_a_killed_writer_left(publish_corpus: Path,
                                                         tmp_path: Path) -> None:
    root = copy_corpus(publish_corpus, tmp_path / "corpus")
    before = published(root)
    left = temporary_sibling(root / "traces" / "traces-000000.tar")
    left.write_bytes(b"partial")
    synth_corpus(root, SynthConfig(kinds=("enrichment", "pairs")), progress=False)
    assert published(root) == before
