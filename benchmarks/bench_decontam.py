"""Benchmark of evaluation decontamination's audio matching on short clips (1-10 s).

Evaluation clips of 1-10 s from four kinds of sound, each made from its own seed:
`synth` (the package's `synth_clip`: tones, a chirp, noise bursts), `melody` (a sequence of
harmonic notes of random pitch and length), `texture` (band-passed noise under a slow random
envelope: wind, rain, engines) and `pulses` (pitched percussive hits at random times). Each
evaluation clip is copied six ways, as a corpus would hold it: re-encoded to MP3 and to Opus,
trimmed (10-30 % cut from both ends at random samples, then MP3), louder and quieter (+6 dB,
-12 dB), and resampled (to 8 kHz and to 22.05 kHz). Unrelated clips are made the same way from
other seeds (the same four kinds, 1-10 s), so a false match would be a near miss of a similar
sound, not of silence.

Every file is decoded at the corpus rate (16 kHz) and fingerprinted as `ualm build` does for
decontamination (`ualm.filters.eval_audio`: a slowed Chromaprint and offset voting). Recall:
copies matched to their own evaluation clip. Precision: right matches over all matches (copies
matched to another clip and unrelated clips matched at all count against it). Bars: recall
>= 0.95 and precision >= 0.99. The same copies under near-dedup's plain comparison (Chromaprint
at the real rate, +-2 items) are reported for contrast.

    .venv/bin/python benchmarks/bench_decontam.py           # 200 evaluation clips
    .venv/bin/python benchmarks/bench_decontam.py --quick   # 24

Prints each bar, writes benchmarks/results/bench_decontam.json (see _record.py), exits 1 when a
bar is missed.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np
import soxr

from _record import Record, add_arguments
from ualm.audio.decode import iter_decoded
from ualm.audio.synthetic import synth_clip, write_audio
from ualm.config import DecontamConfig
from ualm.filters.eval_audio import EvalAudioIndex, slow_fingerprint
from ualm.filters.fingerprint import StreamingFingerprint, bit_error_rate

RATE = 16000
SOURCE_RATE = 44100
KINDS = ("synth", "melody", "texture", "pulses")
LENGTHS = ("1-3 s", "3-10 s")
COPIES = ("mp3", "opus", "trim_mp3", "gain_up", "gain_down", "resample_8k", "resample_22k")


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def melody(seconds: float, rng: np.random.Generator) -> np.ndarray:
    out, at, n = np.zeros(round(seconds * SOURCE_RATE)), 0, round(seconds * SOURCE_RATE)
    while at < n:
        length = min(n - at, round(rng.uniform(0.08, 0.6) * SOURCE_RATE))
        t = np.arange(length) / SOURCE_RATE
        f0 = 110.0 * 2 ** (rng.integers(0, 36) / 12)
        note = sum(np.sin(2 * np.pi * h * f0 * t) / h ** rng.uniform(1, 2) for h in range(1, 6))
        out[at:at + length] = note * np.exp(-t * rng.uniform(1, 8))
        at += length
    return out


def texture(seconds: float, rng: np.random.Generator) -> np.ndarray:
    n = round(seconds * SOURCE_RATE)
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1 / SOURCE_RATE)
    centre, width = rng.uniform(150, 6000), rng.uniform(0.3, 2.0)
    spectrum *= np.exp(-0.5 * (np.log2(np.maximum(freqs, 1) / centre) / width) ** 2)
    noise = np.fft.irfft(spectrum, n)
    knots = rng.uniform(0.2, 1.0, max(2, int(seconds * rng.uniform(1, 6))))
    return noise * np.interp(np.linspace(0, len(knots) - 1, n), np.arange(len(knots)), knots)


def pulses(seconds: float, rng: np.random.Generator) -> np.ndarray:
    n = round(seconds * SOURCE_RATE)
    out = 0.02 * rng.standard_normal(n)
    for _ in range(max(1, int(seconds * rng.uniform(2, 8)))):
        at = int(rng.integers(0, n))
        length = min(n - at, round(rng.uniform(0.03, 0.3) * SOURCE_RATE))
        t = np.arange(length) / SOURCE_RATE
        hit = np.sin(2 * np.pi * rng.uniform(60, 2000) * t) + 0.5 * rng.standard_normal(length)
        out[at:at + length] += hit * np.exp(-t * rng.uniform(10, 60))
    return out


def make_clip(kind: str, seed: int) -> np.ndarray:
    rng = np.random.default_rng([seed, KINDS.index(kind)])
    seconds = float(rng.uniform(1.0, 10.0))
    if kind == "synth":
        x = synth_clip(seconds, SOURCE_RATE, seed=seed).astype(np.float64)
    else:
        x = {"melody": melody, "texture": texture, "pulses": pulses}[kind](seconds, rng)
    return (0.5 * x / max(float(np.abs(x).max()), 1e-9)).astype(np.float32)


def write_copy(folder: Path, name: str, clip: np.ndarray, how: str,
               rng: np.random.Generator) -> Path:
    if how in ("mp3", "opus"):
        return write_audio(folder / f"{name}.{how}", clip, SOURCE_RATE, how)
    if how == "trim_mp3":
        n = len(clip)
        head, tail = (int(n * rng.uniform(0.1, 0.3)) for _ in range(2))
        return write_audio(folder / f"{name}.mp3", clip[head:n - tail], SOURCE_RATE, "mp3")
    if how.startswith("gain"):
        gain = 10 ** ((6 if how == "gain_up" else -12) / 20)
        return write_audio(folder / f"{name}.flac", clip * gain, SOURCE_RATE, "flac")
    rate = 8000 if how == "resample_8k" else 22050
    resampled = soxr.resample(clip, SOURCE_RATE, rate, "HQ")
    return write_audio(folder / f"{name}.wav", resampled, rate, "wav16")


def fingerprints(path: Path, max_seconds: float) -> tuple[np.ndarray, np.ndarray]:
    """(the decontamination fingerprint, near-dedup's plain one) of a file at the corpus rate."""
    audio = np.concatenate(list(iter_decoded(path, target_rate=RATE)))
    plain = StreamingFingerprint(RATE, max_seconds)
    plain.feed(audio)
    return slow_fingerprint([audio], RATE, max_seconds), plain.finish()


def plain_match(query: np.ndarray, clips: list[np.ndarray], max_bit_error: float) -> int | None:
    """Near-dedup's comparison against every clip (+-2 items), for contrast."""
    best = min(((bit_error_rate(query, c), i) for i, c in enumerate(clips) if len(c)),
               default=(1.0, None))
    return best[1] if len(query) and best[0] <= max_bit_error else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=200, help="evaluation clips")
    parser.add_argument("--unrelated", type=int, default=800)
    parser.add_argument("--max-bit-error", type=float, default=DecontamConfig.max_bit_error,
                        help="decontam.max_bit_error to measure at")
    add_arguments(parser)
    args = parser.parse_args()
    if args.quick:
        args.clips, args.unrelated = 24, 80
    record = Record("bench_decontam", args)
    config = DecontamConfig(eval_sets=["bench"], max_bit_error=args.max_bit_error)
    rng = np.random.default_rng(7)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        eval_prints, plain_prints, queries, seconds = [], [], [], []
        for i in range(args.clips):
            kind = KINDS[i % len(KINDS)]
            clip = make_clip(kind, 1000 + i)
            seconds.append(len(clip) / SOURCE_RATE)
            slow, plain = fingerprints(write_audio(folder / f"eval{i}.flac", clip, SOURCE_RATE,
                                                   "flac"), config.max_seconds)
            eval_prints.append(slow)
            plain_prints.append(plain)
            for how in COPIES:
                path = write_copy(folder, f"copy{i}-{how}", clip, how, rng)
                queries.append((i, kind, how, *fingerprints(path, config.max_seconds)))
        for j in range(args.unrelated):
            kind = KINDS[j % len(KINDS)]
            path = write_audio(folder / f"other{j}.flac", make_clip(kind, 900_000 + j),
                               SOURCE_RATE, "flac")
            queries.append((None, kind, "unrelated", *fingerprints(path, config.max_seconds)))
    prepared = time.perf_counter() - started
    index = EvalAudioIndex(eval_prints, config.max_bit_error, config.min_overlap,
                           config.min_items)
    started = time.perf_counter()
    results = [(truth, kind, how, index.match(slow)) for truth, kind, how, slow, _ in queries]
    match_seconds = time.perf_counter() - started
    nearest = [index.nearest(q[3]) for q in queries]
    nearest_right = sorted(f[1] for f, q in zip(nearest, queries, strict=True)
                           if f is not None and f[0] == q[0])
    closest_unrelated = min((f[1] for f, q in zip(nearest, queries, strict=True)
                             if f is not None and q[0] is None), default=1.0)
    tally = Counter[tuple[str, str]]()
    plain = Counter[str]()
    errors = []
    by_kind, by_length = Counter[str](), Counter[tuple[str, bool]]()
    for (truth, kind, how, found), (*_, plain_print) in zip(results, queries, strict=True):
        got = None if found is None else found[0]
        outcome = ("miss" if got is None else "right") if truth is not None else (
            "unrelated_clear" if got is None else "false")
        if truth is not None and got is not None and got != truth:
            outcome = "wrong"
        tally[(how, outcome)] += 1
        by_kind[kind] += outcome == "right"
        if truth is not None:
            by_length[(LENGTHS[seconds[truth] >= 3.0], outcome == "right")] += 1
        if found is not None:
            errors.append((outcome, found[1]))
        if truth is not None:
            plain[how] += plain_match(plain_print, plain_prints, 0.1) == truth
    positives = args.clips * len(COPIES)
    right = sum(n for (_, o), n in tally.items() if o == "right")
    matched = sum(n for (_, o), n in tally.items() if o in ("right", "wrong", "false"))
    recall = right / positives
    precision = right / matched if matched else 0.0
    per_copy = {how: round(tally[(how, "right")] / args.clips, 4) for how in COPIES}
    figures = {
        "evaluation_clips": args.clips, "copies": positives, "unrelated_clips": args.unrelated,
        "kinds": list(KINDS), "copy_kinds": list(COPIES),
        "recall": round(recall, 4), "precision": round(precision, 4),
        "recall_by_copy": per_copy,
        "false_matches_unrelated": tally[("unrelated", "false")],
        "wrong_clip_matches": sum(n for (_, o), n in tally.items() if o == "wrong"),
        "bit_error_of_right_matches_max": round(max((e for o, e in errors if o == "right"),
                                                    default=0.0), 4),
        "bit_error_of_false_matches_min": round(min((e for o, e in errors if o != "right"),
                                                    default=1.0), 4),
        "closest_unrelated_bit_error": round(closest_unrelated, 4),
        "copies_bit_error_quantiles": {
            q: round(float(np.quantile(nearest_right, q)), 4) if nearest_right else None
            for q in (0.5, 0.9, 0.95, 0.99, 1.0)},
        "near_dedup_plain_recall_by_copy": {how: round(plain[how] / args.clips, 4)
                                            for how in COPIES},
        "recall_by_kind": {kind: round(by_kind[kind] / (positives / len(KINDS)), 4)
                           for kind in KINDS},
        "recall_by_length": {name: round(by_length[(name, True)] / max(
            by_length[(name, True)] + by_length[(name, False)], 1), 4) for name in LENGTHS},
        "shortest_evaluation_fingerprint_items": min(len(p) for p in eval_prints),
        "config": {"max_bit_error": config.max_bit_error, "min_overlap": config.min_overlap,
                   "min_items": config.min_items, "corpus_rate": RATE},
        "prepare_seconds": round(prepared, 1),
        "match_ms_per_query": round(1000 * match_seconds / len(queries), 3),
    }
    log(str(figures))
    bars = [record.bar("recall", round(recall, 4), ">=", 0.95,
                       "copies matched to their own evaluation clip"),
            record.bar("precision", round(precision, 4), ">=", 0.99,
                       "right matches over all matches, unrelated clips included")]
    return record.finish(figures, bars)


if __name__ == "__main__":
    sys.exit(main())
