"""Evaluation decontamination: a build given an evaluation set rejects the inputs whose audio
copies an evaluation clip (trimmed and re-encoded, or inside a longer recording) and the
captions that copy an evaluation caption, keeps the rest, accounts for every input, and says
what it checked in corpus.json and the card; the evaluation sets are part of the config hash."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from ualm.audio.decode import iter_decoded
from ualm.audio.synthetic import synth_clip, write_audio
from ualm.cli import parse_build
from ualm.config import BuildConfig
from ualm.filters.eval_audio import EvalAudioIndex, slow_fingerprint
from ualm.filters.eval_captions import EvalCaptionIndex
from ualm.manifests.inspect import summarize
from ualm.pipelines.build import build_corpus

from .conftest import skip_without_chromaprint, tree_bytes

RATE = 44100


skip_without_chromaprint()

EVAL_CAPTIONS = ["a steam train whistles as it passes a crossing",
                 "rain falls steadily on a tin roof while thunder rumbles",
                 "a small dog barks at a passing bicycle bell"]


def _jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """An evaluation set of three 2-4 s clips with captions, and a corpus manifest with a
    trimmed MP3 copy of one, another inside a longer Opus recording, an input whose one caption
    copies an evaluation caption, one with a copied caption beside its own, and three clean
    inputs."""
    folder = tmp_path_factory.mktemp("decontam")
    clips = [synth_clip(2.0 + n, RATE, seed=70 + n) for n in range(3)]
    eval_rows = [{"id": f"test{n}", "caption": EVAL_CAPTIONS[n],
                  "path": str(write_audio(folder / "eval" / f"test{n}.flac", clip, RATE, "flac"))}
                 for n, clip in enumerate(clips)]
    trimmed = clips[0][round(0.31 * RATE):-round(0.17 * RATE)]
    inside = np.concatenate([synth_clip(3.0, RATE, seed=80), clips[2], synth_clip(2, RATE, 81)])
    rows = [
        {"id": "copy-trimmed", "caption": "an engine idles",
         "path": str(write_audio(folder / "in" / "trimmed.mp3", trimmed, RATE, "mp3"))},
        {"id": "copy-inside", "caption": "a street with traffic and voices",
         "path": str(write_audio(folder / "in" / "inside.opus", inside, RATE, "opus"))},
        {"id": "caption-copied", "caption": "Rain falls steadily on a tin roof, while thunder "
                                            "rumbles!",
         "path": str(write_audio(folder / "in" / "c1.flac", synth_clip(3, RATE, 90), RATE,
                                 "flac"))},
        {"id": "caption-partly", "captions": ["a steam train whistles as it passes a crossing",
                                              "a distant horn over wind"],
         "path": str(write_audio(folder / "in" / "c2.flac", synth_clip(3, RATE, 91), RATE,
                                 "flac"))},
    ]
    rows += [{"id": f"clean{n}", "caption": f"a clean sound number {n} with birds",
              "path": str(write_audio(folder / "in" / f"clean{n}.flac",
                                      synth_clip(2.5 + n, RATE, seed=100 + n), RATE, "flac"))}
             for n in range(3)]
    return {"eval": _jsonl(folder / "eval" / "audiocaps-test.jsonl", eval_rows),
            "inputs": _jsonl(folder / "in" / "inputs.jsonl", rows)}


def _config(eval_set: Path) -> BuildConfig:
    return BuildConfig.from_dict({"decontam": {"eval_sets": [str(eval_set)]},
                                  "work": {"unit_size": 3, "dedup_buckets": 2},
                                  "tokenize": {"enabled": False}})


def test_build_rejects_planted_clips_and_captions(world: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "corpus"
    build_corpus([world["inputs"]], out, _config(world["eval"]), engine="local", progress=False)
    summary = summarize(out)
    assert summary["accounted"] and summary["inputs"] == 7
    assert (summary["kept"], summary["rejected"], summary["duplicates"]) == (4, 3, 0)
    assert summary["reasons"] == {"decontam/eval_audio": 2, "decontam/eval_caption": 1}
    rejects = pq.read_table(out / "manifests" / "rejects").to_pylist()
    why = {(r["input_id"], r["level"], r["reason"]) for r in rejects}
    assert why == {("copy-trimmed", "input", "decontam/eval_audio"),
                   ("copy-inside", "input", "decontam/eval_audio"),
                   ("caption-copied", "input", "decontam/eval_caption"),
                   ("caption-partly", "caption", "decontam/eval_caption")}
    detail = {r["input_id"]: r["detail"] for r in rejects}
    assert "audiocaps-test.jsonl/test0" in detail["copy-trimmed"]
    assert "audiocaps-test.jsonl/test2" in detail["copy-inside"]
    samples = pq.read_table(out / "manifests" / "samples").to_pylist()
    captions = {r["input_id"]: r["captions"] for r in samples}
    assert sorted(captions) == ["caption-partly", "clean0", "clean1", "clean2"]
    assert captions["caption-partly"] == ["a distant horn over wind"]
    corpus = json.loads((out / "corpus.json").read_text())
    facts = corpus["decontamination"]
    assert facts["rejected"] == {"decontam/eval_audio": 2, "decontam/eval_caption": 1}
    assert facts["captions_dropped"] == 1
    [checked] = facts["eval_sets"]
    assert (checked["name"], checked["clips"], checked["fingerprinted"], checked["captions"],
            checked["unreadable"]) == ("audiocaps-test.jsonl", 3, 3, 3, 0)
    card = (out / "README.md").read_text()
    assert "## Evaluation decontamination" in card
    assert "| `audiocaps-test.jsonl` |" in card and "2 inputs rejected" in card


def test_eval_sets_change_the_config_hash(tmp_path: Path) -> None:
    plain = BuildConfig.from_dict({})
    one, other = _config(tmp_path / "a.jsonl"), _config(tmp_path / "b.jsonl")
    assert len({plain.hash(), one.hash(), other.hash()}) == 3
    assert "decontam" not in plain.audio_dict()  # no set named: corpora keep their old hash
    _, config = parse_build(["--input", "x", "--out", "y", "--eval-set", "a",
                             "--eval-set", "b"])
    assert config.decontam.eval_sets == ["a", "b"]


def _fingerprint(path: Path) -> np.ndarray:
    return slow_fingerprint(iter_decoded(path, target_rate=16000), 16000, 600.0)


def test_short_trimmed_copies_match_and_unrelated_clips_do_not(tmp_path: Path) -> None:
    clips = [synth_clip(1.0 + n / 2, RATE, seed=200 + n) for n in range(2)]
    index = EvalAudioIndex([_fingerprint(write_audio(tmp_path / f"e{n}.flac", c, RATE, "flac"))
                            for n, c in enumerate(clips)])
    for n, clip in enumerate(clips):  # a 1 s clip trimmed to 0.7 s and re-encoded still matches
        cut = clip[round(0.13 * RATE):len(clip) - round(0.17 * RATE)]
        for fmt in ("mp3", "opus"):
            found = index.match(_fingerprint(write_audio(tmp_path / f"c{n}.{fmt}", cut, RATE,
                                                         fmt)))
            assert found is not None and found[0] == n and found[1] < 0.1, (n, fmt)
            assert found[2] in (-8, -9)  # 0.13 s cut: 8.4 items of 15.5 ms
    for seed in range(300, 306):
        other = synth_clip(2.0, RATE, seed=seed)
        assert index.match(_fingerprint(write_audio(tmp_path / f"o{seed}.flac", other, RATE,
                                                    "flac"))) is None


def test_caption_copies_need_most_of_an_evaluation_caption() -> None:
    index = EvalCaptionIndex([*EVAL_CAPTIONS, "a dog barks"])
    assert index.match("A SMALL dog barks at a passing bicycle bell.")[0] == 2
    assert index.match("in a park, a small dog barks at a passing bicycle bell again")[0] == 2
    assert index.match("a small cat meows at a passing bicycle bell") is None
    assert index.match("a dog barks") is None  # too short to count as a copy


def test_decontamination_is_the_same_on_dask(world: dict[str, Path], tmp_path: Path) -> None:
    config = _config(world["eval"])
    build_corpus([world["inputs"]], tmp_path / "local", config, engine="local", progress=False)
    build_corpus([world["inputs"]], tmp_path / "dask", config, engine="dask", workers=2,
                 progress=False)
    assert tree_bytes(tmp_path / "dask") == tree_bytes(tmp_path / "local")
