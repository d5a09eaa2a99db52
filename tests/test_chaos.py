"""Randomised kills (tests/chaos.py, tests/chaos_trials.py), a few of each so CI stays fast: Dask
workers killed at random moments during one build, the whole `ualm build` job SIGKILLed at
random moments and resumed, `ualm synth` killed with teacher calls in flight and `ualm publish`
with uploads in flight. Each ends with the bytes of a clean run and every input (or trace, or
file) counted once. benchmarks/bench_chaos.py runs the full counts, Beam included. The seed is
printed (pytest -s); UALM_CHAOS_SEED=N replays one."""

from __future__ import annotations

from pathlib import Path

import pytest

from ualm.audio.synthetic import SyntheticWorld

from .chaos import chaos_seed
from .chaos_trials import BuildInputs, job_kills, publish_kills, synth_kills, worker_kills
from .conftest import SMALL


@pytest.fixture
def build(world: SyntheticWorld, local_corpus: Path, tmp_path: Path) -> BuildInputs:
    return BuildInputs.of(world.manifest, SMALL, local_corpus, tmp_path)


def test_random_worker_kills_during_one_build(build: BuildInputs, tmp_path: Path) -> None:
    worker_kills(build, tmp_path / "corpus", chaos_seed("dask worker kills"), kills=3)


def test_random_job_kills_then_resume(build: BuildInputs, tmp_path: Path) -> None:
    result = job_kills(build, tmp_path / "corpus", chaos_seed("build job kills"), 2,
                       "--engine", "local")
    assert len(result.kills) == 2 and result.checked >= 2  # the timing run and the last


def test_synth_killed_with_teacher_calls_in_flight(publish_corpus: Path, tmp_path: Path) -> None:
    result = synth_kills(publish_corpus, tmp_path, chaos_seed("synth kills"), kills=1)
    assert len(result.kills) == 1 and result.checked >= 2


def test_publish_killed_with_uploads_in_flight(publish_corpus: Path, tmp_path: Path) -> None:
    result = publish_kills(publish_corpus, tmp_path, chaos_seed("publish kills"), kills=1)
    assert len(result.kills) == 1 and result.checked >= 2
