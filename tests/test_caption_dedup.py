"""Near-duplicate captions across different clips: grouped by MinHash LSH in a keyed reduce,
annotated on every sample, and capped per group when asked."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from ualm.audio.synthetic import synth_clip, write_audio
from ualm.config import BuildConfig
from ualm.filters.caption_minhash import caption_signature, jaccard_distance
from ualm.manifests.inspect import summarize
from ualm.pipelines.build import build_corpus

from .conftest import tree_bytes

CAPTIONS = [
    "a dog barks loudly in the yard at night",
    "a dog barks loudly in the yard at night, twice",
    "A dog barks loudly in the yard at night!",
    "rain falls on a metal roof during a storm",
    "a car engine starts and drives away slowly",
]


@pytest.fixture(scope="module")
def manifest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("captions")
    rows = []
    for i, caption in enumerate(CAPTIONS):
        path = write_audio(folder / f"c{i}.wav", synth_clip(2.0, 24000, seed=300 + i), 24000,
                           "wav16")
        rows.append({"id": f"c{i}", "path": path.name, "caption": caption})
    (folder / "m.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder / "m.jsonl"


def config(**caption_dedup: object) -> BuildConfig:
    return BuildConfig.from_dict({"caption_dedup": {"enabled": True, **caption_dedup},
                                  "work": {"unit_size": 2, "dedup_buckets": 2},
                                  "tokenize": {"enabled": False}})


def test_signatures_see_near_duplicates() -> None:
    a, b, c = (caption_signature([t]) for t in (CAPTIONS[0], CAPTIONS[1], CAPTIONS[3]))
    assert jaccard_distance(a, b) < 0.3 < jaccard_distance(a, c)
    assert caption_signature(["", "  "]) is None


def test_groups_are_annotated(manifest: Path, tmp_path: Path) -> None:
    out = tmp_path / "annotated"
    build_corpus([manifest], out, config(threshold=0.7), engine="local", progress=False)
    samples = {r["input_id"]: r for r in pq.read_table(out / "manifests" / "samples").to_pylist()}
    assert len(samples) == 5
    for name in ("c0", "c1", "c2"):
        assert (samples[name]["caption_group"], samples[name]["caption_group_size"]) == ("c0", 3)
    assert samples["c3"]["caption_group"] is None and samples["c4"]["caption_group"] is None


def test_groups_are_capped_and_engines_agree(manifest: Path, tmp_path: Path) -> None:
    out = tmp_path / "capped"
    build_corpus([manifest], out, config(threshold=0.7, max_clips_per_group=1), engine="local",
                 progress=False)
    summary = summarize(out)
    assert (summary["kept"], summary["duplicates"]) == (3, 2)
    assert summary["duplicate_kinds"] == {"dedup/near_duplicate_caption": 2}
    duplicates = pq.read_table(out / "manifests" / "duplicates").to_pylist()
    assert sorted((d["input_id"], d["duplicate_of"]) for d in duplicates) == [("c1", "c0"),
                                                                              ("c2", "c0")]
    build_corpus([manifest], tmp_path / "dask", config(threshold=0.7, max_clips_per_group=1),
                 engine="dask", workers=2, progress=False)
    assert tree_bytes(tmp_path / "dask") == tree_bytes(out)
