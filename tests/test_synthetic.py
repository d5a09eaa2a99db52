"""The synthetic data factory: deterministic clips, files and worlds."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest

from ualm.audio import AudioRejected, iter_decoded, probe
from ualm.audio.synthetic import (
    EXTENSIONS,
    FORMATS,
    SyntheticWorld,
    make_world,
    synth_clip,
    write_audio,
    write_long_recording,
)


@pytest.fixture(scope="module")
def default_world(tmp_path_factory: pytest.TempPathFactory) -> tuple[SyntheticWorld, float]:
    """The full default world (24 clips + every hostile row) and its build time."""
    started = time.perf_counter()
    built = make_world(tmp_path_factory.mktemp("default-world"), seed=0)
    return built, time.perf_counter() - started


def files_of(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def test_synth_clip_is_deterministic_varied_and_in_range() -> None:
    a = synth_clip(3.0, 16000, seed=1)
    assert a.dtype == np.float32 and a.shape == (48000,)
    assert np.array_equal(a, synth_clip(3.0, 16000, seed=1))
    assert 0.44 < np.abs(a).max() < 0.56
    b = synth_clip(3.0, 16000, seed=2)
    assert np.corrcoef(a, b)[0, 1] < 0.5
    stereo = synth_clip(2.0, 48000, seed=1, channels=2)
    assert stereo.shape == (96000, 2) and not np.array_equal(stereo[:, 0], stereo[:, 1])
    for seed in range(20):  # never silent anywhere near the whole clip
        clip = synth_clip(1.5, 22050, seed=seed)
        assert np.sqrt(np.mean(clip**2)) > 0.02 and np.abs(clip).max() < 0.56


@pytest.mark.parametrize("fmt", FORMATS)
def test_write_audio_bytes_are_deterministic(tmp_path: Path, fmt: str) -> None:
    clip = synth_clip(2.0, 44100, seed=4, channels=2)
    first = write_audio(tmp_path / f"a.{EXTENSIONS[fmt]}", clip, 44100, fmt).read_bytes()
    time.sleep(0.01)
    second = write_audio(tmp_path / f"b.{EXTENSIONS[fmt]}", clip, 44100, fmt).read_bytes()
    assert first == second


def test_world_is_fast_and_every_manifest_row_has_an_expectation(default_world) -> None:
    world, seconds = default_world
    assert seconds < 10
    lines = world.manifest.read_text(encoding="utf-8").splitlines()
    keys = []
    for number, line in enumerate(lines, start=1):
        try:
            keys.append(json.loads(line)["id"])
        except json.JSONDecodeError:
            keys.append(f"line:{number}")
    assert keys == list(world.expected)
    assert len(world.kept) == 24
    assert set(world.formats.values()) == set(FORMATS)
    outcomes = set(world.expected.values())
    for reason in ("decode/not_audio", "decode/corrupt", "decode/empty_file", "duplicate",
                   "quality/non_finite", "quality/silent", "quality/too_short",
                   "quality/clipped", "input/missing_file", "input/outside_allowed_roots",
                   "manifest/bad_json", "manifest/missing_path", "manifest/bad_type"):  # fmt: skip
        assert reason in outcomes


def test_world_decodes_as_expected(default_world) -> None:
    world = default_world[0]
    rows = {}
    for line in world.manifest.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        rows[row["id"]] = row
    decoded = {}
    for key, outcome in world.expected.items():
        path = rows.get(key, {}).get("path")
        if not isinstance(path, str) or path.startswith(".."):
            continue
        if outcome.startswith(("decode/", "input/")):
            with pytest.raises(AudioRejected) as caught:
                list(iter_decoded(world.root / path, target_rate=16000))
            assert caught.value.reason == outcome, key
            continue
        info = probe(world.root / path)
        audio = np.concatenate(list(iter_decoded(world.root / path, target_rate=16000)))
        decoded[key] = audio
        if outcome == "kept":
            assert info.seconds is not None and info.seconds >= 1.5
            assert 0.15 < np.abs(audio).max() < 0.7, key  # stereo downmix lowers the peak
    assert np.array_equal(decoded["dup-flac-copy"], decoded[rows["dup-same-file"]["id"]])
    assert rows["dup-same-file"]["path"] == rows["clip-0000"]["path"]
    assert np.array_equal(decoded["dup-flac-copy"], decoded["clip-0000"])
    assert np.isnan(decoded["bad-nan"]).all()
    assert not decoded["bad-silent"].any()
    assert np.abs(decoded["bad-clipped"]).min() > 0.999


def test_world_bytes_are_deterministic(tmp_path: Path) -> None:
    kwargs = {"n_clips": 9, "seed": 3, "seconds_range": (1.5, 3.0)}
    a = make_world(tmp_path / "a", **kwargs)
    time.sleep(1.1)  # anything stamping wall-clock seconds would now differ
    b = make_world(tmp_path / "b", **kwargs)
    assert a.expected == b.expected
    assert files_of(a.root) == files_of(b.root)
    other = make_world(tmp_path / "c", **{**kwargs, "seed": 4})
    assert files_of(other.root) != files_of(a.root)


def test_long_recording_is_streamable_and_deterministic(tmp_path: Path) -> None:
    a = write_long_recording(tmp_path / "a.flac", 25.0, 16000, seed=1)
    b = write_long_recording(tmp_path / "b.flac", 25.0, 16000, seed=1)
    assert a.read_bytes() == b.read_bytes()
    info = probe(a)
    assert (info.sample_rate, info.channels, info.seconds) == (16000, 1, 25.0)
    with pytest.raises(ValueError):
        write_long_recording(tmp_path / "c.m4a", 1.0, 16000, fmt="m4a")
