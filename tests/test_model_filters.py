"""Whisper and CLAP inside a real build, with tiny random models loaded from local files:
annotations land in the manifests and shard JSON, CLAP keeps each input's best captions, the
language filter rejects with its reason, and engines agree byte for byte."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from ualm.audio.synthetic import synth_clip, write_audio
from ualm.config import BuildConfig
from ualm.manifests.inspect import summarize
from ualm.pipelines.build import build_corpus

from .conftest import tree_bytes
from .model_factories import tiny_clap_folder, tiny_whisper_checkpoint

pytest.importorskip("whisper")
RATE = 24000
CAPTIONS = ["a dog barks twice", "rain falls on a metal roof", "a car passes by",
            "birds sing softly"]


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("models")
    checkpoint, _ = tiny_whisper_checkpoint(folder / "whisper")
    return checkpoint, tiny_clap_folder(folder / "clap")


@pytest.fixture(scope="module")
def manifest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("clips")
    rows = []
    for i, seconds in enumerate((3.0, 12.0, 4.0)):  # the 12 s clip has two windows
        path = write_audio(folder / f"c{i}.wav", synth_clip(seconds, RATE, seed=70 + i), RATE,
                           "wav16")
        rows.append({"id": f"c{i}", "path": path.name, "captions": CAPTIONS[i:] + CAPTIONS[:i]})
    out = folder / "manifest.jsonl"
    out.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return out


def config(models: tuple[Path, Path], **whisper: object) -> BuildConfig:
    checkpoint, clap = models
    return BuildConfig.from_dict({
        "whisper": {"model": str(checkpoint), **whisper},
        "clap": {"model": str(clap), "top_k": 2, "threshold": -1.0},
        "work": {"unit_size": 2}, "tokenize": {"enabled": False}})


def test_whisper_and_clap_annotate_and_choose_captions(models: tuple[Path, Path],
                                                       manifest: Path, tmp_path: Path) -> None:
    from ualm.filters.clap import load_clap
    from ualm.filters.whisper import load_whisper

    out = tmp_path / "local"
    build_corpus([manifest], out, config(models), engine="local", progress=False)
    samples = pq.read_table(out / "manifests" / "samples").to_pylist()
    assert len(samples) == 4 and summarize(out)["kept"] == 3
    whisper = load_whisper(models[0])
    for row in samples:
        assert row["spoken_language"] and 0 < row["spoken_language_probability"] <= 1
        assert isinstance(row["transcript"], str)
        embedding = np.asarray(row["clap_embedding"])
        assert embedding.shape == (16,) and abs(np.linalg.norm(embedding) - 1) < 1e-5
    first = next(r for r in samples if r["input_id"] == "c0")
    audio = synth_clip(3.0, RATE, seed=70)
    assert whisper.detect([audio], RATE)[0].language == first["spoken_language"]
    # CLAP keeps the two best captions of each input, best first; the others are recorded
    scores = load_clap(models[1]).scores([audio], [CAPTIONS], RATE)[0]
    best = [CAPTIONS[i] for i in np.argsort(-np.asarray(scores), kind="stable")[:2]]
    assert first["captions"] == best
    # ... and each kept caption carries its score, in the manifest, the shard JSON and the card
    order = np.argsort(-np.asarray(scores), kind="stable")[:2]
    # (the build scores the decoded 16-bit file, the check the float clip: close, not equal)
    assert first["clap_scores"] == pytest.approx([scores[i] for i in order], abs=2e-3)
    assert all(len(r["clap_scores"]) == len(r["captions"]) == 2 for r in samples)
    card = (out / "README.md").read_text()
    assert "## CLAP caption scores" in card and "6 kept captions" in card  # 3 clips x 2
    rejects = pq.read_table(out / "manifests" / "rejects").to_pylist()
    dropped = [r for r in rejects if r["level"] == "caption"]
    assert len(dropped) == 3 * 2 and {r["reason"] for r in dropped} == {"clap/not_top_k"}
    with (out / "audio" / "audio-000000.tar").open("rb") as handle:
        import tarfile

        with tarfile.open(fileobj=handle) as tar:
            meta = json.loads(tar.extractfile(sorted(n for n in tar.getnames()
                                                     if n.endswith(".json"))[0]).read())
    assert "spoken_language" in meta and "clap_embedding" not in meta  # manifests only
    assert meta["clap_scores"] == next(r["clap_scores"] for r in samples
                                       if r["key"] == meta["key"])


def test_a_duplicate_hands_its_scored_captions_to_the_keeper(models: tuple[Path, Path],
                                                             tmp_path: Path) -> None:
    """Exact dedup merges a copy's captions into the keeper with the scores they had against
    the copy's (identical) audio: captions and scores stay aligned."""
    from ualm.filters.clap import load_clap

    audio = synth_clip(3.0, RATE, seed=90)
    path = write_audio(tmp_path / "a.wav", audio, RATE, "wav16")
    rows = [{"id": "a", "path": path.name, "captions": CAPTIONS[:2]},
            {"id": "copy", "path": path.name, "captions": CAPTIONS[1:]}]
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "out"
    build_corpus([manifest], out, BuildConfig.from_dict({
        "clap": {"model": str(models[1]), "top_k": None, "threshold": -1.0},
        "tokenize": {"enabled": False}}), engine="local", progress=False)
    [sample] = pq.read_table(out / "manifests" / "samples").to_pylist()
    assert sample["input_id"] == "a" and sorted(sample["captions"]) == sorted(CAPTIONS)
    scores = dict(zip(CAPTIONS, load_clap(models[1]).scores([audio], [CAPTIONS], RATE)[0],
                      strict=True))
    assert sample["clap_scores"] == pytest.approx([scores[c] for c in sample["captions"]],
                                                  abs=2e-3)


def test_language_filter_rejects_with_its_reason(models: tuple[Path, Path], manifest: Path,
                                                 tmp_path: Path) -> None:
    out = tmp_path / "filtered"
    build_corpus([manifest], out, config(models, keep_languages=["zu-never"]), engine="local",
                 progress=False)
    summary = summarize(out)
    assert summary["kept"] == 0 and summary["reasons"] == {"whisper/language": 3}


def test_model_filters_give_the_same_bytes_on_dask(models: tuple[Path, Path], manifest: Path,
                                                   tmp_path: Path) -> None:
    build_corpus([manifest], tmp_path / "local", config(models), engine="local", progress=False)
    build_corpus([manifest], tmp_path / "dask", config(models), engine="dask", workers=2,
                 progress=False)
    assert tree_bytes(tmp_path / "dask") == tree_bytes(tmp_path / "local")


def test_clap_threshold_drops_captions_and_rejects_an_input_left_with_none(
        models: tuple[Path, Path], manifest: Path, tmp_path: Path) -> None:
    """A threshold between the scores: captions below it are dropped with their reason, and the
    input whose best caption is below it is rejected (it has nothing left to be about)."""
    from ualm.filters.clap import load_clap
    from ualm.pipelines.annotate import clip_embedding

    clap = models[1]
    every = BuildConfig.from_dict({"clap": {"model": str(clap), "top_k": None,
                                            "threshold": -1.0},
                                   "work": {"unit_size": 2}, "tokenize": {"enabled": False}})
    build_corpus([manifest], tmp_path / "all", every, engine="local", progress=False)
    windows: dict[str, list] = {}
    captions: dict[str, list[str]] = {}
    for row in pq.read_table(tmp_path / "all" / "manifests" / "samples").to_pylist():
        windows.setdefault(row["input_id"], []).append(row["clap_embedding"])
        captions[row["input_id"]] = row["captions"]
    assert sorted(windows) == ["c0", "c1", "c2"]
    scorer = load_clap(clap)
    scores = {i: scorer.text_embeddings(captions[i]) @ clip_embedding(windows[i])
              for i in windows}
    # the threshold halfway between the lowest and the second lowest best score: one input is
    # left with no caption, the others keep theirs above it and drop those below
    best = sorted((float(s.max()), i) for i, s in scores.items())
    threshold = (best[0][0] + best[1][0]) / 2
    loser = best[0][1]
    assert any((s < threshold).any() for i, s in scores.items() if i != loser), scores

    out = tmp_path / "threshold"
    build_corpus([manifest], out, BuildConfig.from_dict({
        "clap": {"model": str(clap), "top_k": None, "threshold": threshold},
        "work": {"unit_size": 2}, "tokenize": {"enabled": False}}), engine="local",
        progress=False)
    samples = pq.read_table(out / "manifests" / "samples").to_pylist()
    rejects = pq.read_table(out / "manifests" / "rejects").to_pylist()
    assert {r["input_id"] for r in samples} == set(scores) - {loser}
    for row in samples:
        s = dict(zip(captions[row["input_id"]], scores[row["input_id"]], strict=True))
        above = sorted((c for c in s if s[c] >= threshold), key=lambda c: -s[c])
        assert row["captions"] == above
    dropped = sorted((r["input_id"], r["detail"].split(" ")[1]) for r in rejects
                     if r["level"] == "caption")
    expected = sorted((i, f"{float(v):.3f}") for i, s in scores.items() if i != loser
                      for v in s if v < threshold)
    assert dropped == expected and expected
    assert {r["reason"] for r in rejects if r["level"] == "caption"} == {"clap/below_threshold"}
    [rejected] = [r for r in rejects if r["level"] == "input"]
    assert rejected["input_id"] == loser and rejected["reason"] == "clap/below_threshold"
    assert f"all {len(captions[loser])} captions dropped" in rejected["detail"]
    summary = summarize(out)
    assert summary["accounted"] and summary["rejected"] == 1 and summary["kept"] == 2
