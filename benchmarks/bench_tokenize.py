"""Benchmark of codec tokenization, measured side by side in one run.

Batched tokenization (`Codec.encode`, the path `ualm tokenize` takes) against the naive loop of
the `encodec` README — one clip at a time, `model.encode(wav[None, None])` — on the same clips
and the same weights. Reports seconds of audio tokenized per second (real-time factor).

Bars: at least 2x the naive loop's throughput on CPU; and the two sides give the same codes
within a stated tolerance: every clip the same shape, at most 0.1 % of all codes different
(`--code-tolerance`). Batching pads clips together, so float rounding in the convolutions can
move a frame across a quantiser's decision boundary, which changes that frame's code in that
codebook and the residual the deeper codebooks quantise: a few clips differ in a few codes. The
figures say how many clips, codes and frames differ, and in which codebooks.

    .venv/bin/python benchmarks/bench_tokenize.py               # 200 clips of 2-15 s
    .venv/bin/python benchmarks/bench_tokenize.py --quick       # 20 clips, one repeat

Prints each bar, writes benchmarks/results/bench_tokenize.json (see _record.py), exits 1 when a
bar is missed.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import torch

from _record import Record, add_arguments
from ualm.audio.synthetic import synth_clip
from ualm.tokenize.codecs import load_codec
from ualm.tokenize.codecs._encodec_import import new_encodec_model

RATE = 24000
BAR = 2.0
CODE_TOLERANCE = 0.001
"""Largest share of all codes that may differ between the two sides."""


def naive_loop(model: torch.nn.Module, clips: list[np.ndarray]) -> list[np.ndarray]:
    """The encodec README, clip by clip."""
    out = []
    for clip in clips:
        wav = torch.from_numpy(clip)[None, None]
        with torch.no_grad():
            encoded_frames = model.encode(wav)
        codes = torch.cat([encoded[0] for encoded in encoded_frames], dim=-1)
        out.append(codes[0].numpy().astype(np.int16))
    return out


def code_differences(naive: list[np.ndarray], batched: list[np.ndarray]) -> dict:
    """How far the two sides' codes are apart: clips, codes and frames that differ."""
    shapes = sum(a.shape != b.shape for a, b in zip(naive, batched, strict=True))
    same = [(a, b) for a, b in zip(naive, batched, strict=True) if a.shape == b.shape]
    codes = sum(a.size for a, _ in same)
    diff = [(a != b) for a, b in same]
    per_codebook = (np.sum([d.sum(axis=1) for d in diff], axis=0).tolist() if diff else [])
    different = int(sum(int(d.sum()) for d in diff))
    return {"clips": len(naive), "clips_with_different_shapes": int(shapes),
            "clips_with_different_codes": int(sum(bool(d.any()) for d in diff) + shapes),
            "codes_compared": int(codes), "codes_different": different,
            "code_share_different": different / max(codes, 1),
            "frames_different": int(sum(int(d.any(axis=0).sum()) for d in diff)),
            "frames_compared": int(sum(a.shape[1] for a, _ in same)),
            "codes_different_per_codebook": [int(x) for x in per_codebook],
            "largest_share_in_one_clip": max((float(d.mean()) for d in diff), default=0.0)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=200)
    parser.add_argument("--bandwidth", type=float, default=6.0)
    parser.add_argument("--repeats", type=int, default=2, help="interleaved runs of each side")
    parser.add_argument("--code-tolerance", type=float, default=CODE_TOLERANCE,
                        help="largest share of all codes that may differ between the sides")
    add_arguments(parser)
    args = parser.parse_args()
    if args.quick:
        args.clips, args.repeats = 20, 1
    record = Record("bench_tokenize", args)
    log = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731

    lengths = np.random.default_rng(0).uniform(2.0, 15.0, size=args.clips)
    clips = [synth_clip(float(s), RATE, seed=10_000 + i).astype(np.float32)
             for i, s in enumerate(lengths)]
    audio_seconds = float(sum(len(c) for c in clips)) / RATE
    log(f"{args.clips} clips, {audio_seconds:.0f} s of audio; loading the random codec ...")
    codec = load_codec("random", bandwidth=args.bandwidth, device="cpu")
    model = new_encodec_model()
    model.load_state_dict(codec.state_dict())
    model.set_target_bandwidth(args.bandwidth)
    model.eval()

    runs: dict[str, list[float]] = {"naive": [], "batched": []}
    results: dict[str, list[np.ndarray]] = {}
    for repeat in range(args.repeats):
        for name, encode in [("naive", lambda: naive_loop(model, clips)),
                             ("batched", lambda: codec.encode(clips))]:
            started = time.perf_counter()
            results[name] = encode()
            runs[name].append(time.perf_counter() - started)
            log(f"[{repeat + 1}/{args.repeats}] {name}: {runs[name][-1]:.1f} s")
    differences = code_differences(results["naive"], results["batched"])
    best = {name: min(seconds) for name, seconds in runs.items()}
    speedup = round(best["naive"] / best["batched"], 3)
    figures = {
        "clips": args.clips,
        "audio_seconds": round(audio_seconds, 2),
        "bandwidth_kbps": args.bandwidth,
        "torch_threads": torch.get_num_threads(),
        "batch_rows": codec.batch_size,
        "naive_seconds": [round(s, 2) for s in runs["naive"]],
        "batched_seconds": [round(s, 2) for s in runs["batched"]],
        "naive_realtime_factor": round(audio_seconds / best["naive"], 2),
        "batched_realtime_factor": round(audio_seconds / best["batched"], 2),
        "speedup_vs_naive": speedup,
        "clips_with_different_codes": differences["clips_with_different_codes"],
        "code_differences": differences,
        "gpu": "CPU figures only" if not torch.cuda.is_available() else "a GPU was present",
    }
    bars = [record.bar("speedup_vs_naive", speedup, ">=", BAR, "best of each side"),
            record.bar("clips_with_different_shapes",
                       differences["clips_with_different_shapes"], "<=", 0),
            record.bar("code_share_different", round(differences["code_share_different"], 6),
                       "<=", args.code_tolerance,
                       f"{differences['codes_different']} of {differences['codes_compared']} "
                       f"codes in {differences['clips_with_different_codes']} of "
                       f"{args.clips} clips")]
    return record.finish(figures, bars)


if __name__ == "__main__":
    sys.exit(main())
