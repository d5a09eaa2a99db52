"""The chaos trials themselves, each a function of its seed and its kill count, so that
tests/test_chaos.py runs a few kills and benchmarks/bench_chaos.py the full counts through the
same code. Each raises AssertionError naming the seed when a run ends with other bytes than a
clean run, or with an input, a trace or a file counted twice or not at all."""

from __future__ import annotations

import contextlib
import random
import shutil
import subprocess
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import yaml

from tests.chaos import (
    CLI,
    DaskCluster,
    JobChaos,
    _completed,
    books,
    cli_env,
    kill_group,
    kill_jobs,
    kill_workers,
    output,
    start,
)
from tests.conftest import tree_bytes
from tests.hub_server import HubServer
from tests.publish_corpus import check_arrived, local_files
from tests.synth_helpers import copy_corpus, published
from ualm.config import BuildConfig
from ualm.testing.teacher_server import FakeTeacherServer


@dataclass(frozen=True)
class BuildInputs:
    """A build's manifest and config (as the YAML file the CLI reads), and its clean corpus."""

    manifest: Path
    config: Path
    reference: Path

    @classmethod
    def of(cls, manifest: Path, config: BuildConfig, reference: Path, tmp: Path) -> BuildInputs:
        path = tmp / "config.yaml"
        path.write_text(yaml.safe_dump(config.to_dict()))
        return cls(manifest, path, reference)

    def cmd(self, out: Path, *engine: str) -> list[str]:
        return [*CLI, "build", "--input", str(self.manifest), "--out", str(out), "--quiet",
                "--config", str(self.config), *engine]

    def check(self, out: Path, seed: int) -> None:
        got, clean = tree_bytes(out), tree_bytes(self.reference)
        other = sorted(k for k in got.keys() | clean.keys() if got.get(k) != clean.get(k))
        assert not other, f"seed {seed}: other bytes in {other[:5]}"
        assert books(out) == books(self.reference), f"seed {seed}: other counts"


def worker_kills(build: BuildInputs, out: Path, seed: int, kills: int,
                 unit_sleep: float = 0.6, gap: tuple[float, float] = (0.3, 1.5)) -> float:
    """One build on a two-worker cluster while random workers are SIGKILLed `kills` times (each
    unit sleeps `unit_sleep` s first, so that the kills meet units running). Returns the
    build's seconds."""
    rng = random.Random(seed)
    env = cli_env(UALM_FAULTS=f"ingest:*=sleep{unit_sleep}")
    started = time.monotonic()
    with DaskCluster(env) as cluster:
        proc = start(build.cmd(out, "--scheduler", cluster.address), env)
        landed = kill_workers(proc, cluster, rng, kills=kills, gap=gap, seed=seed,
                              ready=lambda: (out / "_work" / "done").is_dir())
    assert landed == kills, f"seed {seed}: the build finished after {landed} kills"
    build.check(out, seed)
    return time.monotonic() - started


def job_kills(build: BuildInputs, out: Path, seed: int, kills: int, *engine: str) -> JobChaos:
    """`ualm build` (on `engine`) SIGKILLed `kills` times at random moments, resumed each time."""
    return kill_jobs(build.cmd(out, *engine), cli_env(), random.Random(seed), kills=kills,
                     window=None, fresh=lambda: shutil.rmtree(out, ignore_errors=True),
                     check=lambda: build.check(out, seed), seed=seed)


def beam_worker_kills(build: BuildInputs, out: Path, seed: int, kills: int,
                      gap: tuple[float, float] = (0.2, 3.0), unit_sleep: float = 0.3
                      ) -> JobChaos:
    """`ualm build --engine beam` (the direct runner, two SDK worker processes) while one of
    its worker processes is SIGKILLed a drawn moment after the workers start: the build stops
    with one line that names the dead worker (it used to wait forever for the lost bundles) and
    a rerun resumes, `kills` times; then a run completes, with the bytes and books of a clean
    build. A run that ends well despite its kill (the worker had done its last bundle) is
    checked and counts as an early finish."""
    import psutil

    rng, result = random.Random(seed), JobChaos(seed)
    env = cli_env(UALM_FAULTS=f"ingest:*=sleep{unit_sleep}")
    cmd = build.cmd(out, "--engine", "beam", "--workers", "2")
    shutil.rmtree(out, ignore_errors=True)

    def workers(proc: subprocess.Popen) -> list[psutil.Process]:
        with contextlib.suppress(psutil.Error):
            return [p for p in psutil.Process(proc.pid).children(recursive=True)
                    if p.name() != "sh" and "sdk_worker_main" in " ".join(p.cmdline())]
        return []

    while len(result.kills) < kills:
        proc, at = start(cmd, env), rng.uniform(*gap)
        while proc.poll() is None and not workers(proc):
            time.sleep(0.05)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=at)
        victims = workers(proc) if proc.poll() is None else []
        if victims:
            with contextlib.suppress(psutil.Error):
                rng.choice(victims).kill()
        try:
            proc.wait(timeout=300)  # a lost worker must stop the build, not hang it
        except subprocess.TimeoutExpired as hung:
            kill_group(proc)
            raise AssertionError(f"seed {seed}: the build hung after its worker was killed"
                                 ) from hung
        if proc.returncode == 0:
            build.check(out, seed)
            result.early_finishes += 1
            result.checked += 1
            shutil.rmtree(out, ignore_errors=True)
            continue
        errors = [line for line in output(proc).splitlines() if line.startswith("ualm: error:")]
        assert len(errors) == 1 and "a Beam worker process died" in errors[0], (
            f"seed {seed}: {output(proc)[-3000:]}")
        result.kills.append(round(at, 3))
    started = time.monotonic()
    proc = start(cmd, env)
    proc.wait(timeout=600)
    _completed(proc, seed, cmd)
    result.completions.append(time.monotonic() - started)
    build.check(out, seed)
    result.checked += 1
    return result


def _traces(root: Path) -> Counter[str]:
    import pyarrow.parquet as pq

    return Counter(pq.read_table(root / "manifests" / "traces", columns=["key"])
                   .column("key").to_pylist())


def synth_kills(corpus: Path, tmp: Path, seed: int, kills: int) -> JobChaos:
    """`ualm synth` against the loopback teacher, SIGKILLed with calls in flight `kills` times
    and resumed; each completed run must hold the first (uncut, so clean) run's traces, each
    once."""
    trial = tmp / "synth-trial"
    clean: dict[str, dict] = {}
    with FakeTeacherServer(latency=0.1) as server:
        def fresh() -> None:
            shutil.rmtree(trial, ignore_errors=True)
            copy_corpus(corpus, trial)

        def check() -> None:
            traces = _traces(trial)
            assert traces and max(traces.values()) == 1, f"seed {seed}: a doubled trace"
            clean.setdefault("traces", traces)
            clean.setdefault("bytes", published(trial))
            assert traces == clean["traces"], f"seed {seed}: a lost trace"
            assert published(trial) == clean["bytes"], f"seed {seed}: other bytes"

        return kill_jobs([*CLI, "synth", str(trial), "--teacher", f"openai:m@{server.base_url}",
                          "--kinds", "[enrichment,dialogue]", "--concurrency", "4", "--quiet"],
                         cli_env(), random.Random(seed), kills=kills, window=None, fresh=fresh,
                         check=check, seed=seed, ready=lambda: server.in_flight > 0)


def publish_kills(corpus: Path, tmp: Path, seed: int, kills: int, batch_files: int = 4,
                  token: str = "hf_test_Chaos_0123456789") -> JobChaos:
    """`ualm publish` to the loopback Hub, SIGKILLed with uploads in flight `kills` times (at a
    moment drawn from the first upload or commit request on) and resumed. After each kill, a revision holding the commit file (corpus.json or publish.json)
    must hold everything; at the end every file has arrived and none was sent twice."""
    repo = "org/chaos"
    expected = set(local_files(corpus))
    with HubServer() as hub:
        env = cli_env(HF_ENDPOINT=hub.url, HF_TOKEN=token, HF_HUB_OFFLINE="0",
                      HF_HUB_DISABLE_XET="1", HF_HOME=str(tmp / "hf-home"))

        def uploads() -> int:
            return sum(method in ("PUT", "POST") and "/repos/create" not in path
                       for method, path in hub.state.requests)

        seen = [0]  # uploads before the current run started

        def fresh() -> None:  # an empty Hub for a new chain
            hub.state.__init__()
            seen[0] = 0

        def after_kill() -> None:
            seen[0] = uploads()
            shown = hub.files(repo) if repo in hub.state.repos else {}
            if {"corpus.json", "publish.json"} & set(shown):
                assert {"corpus.json", "publish.json"} <= set(shown), \
                    f"seed {seed}: a half-published revision holds {sorted(shown)}"
                check_arrived(hub, repo, corpus)

        def check() -> None:
            assert expected <= set(check_arrived(hub, repo, corpus)), f"seed {seed}"
            assert max(hub.state.lfs_uploads.values()) == 1, f"seed {seed}: an object sent twice"
            assert max(hub.state.regular_sent.values()) == 1, f"seed {seed}: a file sent twice"

        cmd = [*CLI, "publish", str(corpus), "--to", f"hf://datasets/{repo}", "--batch-files",
               str(batch_files)]  # several commits, so kills land between them
        return kill_jobs(cmd, env, random.Random(seed), kills=kills, window=None, fresh=fresh,
                         check=check, after_kill=after_kill, seed=seed,
                         ready=lambda: uploads() > seen[0])
