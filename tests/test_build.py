"""End-to-end builds on the synthetic world: accounting, dedup, shard contents, readers."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import soundfile as sf

from ualm.audio.synthetic import SyntheticWorld
from ualm.manifests.inspect import summarize
from ualm.pipelines.build import build_corpus

from .conftest import SMALL, tree_bytes


def _outcomes(corpus: Path) -> dict[str, str]:
    samples = pq.read_table(corpus / "manifests" / "samples").to_pylist()
    rejects = pq.read_table(corpus / "manifests" / "rejects").to_pylist()
    duplicates = pq.read_table(corpus / "manifests" / "duplicates").to_pylist()
    outcome = {s["input_id"]: "kept" for s in samples}
    outcome.update({r["input_id"]: r["reason"] for r in rejects if r["level"] == "input"})
    outcome.update({d["input_id"]: "duplicate" for d in duplicates})
    return outcome


def test_every_input_ends_with_its_expected_outcome(world: SyntheticWorld, local_corpus: Path) -> None:
    assert _outcomes(local_corpus) == world.expected
    summary = summarize(local_corpus)
    assert summary["accounted"]
    assert summary["inputs"] == len(world.expected)
    assert summary["inputs"] == summary["kept"] + summary["rejected"] + summary["duplicates"]
    corpus = json.loads((local_corpus / "corpus.json").read_text())
    assert corpus["counts"]["inputs"] == summary["inputs"]
    assert corpus["counts"]["kept"] == sum(v == "kept" for v in world.expected.values())


@pytest.mark.parametrize("manifest", ["rejects", "duplicates", "samples"])
def test_inspect_notices_a_lost_row(local_corpus: Path, tmp_path: Path, manifest: str) -> None:
    """`accounted` is computed, not asserted: a corpus that lost one input's row (one input's
    reject, duplicate or samples) no longer adds up, and `ualm inspect` says so."""
    import shutil

    import pyarrow as pa

    from ualm.manifests.inspect import format_summary

    copy = tmp_path / "corpus"
    shutil.copytree(local_corpus, copy)
    parts = sorted((copy / "manifests" / manifest).glob("*.parquet"))
    rows = [r for part in parts for r in pq.read_table(part).to_pylist()]
    lost = next(r["input_id"] for r in rows if r.get("level", "input") == "input")
    for part in parts:  # every row of that input at input level, in whichever part it is
        rest = [r for r in pq.read_table(part).to_pylist()
                if r["input_id"] != lost or r.get("level", "input") != "input"]
        pq.write_table(pa.Table.from_pylist(rest, schema=pq.read_schema(part)), part)
    summary = summarize(copy)
    assert summary["inputs"] == summarize(local_corpus)["inputs"]
    assert not summary["accounted"]
    assert summary["kept"] + summary["rejected"] + summary["duplicates"] == summary["inputs"] - 1
    assert "DOES NOT ADD UP" in format_summary(summary)
    assert "DOES NOT ADD UP" not in format_summary(summarize(local_corpus))


def test_duplicate_listing_merges_captions_into_the_kept_clip(world: SyntheticWorld,
                                                              local_corpus: Path) -> None:
    duplicates = pq.read_table(local_corpus / "manifests" / "duplicates").to_pylist()
    assert duplicates, "the world lists duplicates"
    samples = pq.read_table(local_corpus / "manifests" / "samples").to_pylist()
    by_input = {}
    for s in samples:
        by_input.setdefault(s["input_id"], s)
    for dup in duplicates:
        keeper = by_input[dup["duplicate_of"]]
        assert dup["duplicate_of_index"] < dup["input_index"]
        for caption in dup["captions"]:
            assert caption in keeper["captions"]
        assert len(keeper["captions"]) >= 2


def test_windows_cover_long_inputs_and_shards_hold_flac_and_json(local_corpus: Path) -> None:
    samples = pq.read_table(local_corpus / "manifests" / "samples").to_pylist()
    audio = [s for s in samples if s["modality"] == "audio"]
    assert max(s["segment"] for s in audio) >= 1, "some clip is longer than one window"
    assert all(s["seconds"] <= 10.0 + 1e-9 for s in audio)
    assert all(s["sample_id"] == f"{s['input_id']}::seg_{s['segment']}" for s in audio)
    shards = sorted((local_corpus / "audio").glob("*.tar"))
    assert len(shards) == summarize(local_corpus)["shards"] >= 2
    seen = 0
    for shard in shards:
        with tarfile.open(shard) as tar:
            members = tar.getmembers()
            assert all(m.mtime == 0 and m.uid == 0 and m.mode == 0o644 for m in members)
            names = [m.name for m in members]
            assert len(names) <= 2 * SMALL.shards.max_samples
            for flac_name in names[::2]:
                key = flac_name.removesuffix(".flac")
                meta = json.loads(tar.extractfile(f"{key}.json").read())
                audio_data, rate = sf.read(io.BytesIO(tar.extractfile(flac_name).read()))
                assert rate == 24000 and meta["sample_rate"] == 24000
                assert abs(len(audio_data) / rate - meta["seconds"]) < 1e-6
                assert np.sqrt(np.mean(audio_data**2)) > 1e-3
                seen += 1
    assert seen == len(audio)


def test_rejects_say_where_and_why(local_corpus: Path) -> None:
    rejects = pq.read_table(local_corpus / "manifests" / "rejects").to_pylist()
    inputs = [r for r in rejects if r["level"] == "input"]
    assert all(r["stage"] == r["reason"].split("/")[0] and r["detail"] for r in inputs)
    windows = [r for r in rejects if r["level"] == "segment"]
    assert all(r["key"] and r["seconds"] is not None for r in windows)


def test_webdataset_reads_the_shards(local_corpus: Path) -> None:
    import webdataset as wds

    urls = [str(p) for p in sorted((local_corpus / "audio").glob("*.tar"))]
    keys = []
    for sample in wds.WebDataset(urls, shardshuffle=False):
        meta = json.loads(sample["json"])
        assert meta["key"] == sample["__key__"]
        assert sample["flac"][:4] == b"fLaC"
        keys.append(sample["__key__"])
    assert len(keys) == summarize(local_corpus)["audio_samples"]


def test_hugging_face_datasets_reads_the_shards(local_corpus: Path) -> None:
    from datasets import load_dataset

    files = [str(p) for p in sorted((local_corpus / "audio").glob("*.tar"))]
    ds = load_dataset("webdataset", data_files={"train": files}, split="train")
    assert len(ds) == summarize(local_corpus)["audio_samples"]
    row = ds[0]
    assert row["json"]["sample_rate"] == 24000
    decoded = row["flac"].get_all_samples()  # datasets decodes FLAC through torchcodec
    assert decoded.sample_rate == 24000
    assert abs(decoded.data.shape[-1] / 24000 - row["json"]["seconds"]) < 1e-3


def test_rerun_of_a_complete_corpus_does_nothing(world: SyntheticWorld, local_corpus: Path) -> None:
    before = tree_bytes(local_corpus)
    result = build_corpus([world.manifest], local_corpus, SMALL, engine="local", progress=False)
    assert result.skipped_units > 0
    assert tree_bytes(local_corpus) == before


def test_other_config_into_the_same_folder_is_refused(world: SyntheticWorld,
                                                      local_corpus: Path) -> None:
    from ualm.config import BuildConfig
    from ualm.errors import UalmError

    with pytest.raises(UalmError, match="other inputs or another config"):
        build_corpus([world.manifest], local_corpus, BuildConfig(), engine="local", progress=False)


def test_completion_records_hold_the_hashes_of_what_each_unit_wrote(local_corpus: Path) -> None:
    from ualm.manifests.layout import sha256_file

    records = sorted((local_corpus / "_work" / "done").glob("*.json"))
    stages = {r.name.split("-")[0] for r in records}
    assert stages == {"ids", "ingest", "dedup", "shard"}
    checked = 0
    for record in records:
        for rel, meta in json.loads(record.read_text())["files"].items():
            path = local_corpus / rel
            if path.exists():  # staged payloads are removed once the shards hold them
                assert sha256_file(path) == meta["sha256"], rel
                assert path.stat().st_size == meta["bytes"]
                checked += 1
            else:
                assert rel.endswith(".payload.parquet")
    assert checked >= len(list((local_corpus / "audio").glob("*.tar")))
