"""Model and signal filters: caption checks, EBU R128 loudness (and normalisation), Silero VAD on
real speech from espeak-ng against tones and noise, each through a real build."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import soundfile as sf

from ualm.audio.synthetic import synth_clip, write_audio
from ualm.config import BuildConfig, CaptionConfig
from ualm.filters.captions import check_caption, split_captions
from ualm.filters.loudness import integrated_loudness, normalisation_gain
from ualm.filters.vad import detect_speech
from ualm.manifests.inspect import summarize
from ualm.pipelines.build import build_corpus

RATE = 24000
CAPTIONS = CaptionConfig(enabled=True)


def require(tool: str) -> str:
    """CI installs the tool (.ci/run); elsewhere a missing one skips the test, saying why."""
    path = shutil.which(tool)
    if path is None:
        if os.environ.get("CI"):
            pytest.fail(f"{tool} is missing; .ci/run installs it")
        pytest.skip(f"{tool} is not installed (apt-get install {tool})")
    return path


def tone(seconds: float, freq: float, amplitude: float = 0.3, rate: int = RATE) -> np.ndarray:
    t = np.arange(round(seconds * rate)) / rate
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def speech(path: Path, voice: str, text: str) -> Path:
    subprocess.run([require("espeak-ng"), "-v", voice, "-w", str(path), text], check=True,
                   capture_output=True)
    return path


def shard_metas(corpus: Path) -> dict[str, dict]:
    metas = {}
    for shard in sorted((corpus / "audio").glob("*.tar")):
        with tarfile.open(shard) as tar:
            for member in tar.getmembers():
                if member.name.endswith(".json"):
                    meta = json.loads(tar.extractfile(member).read())  # type: ignore[union-attr]
                    metas[meta["input_id"]] = meta
    return metas


def shard_audio(corpus: Path) -> dict[str, np.ndarray]:
    audio = {}
    for shard in sorted((corpus / "audio").glob("*.tar")):
        with tarfile.open(shard) as tar:
            for member in tar.getmembers():
                if member.name.endswith(".flac"):
                    data = tar.extractfile(member).read()  # type: ignore[union-attr]
                    audio[member.name[:-5]], _ = sf.read(io.BytesIO(data), dtype="float32")
    return audio


# --- captions -------------------------------------------------------------------------------

@pytest.mark.parametrize(("caption", "reason"), [
    ("A dog barks twice in the distance", None),
    ("   ", "caption/empty"),
    ("N/A", "caption/placeholder"),
    ("dog", "caption/too_short"),
    ("word " * 101, "caption/too_long"),
    ("Muffled speech in a NOISY room", "caption/low_quality_word"),
    ("a recording of LOW QUALITY birdsong", "caption/low_quality_word"),
    ("noisette and noisier are not the word noisy's neighbours", "caption/low_quality_word"),
    ("a noisette falls on a tin roof", None),  # whole words only
])
def test_caption_checks(caption: str, reason: str | None) -> None:
    found = check_caption(caption, CAPTIONS)
    assert (found.reason if found else None) == reason


def test_split_captions_keeps_order_and_says_why() -> None:
    kept, dropped = split_captions(["rain on a window", "noisy rain", "todo", "rain and thunder"],
                                   CAPTIONS)
    assert kept == ["rain on a window", "rain and thunder"]
    assert [(c, r.reason) for c, r in dropped] == [("noisy rain", "caption/low_quality_word"),
                                                  ("todo", "caption/placeholder")]


def test_build_drops_bad_captions_and_rejects_inputs_left_with_none(tmp_path: Path) -> None:
    for i in range(3):
        write_audio(tmp_path / f"c{i}.wav", synth_clip(3.0, RATE, seed=40 + i), RATE, "wav16")
    rows = [
        {"id": "good", "path": "c0.wav", "captions": ["a car passes by", "noisy car passing"]},
        {"id": "placeholder", "path": "c1.wav", "caption": "n/a"},
        {"id": "none", "path": "c2.wav"},
    ]
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    config = BuildConfig.from_dict({"captions": {"enabled": True},
                                    "tokenize": {"enabled": False}})
    out = tmp_path / "corpus"
    build_corpus([manifest], out, config, engine="local", progress=False)
    summary = summarize(out)
    assert (summary["inputs"], summary["kept"], summary["rejected"]) == (3, 2, 1)
    assert summary["reasons"] == {"caption/placeholder": 1}
    rejects = pq.read_table(out / "manifests" / "rejects").to_pylist()
    caption_rows = [(r["input_id"], r["level"], r["reason"]) for r in rejects
                    if r["level"] == "caption"]
    assert caption_rows == [("good", "caption", "caption/low_quality_word")]
    assert shard_metas(out)["good"]["captions"] == ["a car passes by"]
    assert shard_metas(out)["none"]["captions"] == []


# --- loudness -------------------------------------------------------------------------------

def test_integrated_loudness_of_a_reference_sine() -> None:
    """BS.1770: a 997 Hz sine at full scale reads -3.01 LUFS; at 0.1 (-20 dB), -23.01."""
    assert integrated_loudness(tone(3.0, 997.0, 0.1, 48000), 48000) == pytest.approx(-23.01,
                                                                                   abs=0.1)
    assert integrated_loudness(tone(0.3, 997.0), RATE) is None  # shorter than one 400 ms block
    assert integrated_loudness(np.zeros(RATE, np.float32), RATE) is None  # all gated: silence


def test_normalisation_gain_respects_the_peak_limit() -> None:
    assert normalisation_gain(-33.0, -23.0, 0.05, 0.99) == pytest.approx(10 ** 0.5)
    assert normalisation_gain(-33.0, -23.0, 0.5, 0.99) == pytest.approx(0.99 / 0.5)


def test_build_annotates_and_normalises_loudness(tmp_path: Path) -> None:
    levels = {"quiet": 0.02, "medium": 0.1, "loud": 0.4}
    for name, amplitude in levels.items():
        write_audio(tmp_path / f"{name}.wav", tone(4.0, 440.0, amplitude), RATE, "wav16")
    out = tmp_path / "corpus"
    config = BuildConfig.from_dict({"loudness": {"normalize_lufs": -23.0},
                                    "tokenize": {"enabled": False}})
    build_corpus([tmp_path], out, config, engine="local", progress=False)
    samples = {r["input_id"]: r for r in pq.read_table(out / "manifests" / "samples").to_pylist()}
    before = {name: samples[f"{name}.wav"]["loudness_lufs"] for name in levels}
    assert before["quiet"] < before["medium"] < before["loud"]
    assert before["loud"] - before["quiet"] == pytest.approx(20 * np.log10(20), abs=0.05)
    for name, stored in shard_audio(out).items():
        assert integrated_loudness(stored, RATE) == pytest.approx(-23.0, abs=0.1), name
        assert float(np.max(np.abs(stored))) <= 0.99
    meta = shard_metas(out)["quiet.wav"]
    assert meta["loudness_lufs"] == before["quiet"] and meta["loudness_gain_db"] > 0


# --- speech ---------------------------------------------------------------------------------

SENTENCES = {
    "en": "The quick brown fox jumps over the lazy dog, and then it runs away.",
    "de": "Guten Morgen, wie geht es Ihnen heute? Das Wetter ist wirklich schön.",
    "fr": "Bonjour, je voudrais un café et un croissant, s'il vous plaît.",
}


def _noise(seconds: float) -> np.ndarray:
    return (0.1 * np.random.default_rng(5).standard_normal(round(seconds * RATE))).astype(
        np.float32)


def test_vad_separates_speech_in_several_languages_from_tones_and_noise(tmp_path: Path) -> None:
    for language, text in SENTENCES.items():
        path = speech(tmp_path / f"{language}.wav", language, text)
        audio, rate = sf.read(path, dtype="float32")
        found = detect_speech(audio, rate)
        assert found.ratio > 0.6, (language, found)
        assert found.segments and all(0 <= a < b <= len(audio) / rate for a, b in found.segments)
    for name, audio in [("tone", tone(4.0, 440.0)), ("chord", tone(4.0, 220.0) + tone(4.0, 330.0)),
                        ("noise", _noise(4.0))]:
        assert detect_speech(audio, RATE).ratio < 0.2, name


def test_vad_result_does_not_depend_on_what_ran_before() -> None:
    audio = _noise(2.0) * 0.1 + tone(2.0, 300.0)
    first = detect_speech(audio, RATE)
    detect_speech(tone(3.0, 1000.0), RATE)
    assert detect_speech(audio, RATE) == first


def test_build_keeps_speech_and_rejects_the_rest(tmp_path: Path) -> None:
    inputs = tmp_path / "in"
    inputs.mkdir()
    for language, text in SENTENCES.items():
        speech(inputs / f"speech-{language}.wav", language, text)
    write_audio(inputs / "tone.wav", tone(4.0, 440.0), RATE, "wav16")
    write_audio(inputs / "noise.wav", _noise(4.0), RATE, "wav16")
    config = BuildConfig.from_dict({"vad": {"enabled": True, "min_speech_ratio": 0.3},
                                    "tokenize": {"enabled": False}})
    out = tmp_path / "corpus"
    build_corpus([inputs], out, config, engine="local", progress=False)
    summary = summarize(out)
    assert summary["reasons"] == {"vad/no_speech": 2}
    samples = pq.read_table(out / "manifests" / "samples").to_pylist()
    assert sorted(r["input_id"] for r in samples) == [f"speech-{x}.wav" for x in ("de", "en", "fr")]
    assert all(r["speech_ratio"] > 0.6 and r["speech_segments"] for r in samples)
    assert shard_metas(out)["speech-en.wav"]["speech_ratio"] > 0.6


def test_vad_batches_agree_with_windows_scored_alone(tmp_path: Path) -> None:
    from ualm.filters.vad import detect_speech_batch, speech_probabilities

    audio, rate = sf.read(speech(tmp_path / "en.wav", "en", SENTENCES["en"]), dtype="float32")
    windows = [audio, tone(3.0, 440.0, rate=rate), audio[: rate], _noise(2.0)[: 2 * rate]]
    alone = [speech_probabilities([w], rate)[0] for w in windows]
    together = speech_probabilities(windows, rate)
    reordered = speech_probabilities(windows[::-1], rate)[::-1]
    for a, b, c in zip(alone, together, reordered, strict=True):
        assert a.shape == b.shape == c.shape
        np.testing.assert_allclose(a, b, atol=1e-4)  # float sums in another order
        np.testing.assert_allclose(a, c, atol=1e-4)
    assert detect_speech_batch(windows, rate) == [detect_speech(w, rate) for w in windows]


def test_presets_load_and_a_config_file_merges_on_top(tmp_path: Path) -> None:
    from ualm.recipes import preset_names

    assert {"sound-captions", "speech"} <= set(preset_names())
    speech_config = BuildConfig.from_sources("speech")
    assert speech_config.vad.enabled and speech_config.vad.min_speech_ratio == 0.6
    override = tmp_path / "mine.yaml"
    override.write_text("vad: {min_speech_ratio: 0.8}\n")
    merged = BuildConfig.from_sources("speech", override)
    assert merged.vad.enabled and merged.vad.min_speech_ratio == 0.8
    assert BuildConfig.from_sources("sound-captions").captions.enabled
    from ualm.errors import UalmError

    with pytest.raises(UalmError, match="unknown preset 'nope'"):
        BuildConfig.from_sources("nope")


def test_vad_segmentation_cuts_long_recordings_into_speech_segments(tmp_path: Path) -> None:
    import soxr

    parts = []
    for language in ("en", "de"):
        audio, rate = sf.read(speech(tmp_path / f"{language}.wav", language,
                                     SENTENCES[language]), dtype="float32")
        parts.append(soxr.resample(audio, rate, RATE).astype(np.float32))
    gap = np.zeros(2 * RATE, np.float32)
    recording = np.concatenate([gap, parts[0], gap, tone(2.0, 440.0), parts[1], gap])
    inputs = tmp_path / "in"
    inputs.mkdir()
    write_audio(inputs / "long.wav", recording, RATE, "wav16")
    write_audio(inputs / "tone.wav", tone(6.0, 440.0), RATE, "wav16")
    config = BuildConfig.from_dict({"segment": {"mode": "vad", "vad_min_seconds": 3.0},
                                    "tokenize": {"enabled": False}})
    out = tmp_path / "corpus"
    build_corpus([inputs], out, config, engine="local", progress=False)
    assert summarize(out)["reasons"] == {"vad/no_speech": 1}
    samples = sorted(pq.read_table(out / "manifests" / "samples").to_pylist(),
                     key=lambda r: r["offset"])
    starts = [2.0, 2.0 + len(parts[0]) / RATE + 4.0]  # where each sentence begins
    assert len(samples) == 2
    for row, start, part in zip(samples, starts, parts, strict=True):
        assert abs(row["offset"] - start) < 0.3
        assert abs(row["seconds"] - len(part) / RATE) < 0.8
    capped = BuildConfig.from_dict({"segment": {"mode": "vad", "vad_min_seconds": 1.0,
                                                "vad_max_seconds": 2.0},
                                    "tokenize": {"enabled": False}})
    only_long = tmp_path / "long"
    only_long.mkdir()
    (only_long / "long.wav").write_bytes((inputs / "long.wav").read_bytes())
    build_corpus([only_long], tmp_path / "capped", capped, engine="local", progress=False)
    lengths = [r["seconds"] for r in pq.read_table(tmp_path / "capped" / "manifests" / "samples")
               .to_pylist()]
    assert len(lengths) >= 4 and max(lengths) <= 2.0 + 1e-6
