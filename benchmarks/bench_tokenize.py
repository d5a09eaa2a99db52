"""Benchmark of codec tokenization, measured side by side in one run.

Batched tokenization (`Codec.encode`, the path `ualm tokenize` takes) against the naive loop of
the `encodec` README — one clip at a time, `model.encode(wav[None, None])` — on the same clips
and the same weights. Bar: at least 2x the naive loop's throughput on CPU. Both sides must give
identical codes (checked). Reports seconds of audio tokenized per second (real-time factor).

    .venv/bin/python benchmarks/bench_tokenize.py               # 200 clips of 2-15 s
    .venv/bin/python benchmarks/bench_tokenize.py --clips 20    # smoke run

The last line printed is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np
import torch

from ualm.audio.synthetic import synth_clip
from ualm.tokenize.codecs import load_codec
from ualm.tokenize.codecs._encodec_import import new_encodec_model

RATE = 24000


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=200)
    parser.add_argument("--bandwidth", type=float, default=6.0)
    parser.add_argument("--repeats", type=int, default=2, help="interleaved runs of each side")
    args = parser.parse_args()
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
    mismatched = sum(not np.array_equal(a, b)
                     for a, b in zip(results["naive"], results["batched"], strict=True))
    best = {name: min(seconds) for name, seconds in runs.items()}
    print(json.dumps({
        "clips": args.clips,
        "audio_seconds": round(audio_seconds, 2),
        "bandwidth_kbps": args.bandwidth,
        "torch_threads": torch.get_num_threads(),
        "batch_rows": codec.batch_size,
        "naive_seconds": [round(s, 2) for s in runs["naive"]],
        "batched_seconds": [round(s, 2) for s in runs["batched"]],
        "naive_realtime_factor": round(audio_seconds / best["naive"], 2),
        "batched_realtime_factor": round(audio_seconds / best["batched"], 2),
        "speedup_vs_naive": round(best["naive"] / best["batched"], 3),
        "bar": 2.0,
        "clips_with_different_codes": mismatched,
        "gpu": "no GPU machine was lent to this task; CPU figures only",
    }, sort_keys=True))


if __name__ == "__main__":
    main()
