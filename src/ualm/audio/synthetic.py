"""Deterministic synthetic audio and a whole synthetic "world" (files + manifest).

Tests, benchmarks and the demo build their inputs from here: no network, no checked-in
files, and the same seed always gives the same samples (and, for lossless formats, bytes).
"""

from __future__ import annotations

import io
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf

from ualm.audio.encode import (
    EXTENSIONS,
    FORMATS,
    SOUNDFILE_FORMATS,
    write_audio,
    zero_peak_timestamp,
)

__all__ = [
    "EXTENSIONS",
    "FORMATS",
    "SyntheticWorld",
    "make_world",
    "synth_clip",
    "write_audio",
    "write_long_recording",
]


def synth_clip(seconds: float, sample_rate: int, seed: int, channels: int = 1) -> np.ndarray:
    """A varied, deterministic sound: tones, a chirp and noise bursts under an envelope.

    Peak is 0.45-0.55 (never clipped); one tone spans the whole clip so it is never silent.
    Returns float32 of shape (frames,) for mono, (frames, channels) otherwise.
    """
    rng = np.random.default_rng([seed, 0x5EED])
    n = max(1, round(seconds * sample_rate))
    top = 0.45 * sample_rate
    out = np.zeros((n, channels))

    def mix(part: np.ndarray, at: int) -> None:  # panned differently in every channel
        out[at : at + len(part)] += part[:, None] * rng.uniform(0.2, 1.0, channels)

    for k in range(int(rng.integers(1, 4))):
        a, b = (0, n) if k == 0 else np.sort(rng.integers(0, n, 2))
        f0 = 80.0 * 2 ** rng.uniform(0, 4.5)
        t = np.arange(b - a) / sample_rate
        vibrato = rng.uniform(0, 0.01) * f0 * np.sin(2 * np.pi * rng.uniform(0.5, 6) * t)
        phase = 2 * np.pi * np.cumsum(f0 + vibrato) / sample_rate
        harmonics = [h for h in range(1, int(rng.integers(2, 5))) if h * f0 < top]
        tone = sum(np.sin(h * phase) / h for h in harmonics)
        mix(_ramped(tone * rng.uniform(0.3, 1.0), sample_rate), a)
    a, b = np.sort(rng.integers(0, n, 2))
    f1, f2 = rng.uniform(200, min(4000, top), 2)
    freq = f1 * (f2 / f1) ** (np.arange(b - a) / max(b - a, 1))
    mix(_ramped(0.5 * np.sin(2 * np.pi * np.cumsum(freq) / sample_rate), sample_rate), a)
    for _ in range(int(rng.integers(1, 5))):
        length = max(1, min(n, round(rng.uniform(0.05, 0.5) * sample_rate)))
        at = int(rng.integers(0, n - length + 1))
        width = int(rng.integers(1, 17))  # a moving average colours the noise
        noise = np.convolve(rng.standard_normal(length), np.ones(width) / width, mode="same")
        mix(noise * np.exp(-np.arange(length) / (0.3 * length)) * rng.uniform(0.5, 2.0), at)
    t = np.arange(n) / sample_rate
    out *= (1 + 0.3 * np.sin(2 * np.pi * rng.uniform(0.1, 2) * t + rng.uniform(0, 6.3)))[:, None]
    out *= rng.uniform(0.45, 0.55) / max(float(np.abs(out).max()), 1e-9)
    out = out.astype(np.float32)
    return out[:, 0] if channels == 1 else out


def _ramped(x: np.ndarray, sample_rate: int) -> np.ndarray:
    """Fades x in and out over 20 ms so gated parts do not click."""
    ramp = min(round(0.02 * sample_rate), len(x) // 2)
    if ramp > 0:
        up = 0.5 - 0.5 * np.cos(np.pi * np.arange(ramp) / ramp)
        x[:ramp] *= up
        x[len(x) - ramp :] *= up[::-1]
    return x


def write_long_recording(
    path: str | os.PathLike[str], seconds: float, sample_rate: int, fmt: str = "flac", seed: int = 0
) -> Path:
    """Writes a long mono file block by block (10 s at a time) without holding it in memory."""
    if fmt not in SOUNDFILE_FORMATS:
        raise ValueError(f"long recordings need a soundfile format, not {fmt!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    total, block = round(seconds * sample_rate), 10 * sample_rate
    container, subtype = SOUNDFILE_FORMATS[fmt]
    with sf.SoundFile(path, "w", sample_rate, 1, subtype, format=container) as out:
        for index, at in enumerate(range(0, total, block)):
            rng = np.random.default_rng([seed, index])
            t = np.arange(at, min(at + block, total)) / sample_rate
            # 220 Hz +- 110 Hz glide over a minute; phase is a closed form of t, so blocks join.
            phase = 2 * np.pi * 220.0 * t - 60 * 110.0 * np.cos(2 * np.pi * t / 60)
            x = 0.3 * np.sin(phase) + 0.1 * np.sin(3 * phase)
            x += 0.05 * rng.standard_normal(len(t))
            out.write(x.astype(np.float32))
    if subtype == "FLOAT":
        with open(path, "r+b") as fh:  # the PEAK chunk sits in the header, before the data
            head = bytearray(fh.read(4096))
            zero_peak_timestamp(head)
            fh.seek(0)
            fh.write(head)
    return path


_SUBJECTS = {
    "a dog": ("barks twice", "growls", "whimpers"),
    "a car": ("passes", "honks", "starts its engine"),
    "a bird": ("sings", "chirps three times", "flaps its wings"),
    "a woman": ("laughs", "speaks softly", "claps"),
    "a bell": ("rings", "chimes slowly", "tolls twice"),
    "rain": ("falls on a roof", "patters on leaves", "drips into a bucket"),
    "a violin": ("plays a melody", "holds a long note", "is plucked"),
    "a crowd": ("cheers", "murmurs", "applauds"),
}


def _caption(rng: np.random.Generator) -> str:
    subjects = list(_SUBJECTS)
    a, b = (subjects[int(i)] for i in rng.choice(len(subjects), 2, replace=False))
    verb_a, verb_b = (_SUBJECTS[s][int(rng.integers(3))] for s in (a, b))
    return f"{a} {verb_a} then {b} {verb_b}"


@dataclass
class SyntheticWorld:
    """A folder of audio files plus a manifest, with the outcome each row should get."""

    root: Path
    manifest: Path
    expected: dict[str, str]  # id (or "line:<n>") -> "kept", "duplicate" or a reject reason
    formats: dict[str, str] = field(default_factory=dict)  # good clip id -> format written
    lines: list[str] = field(default_factory=list)  # manifest lines, as written

    @property
    def kept(self) -> list[str]:
        return [key for key, outcome in self.expected.items() if outcome == "kept"]

    def add(self, row: dict[str, object] | str, outcome: str, rng: np.random.Generator) -> None:
        """Appends a manifest row (a dict, or a raw line keyed by its 1-based line number)."""
        if isinstance(row, str):
            self.lines.append(row)
            self.expected[f"line:{len(self.lines)}"] = outcome
            return
        row.setdefault("caption", _caption(rng))
        row.setdefault("source", ("synthetic-a", "synthetic-b")[len(self.lines) % 2])
        row.setdefault("license", ("CC-BY-4.0", "CC0-1.0")[len(self.lines) % 3 == 0])
        self.lines.append(json.dumps(row))
        self.expected[str(row["id"])] = outcome


def make_world(
    root: str | os.PathLike[str],
    n_clips: int = 24,
    seed: int = 0,
    hostile: bool = True,
    sample_rate_choices: tuple[int, ...] = (16000, 22050, 24000, 44100, 48000),
    seconds_range: tuple[float, float] = (1.5, 25.0),
) -> SyntheticWorld:
    """Writes n_clips good clips (cycling FORMATS, rates, mono/stereo) and, if hostile, one
    file or manifest line per failure mode, each with its exact expected outcome."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng([seed, 0xA0D10])
    world = SyntheticWorld(root, root / "manifest.jsonl", {})
    wav16: tuple[str, np.ndarray, int] | None = None  # first wav16 clip, copied as a duplicate
    for i in range(n_clips):
        fmt, clip_id = FORMATS[i % len(FORMATS)], f"clip-{i:04d}"
        rate = int(sample_rate_choices[int(rng.integers(len(sample_rate_choices)))])
        seconds = round(float(rng.uniform(*seconds_range)), 2)
        samples = synth_clip(seconds, rate, seed=seed * 1_000_003 + i, channels=1 + i % 2)
        rel = f"{('sounds', 'music')[int(rng.integers(2))]}/{clip_id}.{EXTENSIONS[fmt]}"
        write_audio(root / rel, samples, rate, fmt)
        if fmt == "wav16" and wav16 is None:
            wav16 = (rel, samples, rate)
        world.formats[clip_id] = fmt
        world.add({"id": clip_id, "path": rel}, "kept", rng)
    if hostile:
        _add_hostile(world, rng, wav16)
    world.manifest.write_text("".join(line + "\n" for line in world.lines), encoding="utf-8")
    return world


def _add_hostile(
    world: SyntheticWorld, rng: np.random.Generator, wav16: tuple[str, np.ndarray, int] | None
) -> None:
    """One manifest row per failure mode; their files go to incoming/."""
    bad = world.root / "incoming"
    bad.mkdir(exist_ok=True)

    def add(file_id: str, path: str, outcome: str, **extra: object) -> None:
        world.add({"id": file_id, "path": path, **extra}, outcome, rng)

    noise = bytearray(rng.integers(0, 256, 48_000, dtype=np.uint8).tobytes())
    noise[0] = 0  # no magic number the decoder sniffs starts with a zero byte
    (bad / "random-bytes.wav").write_bytes(bytes(noise))
    add("bad-random-bytes", "incoming/random-bytes.wav", "decode/not_audio")

    flac = io.BytesIO()
    sf.write(flac, synth_clip(4.0, 22050, seed=int(rng.integers(1 << 30))), 22050, format="FLAC")
    cut = bytearray(flac.getvalue()[: len(flac.getvalue()) // 2])
    cut[len(cut) // 2 : len(cut) // 2 + 512] = rng.integers(0, 256, 512, dtype=np.uint8).tobytes()
    (bad / "truncated.flac").write_bytes(bytes(cut))  # damaged frames, then a missing end
    add("bad-truncated-flac", "incoming/truncated.flac", "decode/corrupt")

    (bad / "empty.flac").write_bytes(b"")
    add("bad-empty", "incoming/empty.flac", "decode/empty_file")
    (bad / "notes.mp3").write_text("This is not an mp3, just some notes.\n" * 20)
    add("bad-text-mp3", "incoming/notes.mp3", "decode/not_audio")

    rate = 16000
    write_audio(bad / "nan.wav", np.full(3 * rate, np.nan, np.float32), rate, "wav_f32")
    add("bad-nan", "incoming/nan.wav", "quality/non_finite")
    write_audio(bad / "silent.wav", np.zeros(3 * rate, np.float32), rate, "wav16")
    add("bad-silent", "incoming/silent.wav", "quality/silent")
    write_audio(bad / "short.wav", synth_clip(0.4, rate, seed=7), rate, "wav16")
    add("bad-short", "incoming/short.wav", "quality/too_short")
    # Full-scale int16 square wave: +32767 / -32768 decode to about +-1.0.
    square = np.where((np.arange(3 * rate) // 40) % 2 == 0, 32767, -32768).astype(np.int16)
    write_audio(bad / "clipped.wav", square, rate, "wav16")
    add("bad-clipped", "incoming/clipped.wav", "quality/clipped")

    if wav16 is not None:
        rel, samples, clip_rate = wav16
        add("dup-same-file", rel, "duplicate", caption="the same recording, listed again")
        write_audio(bad / "copy.flac", samples, clip_rate, "flac")  # same PCM_16 values
        add("dup-flac-copy", "incoming/copy.flac", "duplicate")

    add("bad-missing", "incoming/does-not-exist.wav", "input/missing_file")
    add("bad-escape", "../../etc/hostname", "input/outside_allowed_roots")
    world.add('{"id": "broken', "manifest/bad_json", rng)
    world.add({"id": "nopath", "caption": "x"}, "manifest/missing_path", rng)
    world.add({"id": "badtype", "path": 42}, "manifest/bad_type", rng)
