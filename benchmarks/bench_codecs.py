"""Benchmark of batched tokenization with X-codec, DAC and Mimi against a naive per-clip loop.

For each codec (the seeded small random model of transformers' class: the same code path as a
real checkpoint, with narrow layers), on CPU: `codec.encode(clips)` (the path `ualm tokenize`
takes: clips padded to whole buckets, grouped by padded length, several per forward pass)
against the loop a user writes first, `model.encode(clip[None, None])` one unpadded clip at a
time (`encode_reference`). Two clip sets: 10 s clips (UALM's and ETTA's chunk length, so whole
batches share one length) and clips of 2-15 s (X-codec pads to a whole frame only, so its
batches there are mostly single clips). Reports seconds of audio per second (real-time factor).

The codes: batched codes equal per-clip batched codes (`tests/test_codec_kinds.py`); against the
naive loop they differ where padding reaches the model: the last frames of a clip (DAC, Mimi)
and, for X-codec, wherever HuBERT's whole-clip normalisation sees the padding to a whole frame.
The share that differs is reported, not barred.

    .venv/bin/python benchmarks/bench_codecs.py            # 16 clips per set
    .venv/bin/python benchmarks/bench_codecs.py --quick    # 4 clips per set, one repeat

Bars: batched at least as fast as the naive loop on the 10 s clips, per codec.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import torch

from _record import Record, add_arguments
from ualm.audio.synthetic import synth_clip
from ualm.tokenize.codecs import KINDS, load_codec

BAR = 1.0


def differing_share(naive: list[np.ndarray], batched: list[np.ndarray]) -> float:
    """Share of codes that differ, over the frames both sides have."""
    differ = total = 0
    for a, b in zip(naive, batched, strict=True):
        frames = min(a.shape[1], b.shape[1])
        differ += int((a[:, :frames] != b[:, :frames]).sum())
        total += a.shape[0] * frames
    return differ / max(total, 1)


def measure(codec: object, clips: list[np.ndarray], repeats: int, log: object) -> dict:
    runs: dict[str, list[float]] = {"naive": [], "batched": []}
    out: dict[str, list[np.ndarray]] = {}
    sides = [("naive", lambda: [codec.encode_reference(c) for c in clips]),
             ("batched", lambda: codec.encode(clips))]
    for _ in range(repeats):
        for name, encode in sides:
            started = time.perf_counter()
            out[name] = encode()
            runs[name].append(time.perf_counter() - started)
    seconds = sum(len(c) for c in clips) / codec.info.sample_rate
    best = {name: min(times) for name, times in runs.items()}
    log(f"  {len(clips)} clips ({seconds:.0f} s): naive {best['naive']:.2f} s, "
        f"batched {best['batched']:.2f} s")
    return {"clips": len(clips), "audio_seconds": round(seconds, 2),
            "naive_seconds": [round(s, 3) for s in runs["naive"]],
            "batched_seconds": [round(s, 3) for s in runs["batched"]],
            "naive_realtime_factor": round(seconds / best["naive"], 2),
            "batched_realtime_factor": round(seconds / best["batched"], 2),
            "speedup_vs_naive": round(best["naive"] / best["batched"], 3),
            "code_share_different_from_naive": round(differing_share(out["naive"],
                                                                     out["batched"]), 6)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=16, help="clips per set")
    parser.add_argument("--repeats", type=int, default=2, help="interleaved runs of each side")
    parser.add_argument("--kinds", nargs="+", default=sorted(KINDS), choices=sorted(KINDS))
    add_arguments(parser)
    args = parser.parse_args()
    if args.quick:
        args.clips, args.repeats = 4, 1
    record = Record("bench_codecs", args)
    log = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731
    varied = np.random.default_rng(0).uniform(2.0, 15.0, size=args.clips)
    figures: dict = {"torch_threads": torch.get_num_threads(), "device": "cpu"}
    bars = []
    for kind in args.kinds:
        codec = load_codec(f"random:{kind}", device="cpu")
        rate = codec.info.sample_rate
        log(f"{codec.info.codec_id}: {sum(p.numel() for p in codec._model.parameters()):,} "
            f"parameters, batch {codec.batch_size}")
        sets = {"10s": [synth_clip(10.0, rate, seed=20_000 + i) for i in range(args.clips)],
                "2-15s": [synth_clip(float(s), rate, seed=30_000 + i)
                          for i, s in enumerate(varied)]}
        figures[kind] = {"codec_id": codec.info.codec_id, "batch_size": codec.batch_size,
                         "parameters": sum(p.numel() for p in codec._model.parameters()),
                         **{name: measure(codec, clips, args.repeats, log)
                            for name, clips in sets.items()}}
        bars.append(record.bar(f"{kind}_speedup_10s", figures[kind]["10s"]["speedup_vs_naive"],
                               ">=", BAR, "best of each side, 10 s clips"))
    return record.finish(figures, bars)


if __name__ == "__main__":
    sys.exit(main())
