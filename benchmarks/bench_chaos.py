"""Benchmark of randomised kills: the full trial counts of tests/test_chaos.py.

On a synthetic world (good clips of every format plus every kind of hostile input; 48 clips by
default, units of 5 so that a build has many units): one Dask build during which a random worker
(with its nanny) is SIGKILLed at a random moment 10 times in a row, replaced each time; the
whole `ualm build` job (its process group) SIGKILLed at random moments 5 times on Dask and 2
times on Beam, resumed after each; one of a Beam build's worker processes SIGKILLed 3 times (the
build stops with one line, never hangs, and a rerun resumes); `ualm synth` killed 3 times with
teacher calls in flight (the loopback teacher) and `ualm publish` 3 times with uploads in flight
(the loopback Hub). Every completed run is compared with a clean one, byte for byte, and its
books checked (each input kept, rejected or a duplicate exactly once; each trace and file once;
no trusted half-published revision).

    .venv/bin/python benchmarks/bench_chaos.py              # the counts above (~15 min)
    .venv/bin/python benchmarks/bench_chaos.py --quick      # 2 worker kills, 1 of each other
    .venv/bin/python benchmarks/bench_chaos.py --seed N     # replay a run's trials

Every trial's seed is derived from one printed seed. Prints trials, identical outcomes and the
slowest recovery as a final JSON line; bars: every trial identical and accounted, and the kill
counts reached. Writes benchmarks/results/bench_chaos.json (see _record.py).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]  # _record, and the tests' servers and trials
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from tests.chaos import JobChaos  # noqa: E402

from _record import Record, add_arguments  # noqa: E402


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def run_trial(name: str, seed: int, fn: Callable[[int], Any], rows: list[dict]) -> None:
    """Runs one trial, recording its kills, checked runs and seconds, or the failure."""
    log(f"{name}: seed {seed} ...")
    started = time.monotonic()
    row: dict[str, Any] = {"trial": name, "seed": seed}
    try:
        result = fn(seed)
        row["ok"] = True
        if isinstance(result, JobChaos):
            row.update(kills=len(result.kills), kill_moments_s=result.kills,
                       checked_runs=result.checked, early_finishes=result.early_finishes,
                       recovery_s=round(result.completions[-1], 2))
        else:
            row.update(kills=result[0], checked_runs=1, build_s=round(result[1], 2))
    except AssertionError as exc:  # a mixed corpus, a lost input, a doubled trace
        row.update(ok=False, error=str(exc)[:2000])
    row["seconds"] = round(time.monotonic() - started, 2)
    log(f"{name}: {row}")
    rows.append(row)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=48)
    parser.add_argument("--seed", type=int, default=None, help="replay (default: a fresh one)")
    parser.add_argument("--worker-kills", type=int, default=10)
    parser.add_argument("--job-kills", type=int, default=5)
    parser.add_argument("--beam-kills", type=int, default=2)
    parser.add_argument("--beam-worker-kills", type=int, default=3)
    parser.add_argument("--synth-kills", type=int, default=3)
    parser.add_argument("--publish-kills", type=int, default=3)
    add_arguments(parser)
    args = parser.parse_args()
    if args.quick:
        args.clips, args.worker_kills, args.job_kills = 12, 2, 1
        args.beam_kills = args.beam_worker_kills = args.synth_kills = args.publish_kills = 1
    record = Record("bench_chaos", args)
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(2**32)
    log(f"chaos seed {seed} (replay with --seed {seed})")
    seeds = random.Random(seed)

    tmp = Path(tempfile.mkdtemp(prefix="ualm-chaos-"))
    os.environ.setdefault("UALM_CACHE", str(tmp / "cache"))
    from tests import chaos_trials as trial

    from ualm.audio.synthetic import make_world
    from ualm.config import BuildConfig
    from ualm.pipelines.build import build_corpus

    config = BuildConfig.from_dict({"shards": {"max_samples": 7}, "tokenize": {"enabled": False},
                                    "work": {"unit_size": 5, "dedup_buckets": 3}})
    world = make_world(tmp / "world", n_clips=args.clips, seed=7)
    started = time.monotonic()
    build_corpus([world.manifest], tmp / "clean", config, engine="local", progress=False)
    clean_s = time.monotonic() - started
    build = trial.BuildInputs.of(world.manifest, config, tmp / "clean", tmp)
    corpus = synthed_corpus(tmp / "synth")

    rows: list[dict] = []
    trials: list[tuple[str, Callable[[int], Any]]] = [
        ("dask_worker_kills", lambda s: (args.worker_kills, trial.worker_kills(
            build, tmp / "workers", s, args.worker_kills))),
        ("dask_job_kills", lambda s: trial.job_kills(build, tmp / "dask", s, args.job_kills,
                                               "--engine", "dask", "--workers", "2")),
        ("beam_job_kills", lambda s: trial.job_kills(build, tmp / "beam", s, args.beam_kills,
                                               "--engine", "beam", "--workers", "2")),
        ("beam_worker_kills", lambda s: trial.beam_worker_kills(build, tmp / "beam-workers", s,
                                                          args.beam_worker_kills)),
        ("synth_kills", lambda s: trial.synth_kills(corpus, tmp, s, args.synth_kills)),
        ("publish_kills", lambda s: trial.publish_kills(corpus, tmp, s, args.publish_kills)),
    ]
    for name, fn in trials:
        run_trial(name, seeds.randrange(2**32), fn, rows)
    return finish(record, args, seed, rows, clean_s)


def synthed_corpus(root: Path) -> Path:
    """The publish tests' corpus: a small tokenized event world with rule-teacher traces."""
    from ualm.audio.events import make_event_world
    from ualm.config import BuildConfig
    from ualm.pipelines.build import build_corpus
    from ualm.synth.config import SynthConfig
    from ualm.synth.run import synth_corpus

    world = make_event_world(root / "world", per_class=1, heldout_per_class=0, seconds=1.0,
                             events=("a low tone", "white noise"), text_rows=2, seed=5)
    config = BuildConfig.from_dict({"shards": {"max_samples": 3}, "tokenize": {"codec": "random"},
                                    "work": {"unit_size": 4, "dedup_buckets": 2}})
    corpus = build_corpus([world.manifests["train"]], root / "corpus", config, engine="local",
                          progress=False).corpus
    synth_corpus(corpus, SynthConfig(kinds=("enrichment", "pairs")), progress=False)
    return corpus


def finish(record: Record, args: argparse.Namespace, seed: int, rows: list[dict],
           clean_s: float) -> int:
    kills = {row["trial"]: row.get("kills", 0) for row in rows}
    identical = sum(row.get("checked_runs", 0) for row in rows if row["ok"])
    recoveries = [row[k] for row in rows for k in ("recovery_s", "build_s") if k in row]
    summary = {"seed": seed, "trials": len(rows), "trials_identical": sum(r["ok"] for r in rows),
               "completed_runs_identical": identical, "kills": kills,
               "slowest_recovery_s": max(recoveries, default=None),
               "clean_local_build_s": round(clean_s, 2), "clips": args.clips}
    wanted = {"dask_worker_kills": args.worker_kills, "dask_job_kills": args.job_kills,
              "beam_job_kills": args.beam_kills, "beam_worker_kills": args.beam_worker_kills,
              "synth_kills": args.synth_kills,
              "publish_kills": args.publish_kills}
    bars = [record.bar("trials_identical", summary["trials_identical"], "==", len(rows),
                       "every completed run byte-identical to a clean one, books balanced")]
    bars += [record.bar(f"{name}_landed", kills.get(name, 0), ">=", n,
                        "kills at random moments before the run finished")
             for name, n in wanted.items()]
    status = record.finish({**summary, "rows": rows}, bars)
    print(json.dumps(summary, sort_keys=True))
    return status


if __name__ == "__main__":
    sys.exit(main())
