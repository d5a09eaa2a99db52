"""Benchmark of the engines, measured side by side in one run.

On the build benchmark's generated corpus (clips of every format, 2-16 s): `ualm build` on
Beam's DirectRunner (2 worker processes) against Dask (a LocalCluster of 2 workers), and each
against the single-process reference loop of `bench_build.py`. Beam may be slower than Dask;
the bar is within 2x. Both engines must write byte-identical corpora (checked). To say why Beam
is slower, the run also times one Beam stage that does nothing (pipeline construction, worker
start-up, result collection): a build pays that once per stage.

    .venv/bin/python benchmarks/bench_engines.py               # 2,000 clips (several minutes)
    .venv/bin/python benchmarks/bench_engines.py --quick       # 60 clips, one repeat

Bars: Beam's best build time under 2x Dask's, and the two corpora byte-identical. Prints each
bar, writes benchmarks/results/bench_engines.json (see _record.py), exits 1 when one is missed.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

from _record import Record, add_arguments
from bench_build import make_inputs, reference_loop
from ualm.config import BuildConfig
from ualm.engines.dask import DaskEngine
from ualm.pipelines.build import build_corpus

CONFIG = BuildConfig.from_dict({"tokenize": {"enabled": False}})  # the audio stages only


def nothing(unit: int) -> dict:
    return {"unit": unit}


def build(manifest: Path, out: Path, engine_name: str) -> float:
    """Seconds for a full build, engine start-up included."""
    from ualm.engines.beam import BeamEngine  # here: Dask workers re-import this
    # script, and importing Beam gives the root logger a handler (Dask's INFO lines then flow)

    shutil.rmtree(out, ignore_errors=True)
    started = time.perf_counter()
    engine = (DaskEngine(workers=2) if engine_name == "dask"
              else BeamEngine("DirectRunner", workers=2, report=None))
    with engine:
        build_corpus([manifest], out, CONFIG, engine=engine, progress=False)
    return time.perf_counter() - started


def tree_bytes(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and "_work" not in p.relative_to(root).parts}


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=2000)
    parser.add_argument("--out", type=Path, default=Path("bench-out"))
    parser.add_argument("--repeats", type=int, default=2, help="interleaved runs of each side")
    add_arguments(parser)
    args = parser.parse_args()
    if args.quick:
        args.clips, args.repeats = 60, 1
    record = Record("bench_engines", args)
    log(f"writing {args.clips} clips under {args.out}/inputs ...")
    manifest = make_inputs(args.out / "inputs", args.clips)
    runs = args.out / "engines"
    seconds: dict[str, list[float]] = {"reference": [], "dask_2_workers": [],
                                       "beam_direct_2_processes": []}
    for repeat in range(args.repeats):
        shutil.rmtree(runs / "reference", ignore_errors=True)
        started = time.perf_counter()
        reference_loop(manifest, runs / "reference")
        seconds["reference"].append(time.perf_counter() - started)
        seconds["dask_2_workers"].append(build(manifest, runs / "dask", "dask"))
        seconds["beam_direct_2_processes"].append(build(manifest, runs / "beam", "beam"))
        log(f"[{repeat + 1}/{args.repeats}] " + ", ".join(
            f"{name} {values[-1]:.1f} s" for name, values in seconds.items()))
    identical = tree_bytes(runs / "dask") == tree_bytes(runs / "beam")

    from ualm.engines.beam import BeamEngine

    engine = BeamEngine("DirectRunner", workers=2, report=None)
    started = time.perf_counter()
    engine.map(nothing, [0, 1], "nothing", scratch=runs)
    empty_stage = time.perf_counter() - started

    best = {name: min(values) for name, values in seconds.items()}
    beam, dask, reference = (best["beam_direct_2_processes"], best["dask_2_workers"],
                             best["reference"])
    figures = {
        "clips": args.clips,
        "repeats": args.repeats,
        "seconds": {name: [round(s, 2) for s in values] for name, values in seconds.items()},
        "identical_corpora_dask_beam": identical,
        "beam_empty_stage_seconds": round(empty_stage, 2),
        "beam_stages_per_build": 3,
        "ratios": {
            "dask_throughput_vs_reference": round(reference / dask, 3),
            "beam_throughput_vs_reference": round(reference / beam, 3),
            "beam_seconds_vs_dask": round(beam / dask, 3),
            "beam_overhead_share_of_gap": round(
                min(3 * empty_stage / max(beam - dask, 1e-9), 1.0), 3) if beam > dask else None,
        },
    }
    bars = [record.bar("beam_seconds_vs_dask", round(beam / dask, 3), "<", 2.0,
                       "best of each, engine start-up included"),
            record.bar("identical_corpora_dask_beam", int(identical), "==", 1,
                       "every file but _work/, byte for byte")]
    return record.finish(figures, bars)


if __name__ == "__main__":
    sys.exit(main())
