"""Decoding, slicing, rejection, memory, windows and FLAC helpers of ualm.audio."""

from __future__ import annotations

import io
import os
import struct
import tracemalloc
from itertools import pairwise
from pathlib import Path

import av
import numpy as np
import pytest
import soundfile as sf
import soxr

from ualm.audio import (
    AudioRejected,
    decode_flac,
    encode_flac,
    iter_decoded,
    iter_windows,
    probe,
)
from ualm.audio.synthetic import FORMATS, synth_clip, write_audio, write_long_recording

LOSSLESS = ("wav16", "wav24", "wav_f32", "flac")
# (source rate, channels) per format.
SETUPS = {fmt: (44100 if i % 2 else 22050, 1 + i % 2) for i, fmt in enumerate(FORMATS)}


def decode_all(path: Path, **kwargs: object) -> np.ndarray:
    chunks = list(iter_decoded(path, **kwargs))
    for chunk in chunks:
        assert chunk.dtype == np.float32 and chunk.ndim == 1
    return np.concatenate(chunks) if chunks else np.zeros(0, np.float32)


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, np.ndarray, int]]:
    """One 3 s clip per format: fmt -> (path, original samples, source rate)."""
    root = tmp_path_factory.mktemp("clips")
    out = {}
    for i, fmt in enumerate(FORMATS):
        rate, channels = SETUPS[fmt]
        samples = synth_clip(3.0, rate, seed=100 + i, channels=channels)
        out[fmt] = (write_audio(root / f"clip-{fmt}.{fmt}", samples, rate, fmt), samples, rate)
    return out


@pytest.mark.parametrize("target_rate", [16000, 24000])
@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_round_trips(clips: dict, fmt: str, target_rate: int) -> None:
    path, samples, rate = clips[fmt]
    info = probe(path)
    assert info.sample_rate == (48000 if fmt == "opus" else rate)  # opus has no 22.05/44.1 kHz
    assert info.channels == SETUPS[fmt][1]
    assert info.seconds is not None and abs(info.seconds - 3.0) < 0.1
    decoded = decode_all(path, target_rate=target_rate)
    assert abs(len(decoded) / target_rate - 3.0) < 0.1
    mono = samples if samples.ndim == 1 else samples.mean(axis=1)
    reference = soxr.resample(mono, rate, target_rate, "HQ")
    if fmt in LOSSLESS:
        assert len(decoded) == len(reference)
        assert np.abs(decoded - reference).max() < 1e-3
    else:  # lossy: same loudness, strongly correlated once aligned by length
        n = min(len(decoded), len(reference))
        rms = np.sqrt(np.mean(decoded[:n] ** 2)) / np.sqrt(np.mean(reference[:n] ** 2))
        assert 0.7 < rms < 1.3


@pytest.mark.parametrize("fmt", FORMATS)
def test_chunk_size_does_not_change_output(clips: dict, fmt: str) -> None:
    path = clips[fmt][0]
    for target_rate in (16000, probe(path).sample_rate):
        small = decode_all(path, target_rate=target_rate, block_seconds=0.5)
        large = decode_all(path, target_rate=target_rate, block_seconds=5.0)
        assert np.array_equal(small, large)


def test_ten_seconds_resample_to_exact_length(tmp_path: Path) -> None:
    path = write_audio(tmp_path / "ten.wav", synth_clip(10.0, 44100, seed=3), 44100, "wav16")
    assert abs(len(decode_all(path, target_rate=24000)) - 240000) <= 1


@pytest.mark.parametrize("fmt", ["wav16", "flac", "ogg", "mp3", "m4a"])
def test_start_end_slicing(clips: dict, fmt: str) -> None:
    path = clips[fmt][0]
    native = probe(path).sample_rate
    full = decode_all(path, target_rate=native)
    for start, end in [(0.5, 1.25), (1.234, None), (0.0, 0.7), (2.0, 10.0)]:
        part = decode_all(path, target_rate=native, start=start, end=end)
        expected = full[round(start * native) : None if end is None else round(end * native)]
        assert len(part) == len(expected)
        if fmt in ("wav16", "flac", "ogg", "mp3"):
            assert np.array_equal(part, expected)  # sample-exact seeking
        else:  # AAC: seeking re-primes the decoder, so allow small differences
            assert np.abs(part - expected).max() < 0.15
        resampled = decode_all(path, target_rate=16000, start=start, end=end)
        assert abs(len(resampled) - len(expected) * 16000 / native) <= 1


def test_slicing_matches_full_resample_away_from_edges(clips: dict) -> None:
    path = clips["wav16"][0]
    full = decode_all(path, target_rate=16000)
    part = decode_all(path, target_rate=16000, start=1.0, end=2.0)
    assert len(part) == 16000
    assert np.abs(part[400:-400] - full[16400:31600]).max() < 1e-3


def test_nan_and_inf_pass_through_resampling(tmp_path: Path) -> None:
    samples = synth_clip(2.0, 22050, seed=5)
    samples[1000:1100] = np.nan
    samples[5000] = np.inf
    path = write_audio(tmp_path / "nan.wav", samples, 22050, "wav_f32")
    decoded = decode_all(path, target_rate=16000)
    assert abs(len(decoded) - 2 * 16000) <= 1
    assert not np.isfinite(decoded).all()
    assert np.isfinite(decoded[-1000:]).all()


def _wav_header(rate: int, channels: int) -> bytes:
    fmt = struct.pack("<HHIIHH", 1, channels, rate, rate * channels * 2, channels * 2, 16)
    data = bytes(4000)
    riff = b"WAVE" + b"fmt " + struct.pack("<I", 16) + fmt + b"data" + struct.pack("<I", 4000)
    return b"RIFF" + struct.pack("<I", len(riff) + len(data)) + riff + data


def _video_only_mp4() -> bytes:
    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as out:
        stream = out.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = 16, 16, "yuv420p"
        for pts in range(3):
            frame = av.VideoFrame.from_ndarray(np.zeros((16, 16, 3), np.uint8), format="rgb24")
            frame.pts = pts
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return buf.getvalue()


def _truncated_flac() -> bytes:
    buf = io.BytesIO()
    sf.write(buf, synth_clip(4.0, 22050, seed=9), 22050, format="FLAC", subtype="PCM_16")
    return buf.getvalue()[: len(buf.getvalue()) // 2]


HOSTILE = {
    "random.wav": (bytes([0]) + np.random.default_rng(0).bytes(30000), "decode/not_audio"),
    "text.mp3": (b"just some text, not audio\n" * 40, "decode/not_audio"),
    "empty.flac": (b"", "decode/empty_file"),
    "truncated.flac": (_truncated_flac(), "decode/corrupt"),
    "rate0.wav": (_wav_header(0, 1), "decode/bad_header"),
    "rate_huge.wav": (_wav_header(10**9, 1), "decode/bad_header"),
    "channels100.wav": (_wav_header(16000, 100), "decode/bad_header"),
    "header_only.wav": (_wav_header(16000, 1)[:30], "decode/bad_header"),
    "video.mp4": (_video_only_mp4(), "decode/no_audio_stream"),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_files_are_rejected_with_exact_reason(tmp_path: Path, name: str) -> None:
    data, reason = HOSTILE[name]
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(AudioRejected) as caught:
        decode_all(path, target_rate=16000)
    assert caught.value.reason == reason
    if reason == "decode/corrupt":
        assert "decode error after" in caught.value.detail
    else:  # header-level problems are found by probe too
        with pytest.raises(AudioRejected) as probed:
            probe(path)
        assert probed.value.reason == reason


def test_input_errors(tmp_path: Path) -> None:
    for path, reason in [
        (tmp_path / "nope.wav", "input/missing_file"),
        (tmp_path, "input/not_a_file"),
    ]:
        with pytest.raises(AudioRejected) as caught:
            probe(path)
        assert caught.value.reason == reason


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_unreadable_file(tmp_path: Path) -> None:
    path = write_audio(tmp_path / "locked.wav", synth_clip(1.0, 16000, seed=1), 16000, "wav16")
    path.chmod(0)
    with pytest.raises(AudioRejected) as caught:
        probe(path)
    assert caught.value.reason == "input/unreadable"


def test_long_file_streams_in_bounded_memory(tmp_path: Path) -> None:
    path = write_long_recording(tmp_path / "long.flac", 20 * 60, 16000)
    tracemalloc.start()
    try:
        total = sum(len(c) for c in iter_decoded(path, target_rate=24000, block_seconds=5.0))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert abs(total - 20 * 60 * 24000) <= 1
    assert peak < 30e6, f"peak traced memory {peak / 1e6:.1f} MB"  # whole file would be 115 MB


def test_windows_cut_exactly_with_tail() -> None:
    signal = np.arange(1000, dtype=np.float32)
    cuts = [0, 7, 250, 251, 900, 1000]  # uneven chunks, one of a single sample
    chunks = [signal[a:b] for a, b in pairwise(cuts)]
    windows = list(iter_windows(chunks, 300))
    assert [i for i, _ in windows] == [0, 1, 2, 3]
    assert [len(w) for _, w in windows] == [300, 300, 300, 100]
    assert np.array_equal(np.concatenate([w for _, w in windows]), signal)
    assert [len(w) for _, w in iter_windows([signal[:600]], 300)] == [300, 300]  # no empty tail
    assert list(iter_windows([], 300)) == []


def test_windows_none_gives_everything_once() -> None:
    chunks = [np.ones(5, np.float32), np.zeros(3, np.float32)]
    (index, window), *rest = iter_windows(iter(chunks), None)
    assert index == 0 and not rest and np.array_equal(window, np.concatenate(chunks))
    assert [len(w) for _, w in iter_windows([], None)] == [0]
    with pytest.raises(ValueError):
        list(iter_windows(chunks, 0))


def test_flac_is_deterministic_and_round_trips() -> None:
    samples = synth_clip(2.0, 24000, seed=11)
    samples[:2] = [1.0, -1.0]  # full scale must survive (clipped to int16 range)
    data = encode_flac(samples, 24000)
    assert data == encode_flac(samples.copy(), 24000)
    decoded, rate = decode_flac(data)
    assert rate == 24000 and decoded.dtype == np.float32 and decoded.shape == samples.shape
    assert np.abs(decoded - samples).max() <= 1 / 32768 + 1e-7
    with pytest.raises(AudioRejected):
        decode_flac(b"fLaC" + bytes(100))


def test_container_is_sniffed_from_bytes_and_routed_to_the_faster_backend(clips: dict) -> None:
    """Ogg Vorbis goes to libsndfile; Ogg Opus to FFmpeg (2.8x faster); never by file name."""
    expected = {"ogg": ("ogg", "soundfile"), "opus": ("opus", "av"), "flac": ("flac", "soundfile"),
                "mp3": ("mp3", "av"), "m4a": ("mp4", "av"), "wav16": ("wav", "soundfile")}
    for fmt, (container, backend) in expected.items():
        info = probe(clips[fmt][0])
        assert (info.container, info.backend) == (container, backend), fmt


@pytest.mark.parametrize("channels", [2, 3, 5, 7, 8])
@pytest.mark.parametrize("layout", ["C", "F"])
def test_downmix_is_numpys_mean_bit_for_bit(channels: int, layout: str) -> None:
    """The column-by-column downmix (fast) must give exactly the samples NumPy's mean gives, for
    every channel count and memory layout a decoder hands over, float32 and float64."""
    from ualm.audio.decode import _downmix

    rng = np.random.default_rng(channels)
    block = rng.standard_normal((50_001, channels)) * rng.uniform(1e-3, 10, channels)
    for dtype in (np.float32, np.float64):
        data = np.asarray(block, dtype=dtype, order=layout)
        mono = _downmix(data)
        assert mono.dtype == np.float32 and mono.flags.c_contiguous
        np.testing.assert_array_equal(mono, data.mean(axis=1, dtype=np.float32))
