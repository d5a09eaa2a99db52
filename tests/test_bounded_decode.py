"""Bounded work per input: a decoder that hangs, allocates without bound or crashes in native code
costs its input (`decode/timeout`, `decode/too_large`, `decode/crashed`) and nothing else; the
rest of its unit is kept and every input is accounted for. Decoding in a decode process gives
the same corpus bytes as decoding in the worker."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import soundfile as sf

from ualm.audio.decode import iter_decoded
from ualm.audio.decode_process import FAULTS_ENV
from ualm.audio.isolation import open_input
from ualm.audio.synthetic import SyntheticWorld, synth_clip, write_audio
from ualm.config import BuildConfig, LimitsConfig
from ualm.errors import UalmError
from ualm.manifests.inspect import summarize
from ualm.pipelines.build import build_corpus

from .conftest import SMALL, tree_bytes

TIGHT = LimitsConfig(decode_seconds=2.0, decode_memory_mb=16)


def _clip(path: Path, seconds: float = 3.0, seed: int = 0, fmt: str = "wav16") -> Path:
    write_audio(path, synth_clip(seconds, 44100, seed=seed, channels=2), 44100, fmt)
    return path


def _bomb(path: Path) -> Path:
    """A real file, 11 kB, whose every 1 s block decodes to 20 MB: 8 channels of silence at
    655,350 Hz (the most FLAC allows) — what a crafted file does to a decoder's memory."""
    sf.write(path, np.zeros((2 * 655350, 8), np.float32), 655350, format="FLAC",
             subtype="PCM_16")
    return path


def _decode(path: Path, limits: LimitsConfig = TIGHT) -> np.ndarray:
    clip = open_input(limits, path, target_rate=24000, block_seconds=1.0)
    return np.concatenate(list(clip.chunks()))


@pytest.mark.parametrize(("action", "reason"), [("hang", "decode/timeout"),
                                                 ("alloc", "decode/too_large"),
                                                 ("segv", "decode/crashed")])
def test_a_misbehaving_decoder_costs_its_input_and_the_next_one_decodes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, action: str, reason: str) -> None:
    bad, good = _clip(tmp_path / "bad.wav"), _clip(tmp_path / "good.wav", seed=1)
    monkeypatch.setenv(FAULTS_ENV, f"bad.*={action}")
    started = time.monotonic()
    with pytest.raises(Exception) as caught:
        _decode(bad)
    assert getattr(caught.value, "reason", None) == reason, caught.value
    assert time.monotonic() - started < TIGHT.decode_seconds + 5
    expected = np.concatenate(list(iter_decoded(good, target_rate=24000, block_seconds=1.0)))
    assert _decode(good).tobytes() == expected.tobytes()  # a fresh process after a kill


def test_a_crafted_file_is_too_large_in_a_real_decoder(tmp_path: Path) -> None:
    """No hook: libsndfile and NumPy allocate the 20 MB blocks, and the limit stops them."""
    bomb = _bomb(tmp_path / "bomb.flac")
    with pytest.raises(Exception) as caught:
        _decode(bomb)
    assert getattr(caught.value, "reason", None) == "decode/too_large", caught.value
    assert len(_decode(bomb, LimitsConfig(decode_memory_mb=256))) == 48000


def test_an_input_left_part_way_leaves_the_process_ready(tmp_path: Path) -> None:
    long, short = _clip(tmp_path / "long.wav", 20.0), _clip(tmp_path / "short.wav", seed=1)
    chunks = open_input(TIGHT, long, target_rate=24000, block_seconds=0.5).chunks()
    assert len(next(chunks)) > 0
    chunks.close()  # as the windows do when an input turns out too long
    assert len(_decode(short)) == 3 * 24000
    held = open_input(TIGHT, long, target_rate=24000, block_seconds=0.5)  # too long by its
    assert held.info.seconds == 20.0  # header: its samples are never read, and the next
    assert len(_decode(short)) == 3 * 24000  # input still decodes while it is held
    assert list(held.chunks()) == []  # (its request was ended)


def test_a_relative_path_is_read_from_the_callers_folder(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    _decode(_clip(tmp_path / "first.wav"))  # the decode process exists, started elsewhere
    folder = tmp_path / "sub"
    folder.mkdir()
    _clip(folder / "here.wav", seconds=2.0)
    monkeypatch.chdir(folder)
    assert len(_decode(Path("here.wav"))) == 2 * 24000


def test_a_bad_fault_rule_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(FAULTS_ENV, "bad.wav=explode")
    with pytest.raises(UalmError, match=FAULTS_ENV):
        _decode(_clip(tmp_path / "bad.wav"))


def test_limits_are_checked_and_leave_the_config_hash_alone() -> None:
    tight = BuildConfig.from_dict({"limits": {"decode_seconds": 5, "isolate": False}})
    assert tight.hash() == BuildConfig().hash()
    assert "limits" not in tight.audio_dict()
    with pytest.raises(UalmError, match="limits"):
        BuildConfig.from_dict({"limits": {"decode_memory_mb": 0}})


def test_a_build_rejects_the_misbehaving_inputs_and_keeps_the_rest_of_their_unit(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    names = {"good-0.wav": "kept", "hang.wav": "decode/timeout", "good-1.mp3": "kept",
             "alloc.wav": "decode/too_large", "segv.flac": "decode/crashed",
             "bomb.flac": "decode/too_large", "good-2.flac": "kept"}
    for seed, name in enumerate(names):
        if name == "bomb.flac":
            _bomb(inputs / name)
        else:
            fmt = {"wav": "wav16", "mp3": "mp3", "flac": "flac"}[name.rsplit(".", 1)[1]]
            _clip(inputs / name, seed=seed, fmt=fmt)
    manifest = inputs / "manifest.jsonl"
    manifest.write_text("".join(json.dumps({"id": n.split(".")[0], "path": n}) + "\n"
                                for n in names))
    monkeypatch.setenv(FAULTS_ENV, "hang.wav=hang, alloc.wav=alloc, segv.flac=segv")
    config = BuildConfig.from_dict({**SMALL.to_dict(), "work": {"unit_size": len(names)},
                                    "limits": {"decode_seconds": TIGHT.decode_seconds,
                                               "decode_memory_mb": TIGHT.decode_memory_mb}})
    out = build_corpus([manifest], tmp_path / "corpus", config, engine="local",
                       progress=False).corpus
    kept = {r["input_id"] for r in pq.read_table(out / "manifests" / "samples").to_pylist()}
    rejected = {r["input_id"]: r["reason"] for r in
                pq.read_table(out / "manifests" / "rejects").to_pylist() if r["level"] == "input"}
    assert {**{i: "kept" for i in kept}, **rejected} == {
        n.split(".")[0]: outcome for n, outcome in names.items()}
    summary = summarize(out)
    assert summary["accounted"] and summary["inputs"] == len(names)
    assert summary["inputs"] == summary["kept"] + summary["rejected"] + summary["duplicates"]


def test_a_decode_process_makes_the_same_corpus_as_the_worker(world: SyntheticWorld,
                                                               local_corpus: Path,
                                                               tmp_path: Path) -> None:
    """The session corpus decodes in decode processes (the default); in the worker, every byte
    is the same, the rejects of the world's hostile inputs included."""
    assert SMALL.limits.isolate
    config = BuildConfig.from_dict({**SMALL.to_dict(), "limits": {"isolate": False}})
    out = build_corpus([world.manifest], tmp_path / "corpus", config, engine="local",
                       progress=False).corpus
    assert tree_bytes(out) == tree_bytes(local_corpus)
