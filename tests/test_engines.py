"""The same input and config give byte-identical corpora on every engine, after a SIGKILL and a
rerun too, and on an existing Dask cluster reached by address."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ualm.audio.synthetic import SyntheticWorld
from ualm.pipelines.build import build_corpus

from .chaos import CLI, free_port
from .conftest import SMALL, tree_bytes


def write_small_config(path: Path) -> Path:
    import yaml

    path.write_text(yaml.safe_dump(SMALL.to_dict()))
    return path


def test_dask_local_cluster_matches_local_engine(world: SyntheticWorld, local_corpus: Path,
                                                  tmp_path: Path) -> None:
    out = tmp_path / "dask"
    build_corpus([world.manifest], out, SMALL, engine="dask", workers=2, progress=False)
    assert tree_bytes(out) == tree_bytes(local_corpus)


def test_existing_dask_cluster_by_address(world: SyntheticWorld, local_corpus: Path,
                                          tmp_path: Path) -> None:
    port = free_port()
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    scheduler = subprocess.Popen(
        [str(bin_dir / "dask"), "scheduler", "--host", "127.0.0.1", "--port", str(port),
         "--no-dashboard"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    worker = subprocess.Popen(
        [str(bin_dir / "dask"), "worker", f"tcp://127.0.0.1:{port}", "--nthreads", "1",
         "--nworkers", "2", "--no-dashboard"], env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        out = tmp_path / "remote"
        proc = subprocess.run(
            [*CLI, "build", "--input", str(world.manifest), "--out", str(out), "--quiet",
             "--scheduler", f"tcp://127.0.0.1:{port}",
             "--config", str(write_small_config(tmp_path / "small.yaml"))],
            capture_output=True, text=True, timeout=300, env=env)
        assert proc.returncode == 0, proc.stderr
        assert tree_bytes(out) == tree_bytes(local_corpus)
    finally:
        for p in (worker, scheduler):
            p.terminate()
            p.wait(timeout=30)


def test_unreachable_scheduler_is_a_one_line_error(world: SyntheticWorld, tmp_path: Path) -> None:
    proc = subprocess.run(
        [*CLI, "build", "--input", str(world.manifest), "--out", str(tmp_path / "x"),
         "--scheduler", f"tcp://127.0.0.1:{free_port()}"],
        capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "cannot reach the Dask scheduler" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("engine", ["local", "dask"])
def test_sigkill_part_way_then_rerun_gives_the_same_bytes(
        engine: str, world: SyntheticWorld, local_corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "crashed"
    config = write_small_config(tmp_path / "small.yaml")
    cmd = [*CLI, "build", "--input", str(world.manifest), "--out", str(out), "--quiet",
           "--engine", engine, "--config", str(config)]
    if engine == "dask":
        cmd += ["--workers", "2"]
    proc = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    done = out / "_work" / "done"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        if done.is_dir() and len(list(done.glob("ingest-*.json"))) >= 1:
            break
        time.sleep(0.02)
    assert proc.poll() is None, "the build finished before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (out / "corpus.json").exists()
    rerun = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert "resumed" in rerun.stdout
    assert tree_bytes(out) == tree_bytes(local_corpus)


def _completion_records(out: Path, stage: str = "") -> int:
    done = out / "_work" / "done"
    return len(list(done.glob(f"{stage}*.json"))) if done.is_dir() else 0


def test_sigkill_rerun_redoes_only_unfinished_units(world: SyntheticWorld, local_corpus: Path,
                                                    tmp_path: Path) -> None:
    """Killed with ingest half done: the rerun skips exactly the units whose completion records
    survived, redoes the others, and ends with the clean run's bytes."""
    out = tmp_path / "crashed"
    cmd = [*CLI, "build", "--input", str(world.manifest), "--out", str(out), "--quiet",
           "--engine", "local", "--config", str(write_small_config(tmp_path / "small.yaml"))]
    env = {**os.environ, "UALM_FAULTS": "ingest:*=sleep0.3"}
    proc = subprocess.Popen(cmd, start_new_session=True, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and _completion_records(out, "ingest-") < 2:
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    ingested = _completion_records(out, "ingest-")
    assert 2 <= ingested < 6, "the kill should land while ingest (6 units) is running"
    finished = _completion_records(out)  # the ids stage's records, and ingest's
    rerun = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert f"(resumed: {finished} finished units were not redone)" in rerun.stdout
    assert tree_bytes(out) == tree_bytes(local_corpus)


def test_dask_worker_killed_mid_job_costs_time_not_data(
        world: SyntheticWorld, local_corpus: Path, tmp_path: Path) -> None:
    """A scheduler and two workers started as commands; one worker (and its nanny) is killed
    with SIGKILL while it runs a unit. The scheduler gives that unit to the other worker."""
    port = free_port()
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}",
           "UALM_FAULTS": "ingest:*=sleep0.5"}
    scheduler = subprocess.Popen(
        [str(bin_dir / "dask"), "scheduler", "--host", "127.0.0.1", "--port", str(port),
         "--no-dashboard"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    workers = [subprocess.Popen(
        [str(bin_dir / "dask"), "worker", f"tcp://127.0.0.1:{port}", "--nthreads", "1",
         "--no-dashboard", "--name", f"w{i}"], env=env, start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for i in range(2)]
    out = tmp_path / "survivor"
    try:
        build = subprocess.Popen(
            [*CLI, "build", "--input", str(world.manifest), "--out", str(out), "--quiet",
             "--scheduler", f"tcp://127.0.0.1:{port}",
             "--config", str(write_small_config(tmp_path / "small.yaml"))],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and _completion_records(out, "ingest-") < 1:
            time.sleep(0.01)  # a worker dies with ingest under way, not in the ids stage
        assert _completion_records(out, "ingest-") < 6 and build.poll() is None
        os.killpg(workers[0].pid, signal.SIGKILL)
        _, stderr = build.communicate(timeout=300)
        assert build.returncode == 0, stderr
        assert workers[0].wait(timeout=30) == -signal.SIGKILL
        assert tree_bytes(out) == tree_bytes(local_corpus)
    finally:
        for p in (*workers, scheduler):
            if p.poll() is None:
                p.terminate()
                p.wait(timeout=30)


@pytest.mark.parametrize("engine", ["local", "dask"])
def test_unit_failing_every_attempt_rejects_its_inputs(
        engine: str, world: SyntheticWorld, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A unit that raises on each of its 3 attempts (1 + 2 retries) does not end the job: its
    inputs are rejected as `engine/unit_failed` with the error, and the books still balance."""
    import pyarrow.parquet as pq

    from ualm.manifests.inspect import summarize

    monkeypatch.setenv("UALM_FAULTS", "ingest:1=fail")
    out = tmp_path / engine
    build_corpus([world.manifest], out, SMALL, engine=engine, workers=2, progress=False)
    attempts = sorted(p.name.rsplit("-", 1)[0] for p in (out / "_work" / "faults").iterdir())
    assert attempts == ["ingest-1-1", "ingest-1-2", "ingest-1-3"]
    rejects = pq.read_table(out / "manifests" / "rejects").to_pylist()
    failed = [r for r in rejects if r["reason"] == "engine/unit_failed"]
    unit_ids = {r["input_id"] for r in failed}
    assert 1 <= len(failed) <= SMALL.work.unit_size
    assert all("failed 3 times: InjectedFault: injected fault in ingest unit 1" in r["detail"]
               for r in failed)
    summary = summarize(out)
    assert summary["inputs"] == summary["kept"] + summary["rejected"] + summary["duplicates"]
    assert summary["inputs"] == len(world.expected)
    assert not unit_ids & set(pq.read_table(out / "manifests" / "samples")
                              .column("input_id").to_pylist())


@pytest.mark.parametrize("engine", ["local", "dask"])
def test_unit_failing_once_is_retried_to_the_same_bytes(
        engine: str, world: SyntheticWorld, local_corpus: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UALM_FAULTS", "ingest:2=fail1,dedup:0=fail1,shard:1=fail1")
    out = tmp_path / engine
    build_corpus([world.manifest], out, SMALL, engine=engine, workers=2, progress=False)
    attempts = sorted(p.name.rsplit("-", 1)[0] for p in (out / "_work" / "faults").iterdir())
    assert attempts == ["dedup-0-1", "dedup-0-2", "ingest-2-1", "ingest-2-2",
                        "shard-1-1", "shard-1-2"]
    assert tree_bytes(out) == tree_bytes(local_corpus)


def test_dask_map_reduce_is_a_shuffle_matching_the_local_engine() -> None:
    from ualm.engines.dask import DaskEngine
    from ualm.engines.local import LocalEngine

    from .test_beam import emit_residues, total

    tasks, keys = list(range(10)), [0, 1, 2, 7]
    expected = LocalEngine().map_reduce(emit_residues, tasks, total, keys, "sums")
    assert [r["values"] for r in expected] == [8, 6, 6, 0]
    with DaskEngine(workers=2) as engine:
        assert engine.map_reduce(emit_residues, tasks, total, keys, "sums") == expected


def _found_a_decode_process(_: int) -> bool:
    """Run as a unit: whether this worker thread's decode process was running before the unit."""
    from ualm.audio import isolation

    process = getattr(isolation._local, "process", None)
    return process is not None and process.popen.poll() is None


def test_prepare_warms_each_worker_in_the_thread_that_runs_its_units() -> None:
    """The build's warm-up (`Engine.prepare(warm_worker)`) runs on every Dask worker in the
    thread that runs units: each unit then finds its decode process already started."""
    from functools import partial

    from distributed import wait

    from ualm.engines.dask import DaskEngine
    from ualm.pipelines.build import warm_worker

    with DaskEngine(workers=2) as engine:
        engine.prepare(partial(warm_worker, True))
        wait(engine._prepared)
        assert len(engine._prepared) == 2 and all(f.status == "finished" for f in engine._prepared)
        assert engine.map(_found_a_decode_process, list(range(8)), "probe") == [True] * 8
