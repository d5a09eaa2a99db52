"""Near-duplicate audio: re-encodes of one recording (MP3, Opus, 48 kHz stereo FLAC a few dB
louder) are found and kept once, the best copy survives, unrelated clips are untouched, and the
result is the same on every engine."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import soxr

from ualm.audio.decode import iter_decoded
from ualm.audio.synthetic import synth_clip, write_audio
from ualm.config import BuildConfig
from ualm.filters.fingerprint import StreamingFingerprint, band_keys, bit_error_rate
from ualm.manifests.inspect import summarize
from ualm.pipelines.build import build_corpus

from .conftest import skip_without_chromaprint, tree_bytes

RATE = 44100


skip_without_chromaprint()
CONFIG = BuildConfig.from_dict({"near_dedup": {"enabled": True, "buckets": 3},
                                "work": {"unit_size": 3, "dedup_buckets": 2},
                                "tokenize": {"enabled": False}})


def fingerprint(path: Path) -> np.ndarray:
    stream = StreamingFingerprint(24000, 120.0)
    for block in iter_decoded(path, target_rate=24000):
        stream.feed(block)
    return stream.finish()


@pytest.fixture(scope="module")
def copies(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two recordings with three re-encodes each, four unrelated clips, and a manifest."""
    folder = tmp_path_factory.mktemp("copies")
    rows = []
    for n in range(2):
        clip = synth_clip(8.0, RATE, seed=500 + n)
        rows.append({"id": f"rec{n}-mp3", "path": write_audio(folder / f"rec{n}.mp3", clip, RATE,
                                                             "mp3").name,
                     "caption": f"recording {n}, as mp3"})
        rows.append({"id": f"rec{n}-wav", "path": write_audio(folder / f"rec{n}.wav", clip, RATE,
                                                             "wav16").name,
                     "caption": f"recording {n}, the original"})
        rows.append({"id": f"rec{n}-opus", "path": write_audio(folder / f"rec{n}.opus", clip,
                                                              RATE, "opus").name,
                     "caption": f"recording {n}, as opus"})
        louder = np.stack([soxr.resample(clip, RATE, 48000) * 1.4] * 2, axis=1)
        rows.append({"id": f"rec{n}-flac48", "path": write_audio(folder / f"rec{n}-48k.flac",
                                                                louder, 48000, "flac").name,
                     "caption": f"recording {n}, louder, 48 kHz stereo"})
    for n in range(4):
        path = write_audio(folder / f"other{n}.flac", synth_clip(8.0, RATE, seed=900 + n), RATE,
                           "flac")
        rows.append({"id": f"other{n}", "path": path.name, "caption": f"unrelated clip {n}"})
    manifest = folder / "manifest.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return manifest


def test_fingerprints_of_copies_agree_and_unrelated_ones_do_not(copies: Path) -> None:
    folder = copies.parent
    original = fingerprint(folder / "rec0.wav")
    for name in ("rec0.mp3", "rec0.opus", "rec0-48k.flac"):
        assert bit_error_rate(original, fingerprint(folder / name)) < 0.02, name
    for name in ("rec1.wav", "other0.flac", "other1.flac"):
        assert bit_error_rate(original, fingerprint(folder / name)) > 0.15, name
    copy_keys = set(band_keys(fingerprint(folder / "rec0.mp3"), 8))
    assert copy_keys & set(band_keys(original, 8))
    assert not copy_keys & set(band_keys(fingerprint(folder / "other0.flac"), 8))


def test_build_keeps_one_copy_of_each_recording(copies: Path, tmp_path: Path) -> None:
    out = tmp_path / "local"
    build_corpus([copies], out, CONFIG, engine="local", progress=False)
    summary = summarize(out)
    assert (summary["inputs"], summary["kept"], summary["duplicates"]) == (12, 6, 6)
    assert summary["duplicate_kinds"] == {"dedup/near_duplicate": 6}
    samples = pq.read_table(out / "manifests" / "samples").to_pylist()
    kept = sorted({r["input_id"] for r in samples})
    # the 48 kHz stereo FLAC is lossless at the highest rate: it survives
    assert kept == ["other0", "other1", "other2", "other3", "rec0-flac48", "rec1-flac48"]
    survivor = next(r for r in samples if r["input_id"] == "rec0-flac48")
    assert survivor["captions"] == ["recording 0, louder, 48 kHz stereo", "recording 0, as mp3",
                                    "recording 0, the original", "recording 0, as opus"]
    duplicates = pq.read_table(out / "manifests" / "duplicates").to_pylist()
    assert {(d["input_id"], d["duplicate_of"]) for d in duplicates} == {
        (f"rec{n}-{kind}", f"rec{n}-flac48") for n in range(2) for kind in ("mp3", "wav", "opus")}
    assert all(d["bit_error_rate"] < 0.02 for d in duplicates)


def test_near_dedup_is_the_same_on_dask(copies: Path, tmp_path: Path) -> None:
    build_corpus([copies], tmp_path / "local", CONFIG, engine="local", progress=False)
    build_corpus([copies], tmp_path / "dask", CONFIG, engine="dask", workers=2, progress=False)
    assert tree_bytes(tmp_path / "dask") == tree_bytes(tmp_path / "local")
