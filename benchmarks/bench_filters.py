"""Benchmark of the optional filters: what each one costs, measured side by side in one run.

1. Clips per second per filter on CPU, on the same 10 s clips: caption checks, EBU R128
   loudness, Silero VAD, Chromaprint fingerprints (the near-dedup input).
2. The end-to-end build (Dask, 2 workers) with the `sound-captions` and `speech` presets, and
   with every filter on, against the plain build, on the same inputs. Whisper and CLAP are
   timed per clip with random weights at their real sizes (Whisper tiny, LAION-CLAP HTSAT):
   weights cannot be fetched here, and their values do not change the compute.
3. Near-dedup's reduce on 2,000 and 20,000 fingerprints (a tenth of them noisy copies): time and
   peak memory of band keys + shuffle + comparisons, and how both grow. Bar: close to linear,
   stated as: time and memory grow at most 2x the size's growth (10x the fingerprints: at most
   20x; a step that compared all pairs would grow 100x), and every planted copy is found.

    .venv/bin/python benchmarks/bench_filters.py              # full run (a few minutes)
    .venv/bin/python benchmarks/bench_filters.py --quick      # 20 clips, 2,000 fingerprints

Parts 1 and 2 are reported without bars. Prints each bar, writes
benchmarks/results/bench_filters.json (see _record.py), exits 1 when a bar is missed.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
import tracemalloc
from collections import defaultdict
from pathlib import Path

import numpy as np

from _record import Record, add_arguments
from ualm.audio.synthetic import synth_clip, write_audio
from ualm.config import BuildConfig, CaptionConfig
from ualm.filters.captions import check_caption
from ualm.filters.fingerprint import StreamingFingerprint, band_keys
from ualm.filters.loudness import integrated_loudness
from ualm.filters.vad import detect_speech, detect_speech_batch
from ualm.pipelines.build import build_corpus
from ualm.pipelines.ingest import ANNOTATION_BATCH
from ualm.pipelines.near_dedup import near_pairs

RATE = 24000
GROWTH_FACTOR = 2.0
"""Largest growth of time (and memory) per growth of size that counts as close to linear."""
FILTERS_ON = {"captions": {"enabled": True}, "loudness": {"enabled": True},
              "vad": {"enabled": True}, "near_dedup": {"enabled": True}}


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def per_filter(clips: list[np.ndarray]) -> dict[str, float]:
    """Clips per second of each filter alone (one process, one thread of work)."""
    captions = [f"a recording of event {i} with a dog barking twice" for i in range(len(clips))]
    config = CaptionConfig(enabled=True)

    def fingerprint(clip: np.ndarray) -> None:
        stream = StreamingFingerprint(RATE, 120.0)
        stream.feed(clip)
        stream.finish()

    def vad_batched(i: int) -> None:  # as ingest runs it: 8 windows at a time
        if i % ANNOTATION_BATCH == 0:
            detect_speech_batch(clips[i : i + ANNOTATION_BATCH], RATE)

    detect_speech(clips[0], RATE)  # loads the model once, as a worker does
    rates = {}
    for name, run in [("captions", lambda i: check_caption(captions[i], config)),
                      ("loudness", lambda i: integrated_loudness(clips[i], RATE)),
                      ("vad_one_by_one", lambda i: detect_speech(clips[i], RATE)),
                      ("vad_batched", vad_batched),
                      ("chromaprint", lambda i: fingerprint(clips[i]))]:
        started = time.perf_counter()
        for i in range(len(clips)):
            run(i)
        rates[name] = round(len(clips) / (time.perf_counter() - started), 1)
        log(f"  {name}: {rates[name]} clips/s")
    return rates


def full_size_models(folder: Path) -> dict[str, Path]:
    """Randomly initialised models of the real sizes (weights cannot be fetched here; compute
    does not depend on the weights' values): Whisper tiny's dimensions as an openai-whisper
    checkpoint, and LAION-CLAP's default (HTSAT-unfused) architecture as a Hugging Face folder."""
    import dataclasses

    import torch
    from transformers import ClapConfig, ClapFeatureExtractor, ClapModel, ClapProcessor
    from whisper.model import ModelDimensions, Whisper

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from tests.model_factories import tiny_clap_folder  # its tokenizer, with CLAP's real sizes

    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    dims = ModelDimensions(n_mels=80, n_audio_ctx=1500, n_audio_state=384, n_audio_head=6,
                           n_audio_layer=4, n_vocab=51865, n_text_ctx=448, n_text_state=384,
                           n_text_head=6, n_text_layer=4)  # whisper "tiny"
    whisper = Whisper(dims)
    with torch.no_grad():
        whisper.decoder.positional_embedding.normal_(0, 0.02)
    checkpoint = folder / "whisper-tiny-random.pt"
    torch.save({"dims": dataclasses.asdict(dims), "model_state_dict": whisper.state_dict()},
               checkpoint)
    small = tiny_clap_folder(folder / "clap-tokenizer")
    processor = ClapProcessor.from_pretrained(small)
    config = ClapConfig(text_config={"vocab_size": len(processor.tokenizer)})
    ClapModel(config).save_pretrained(folder / "clap")
    ClapProcessor(feature_extractor=ClapFeatureExtractor(truncation="rand_trunc"),
                  tokenizer=processor.tokenizer).save_pretrained(folder / "clap")
    return {"whisper": checkpoint, "clap": folder / "clap"}


def model_rates(clips: list[np.ndarray], folder: Path) -> dict[str, float]:
    """Clips/s of Whisper language ID (no transcript: a random decoder never stops, so its
    transcripts would time the token cap, not the model) and CLAP audio embeddings."""
    from ualm.filters.clap import load_clap
    from ualm.filters.whisper import load_whisper

    models = full_size_models(folder)
    whisper, clap = load_whisper(models["whisper"], "cpu"), load_clap(models["clap"], "cpu")
    rates = {}
    for name, run in [("whisper_tiny_language", lambda: whisper.detect(clips, RATE,
                                                                        transcribe=False)),
                      ("clap_htsat_audio_embedding", lambda: clap.audio_embeddings(clips, RATE))]:
        started = time.perf_counter()
        run()
        rates[name] = round(len(clips) / (time.perf_counter() - started), 1)
        log(f"  {name}: {rates[name]} clips/s")
    return rates


def end_to_end(folder: Path, out: Path) -> dict[str, float]:
    """The plain build against the packaged presets and against every filter at once."""
    seconds = {}
    for name, preset, extra in [("plain", None, {}), ("sound-captions", "sound-captions", {}),
                                ("speech", "speech", {}), ("all_filters", None, FILTERS_ON)]:
        shutil.rmtree(out / name, ignore_errors=True)
        base = BuildConfig.from_sources(preset).to_dict() if preset else {}
        config = BuildConfig.from_dict({**base, **extra, "tokenize": {"enabled": False}})
        started = time.perf_counter()
        build_corpus([folder], out / name, config, engine="dask", workers=2, progress=False)
        seconds[name] = round(time.perf_counter() - started, 2)
        log(f"  build {name}: {seconds[name]} s")
    return seconds


def synthetic_fingerprints(count: int, items: int = 240, seed: int = 0) -> list[np.ndarray]:
    """Random fingerprints; every tenth is a copy of an earlier one with 0.5 % of bits flipped."""
    rng = np.random.default_rng(seed)
    out: list[np.ndarray] = []
    for i in range(count):
        if i % 10 == 9:
            flips = rng.random((items, 32)) < 0.005
            noise = np.packbits(flips, axis=1, bitorder="little").view("<u4")[:, 0]
            out.append(out[int(rng.integers(0, i))] ^ noise)
        else:
            out.append(rng.integers(0, 2**32, size=items, dtype=np.uint64).astype(np.uint32))
    return out


def near_dedup_scaling(count: int, bands: int = 8, buckets: int = 8) -> dict[str, float]:
    """Band keys, the shuffle (in memory, as one process would see all buckets) and each
    bucket's comparisons; timed without tracing, then run again under tracemalloc for memory."""
    fingerprints = synthetic_fingerprints(count)

    def run() -> int:
        shuffled: dict[int, list] = defaultdict(list)  # what the engine's shuffle delivers
        for index, fp in enumerate(fingerprints):
            values = fp.tolist()
            for key in band_keys(fp, bands):
                shuffled[key % buckets].append((key, index, values))
        pairs: set[tuple[int, int]] = set()  # a pair found in several buckets counts once
        for bucket in sorted(shuffled):
            edges, _ = near_pairs(shuffled[bucket], 0.1)
            pairs.update((e["a"], e["b"]) for e in edges)
        return len(pairs)

    started = time.perf_counter()
    pairs = run()
    seconds = time.perf_counter() - started
    tracemalloc.start()
    run()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {"fingerprints": count, "seconds": round(seconds, 3),
            "peak_mib": round(peak / 2**20, 1), "near_pairs": pairs}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=100)
    parser.add_argument("--fingerprints", type=int, default=20000)
    parser.add_argument("--out", type=Path, default=Path("bench-out") / "filters")
    add_arguments(parser)
    args = parser.parse_args()
    if args.quick:
        args.clips, args.fingerprints = 20, 2000
    record = Record("bench_filters", args)

    log(f"{args.clips} clips of 10 s ...")
    clips = [synth_clip(10.0, RATE, seed=3000 + i) for i in range(args.clips)]
    folder = args.out / "inputs"
    folder.mkdir(parents=True, exist_ok=True)
    for i, clip in enumerate(clips):
        write_audio(folder / f"clip-{i:04d}.flac", clip, RATE, "flac")
    log("per filter:")
    rates = per_filter(clips)
    rates.update(model_rates(clips[:16], args.out / "models"))
    log("end to end:")
    builds = end_to_end(folder, args.out / "runs")
    log("near-dedup scaling:")
    small = near_dedup_scaling(args.fingerprints // 10)
    large = near_dedup_scaling(args.fingerprints)
    log(f"  {small}\n  {large}")
    growth = large["fingerprints"] / small["fingerprints"]
    time_growth = large["seconds"] / small["seconds"]
    memory_growth = large["peak_mib"] / max(small["peak_mib"], 0.1)
    planted = {"small": (args.fingerprints // 10) // 10, "large": args.fingerprints // 10}
    figures = {
        "clips": args.clips,
        "clips_per_second": rates,
        "build_seconds": builds,
        "build_slowdown_vs_plain": {name: round(value / builds["plain"], 3)
                                    for name, value in builds.items() if name != "plain"},
        "near_dedup": {"small": small, "large": large,
                       "time_growth": round(time_growth, 2),
                       "memory_growth": round(memory_growth, 2),
                       "size_growth": round(growth, 2), "planted_copies": planted},
    }
    bars = [record.bar("near_dedup_time_growth_per_size_growth", round(time_growth / growth, 3),
                       "<=", GROWTH_FACTOR, f"time grew {time_growth:.2f}x for {growth:.0f}x "
                       "the fingerprints"),
            record.bar("near_dedup_memory_growth_per_size_growth",
                       round(memory_growth / growth, 3), "<=", GROWTH_FACTOR,
                       f"peak memory grew {memory_growth:.2f}x"),
            record.bar("near_dedup_planted_copies_found_large",
                       large["near_pairs"], ">=", planted["large"],
                       "every tenth fingerprint is a noisy copy of an earlier one")]
    return record.finish(figures, bars)


if __name__ == "__main__":
    sys.exit(main())
