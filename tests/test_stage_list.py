"""Stages as data: the build is its stage list, a new stage is one declaration plus one entry in
a list, the loop checks every stage before any runs, and a finished stage is skipped on a rerun
through its completion records."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ualm.audio.synthetic import SyntheticWorld
from ualm.config import BuildConfig
from ualm.engines import make_engine
from ualm.errors import UalmError
from ualm.manifests.layout import CorpusLayout, write_done
from ualm.pipelines.build_stages import BUILD_STAGES, describe
from ualm.pipelines.stage_list import Context, Stage, run_stages

from .conftest import SMALL


def test_the_build_is_its_stage_list() -> None:
    assert [(s["name"], s["kind"]) for s in describe()] == [
        ("ids", "reduce"), ("ingest", "map"), ("dedup", "reduce"), ("near-dedup", "reduce"),
        ("caption-dedup", "reduce"), ("decontam-eval", "map"), ("decontam", "map"),
        ("shard", "map"), ("commit", "commit"), ("tokens", "map")]
    assert all(s.reads and s.writes for s in BUILD_STAGES)
    enabled = [s.name for s in BUILD_STAGES if s.enabled(SMALL)]
    # SMALL: no near, caption, decontamination or tokens
    assert enabled == ["ids", "ingest", "dedup", "shard", "commit"]
    assert "tokens" not in [s.name for s in BUILD_STAGES if s.enabled(BuildConfig())]  # no codec
    with_codec = BuildConfig.from_dict({"tokenize": {"codec": "random:encodec"}})
    assert "tokens" in [s.name for s in BUILD_STAGES if s.enabled(with_codec)]


def _count_members(task: tuple[str, int]) -> dict[str, int]:
    """A new stage's unit: counts one shard's members into its own file, then completes."""
    corpus, shard = task
    layout = CorpusLayout(corpus)
    import tarfile

    with layout.open(layout.audio_shard(shard)) as handle, tarfile.open(fileobj=handle) as tar:
        members = len(tar.getnames())
    out = layout.path(f"_work/member-counts/{shard}.json")
    layout.write_json(out, {"members": members})
    write_done(layout, "member-count", shard, [out], {"members": members})
    return {"members": members}


def _shards(ctx: Context) -> list[tuple[str, int]]:
    return [(ctx.layout.location, shard) for shard in ctx.layout.shards("audio")]


MEMBER_COUNT = Stage("member-count", "map", reads=("audio shards",), writes=("member counts",),
                     tasks=_shards, unit=_count_members, index=lambda t: t[1])


def test_a_new_stage_is_one_declaration_and_runs_then_skips(local_corpus: Path,
                                                            tmp_path: Path) -> None:
    import shutil

    corpus = tmp_path / "corpus"
    shutil.copytree(local_corpus, corpus)
    ctx = Context(CorpusLayout(corpus), SMALL)
    engine = make_engine("local", report=False)
    shards = len(_shards(ctx))
    assert shards >= 2
    assert run_stages([MEMBER_COUNT], engine, ctx, progress=False) == 0
    counts = [json.loads((corpus / "_work" / "member-counts" / f"{i}.json").read_text())
              for i in range(shards)]
    assert all(c["members"] > 0 and c["members"] % 2 == 0 for c in counts)  # flac + json each
    (corpus / "_work" / "member-counts" / "1.json").unlink()  # one unit's output lost
    assert run_stages([MEMBER_COUNT], engine, ctx, progress=False) == shards - 1


def test_every_check_runs_before_any_stage(local_corpus: Path, tmp_path: Path) -> None:
    import shutil

    corpus = tmp_path / "corpus"
    shutil.copytree(local_corpus, corpus)

    def refuse(ctx: Context) -> None:
        raise UalmError("the second stage cannot run", fix="fix it before any work starts")

    late = Stage("late", "map", reads=("nothing",), writes=("nothing",), tasks=lambda c: [],
                 unit=print, check=refuse)
    with pytest.raises(UalmError, match="cannot run"):
        run_stages([MEMBER_COUNT, late], make_engine("local", report=False),
                   Context(CorpusLayout(corpus), SMALL), progress=False)
    assert not (corpus / "_work" / "member-counts").exists()


def test_a_build_fails_on_a_bad_codec_before_any_audio_work(world: SyntheticWorld,
                                                            tmp_path: Path) -> None:
    from ualm.pipelines.build import build_corpus

    config = BuildConfig.from_dict({"tokenize": {"codec": str(tmp_path / "missing.th")}})
    with pytest.raises(UalmError):
        build_corpus([world.manifest], tmp_path / "out", config, engine="local", progress=False)
    assert not list((tmp_path / "out" / "_work").glob("done/*.json"))


def test_stage_declarations_are_checked() -> None:
    with pytest.raises(ValueError, match="kind 'sideways'"):
        Stage("x", "sideways", reads=(), writes=(), tasks=lambda c: [], unit=print)
    with pytest.raises(ValueError, match="a reduce needs reduce and keys"):
        Stage("x", "reduce", reads=(), writes=(), tasks=lambda c: [], unit=print)
