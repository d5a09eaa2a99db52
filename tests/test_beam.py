"""The Beam engine: byte-identical corpora on the DirectRunner (multi-process) and on the
PortableRunner against Beam's job service on 127.0.0.1 with workers in separate processes;
stage counters as Beam metrics; keyed reduces through a real GroupByKey."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ualm.audio.synthetic import SyntheticWorld
from ualm.engines.beam import BeamEngine
from ualm.engines.beam_metrics import counters_of, format_metrics
from ualm.engines.local import LocalEngine
from ualm.manifests.inspect import summarize
from ualm.pipelines.build import build_corpus

from .chaos import CLI, free_port
from .conftest import SMALL, tree_bytes
from .test_engines import write_small_config


def pid_after_a_moment(_: int) -> int:
    time.sleep(0.3)
    return os.getpid()


def emit_residues(n: int) -> list[tuple[int, int]]:
    return [(n % 3, n), (n % 3, -n)]


def total(key: int, values: list[int]) -> dict[str, int]:
    return {"key": key, "values": len(values), "sum_of_squares": sum(v * v for v in values)}


def test_direct_runner_matches_local_and_reports_metrics(
        world: SyntheticWorld, local_corpus: Path, tmp_path: Path) -> None:
    engine = BeamEngine("DirectRunner", workers=2, report=None)
    out = tmp_path / "beam"
    build_corpus([world.manifest], out, SMALL, engine=engine, progress=False)
    assert tree_bytes(out) == tree_bytes(local_corpus)
    summary = summarize(out)
    ingest = engine.metrics["ingest"]
    assert ingest["units"] == 6
    assert ingest["kept_inputs"] == summary["kept"] + summary["duplicates"]
    assert ingest["rejected_inputs"] == summary["rejected"]
    assert {k.split(":", 1)[1]: v for k, v in ingest.items() if k.startswith("rejected:")} \
        == summary["reasons"]
    assert engine.metrics["dedup"]["duplicates"] == summary["duplicates"]
    assert engine.metrics["shard"]["samples"] == summary["samples"]
    line = format_metrics("ingest", ingest)
    assert "inputs kept" in line and "decode/corrupt 1" in line


def test_direct_runner_runs_units_in_worker_processes() -> None:
    engine = BeamEngine("DirectRunner", workers=2, report=None)
    pids = engine.map(pid_after_a_moment, list(range(8)), "pids")
    assert os.getpid() not in pids
    assert len(set(pids)) == 2


def test_map_reduce_groups_by_key_including_keys_with_no_values() -> None:
    """The keyed reduce (a GroupByKey) matches the local engine's, and keys that nothing was
    emitted for are reduced too; keys not asked for are dropped."""
    tasks, keys = list(range(10)), [0, 1, 2, 7]
    expected = LocalEngine().map_reduce(emit_residues, tasks, total, keys, "sums")
    assert expected[3] == {"key": 7, "values": 0, "sum_of_squares": 0}
    engine = BeamEngine("DirectRunner", workers=2, report=None)
    assert engine.map_reduce(emit_residues, tasks, total, keys, "sums") == expected
    assert engine.metrics["sums"]["units"] == 4


def test_counters_of_a_unit_summary() -> None:
    counters = counters_of({"unit": 3, "inputs": 5, "kept_seconds": 1.2345,
                            "reasons": {"quality/silent": 2}, "ok": True})
    assert counters == {"inputs": 5, "kept_seconds_ms": 1234, "rejected:quality/silent": 2}


def test_portable_runner_against_a_local_job_service(
        world: SyntheticWorld, local_corpus: Path, tmp_path: Path) -> None:
    """Beam's own job service and an external worker pool, both processes on 127.0.0.1: the
    protocol the Flink and Spark runners speak. Workers run in processes the pool starts."""
    job_port, pool_port = free_port(), free_port()
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    services = [
        subprocess.Popen([sys.executable, "-m",
                          "apache_beam.runners.portability.local_job_service_main",
                          "--port", str(job_port)], env=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
        subprocess.Popen([sys.executable, "-m", "apache_beam.runners.worker.worker_pool_main",
                          "--service_port", str(pool_port)], env=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
    ]
    try:
        _wait_for_port(job_port)
        _wait_for_port(pool_port)
        out = tmp_path / "portable"
        proc = subprocess.run(
            [*CLI, "build", "--input", str(world.manifest), "--out", str(out),
             "--config", str(write_small_config(tmp_path / "small.yaml")),
             "--engine", "beam", "--runner", "PortableRunner",
             f"--job_endpoint=localhost:{job_port}", "--environment_type=EXTERNAL",
             f"--environment_config=localhost:{pool_port}"],
            capture_output=True, text=True, timeout=300, env=env)
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert "[beam metrics · ingest] 6 units" in proc.stderr
        assert tree_bytes(out) == tree_bytes(local_corpus)
    finally:
        for service in services:
            service.terminate()
            service.wait(timeout=30)


def test_pipeline_options_only_with_the_beam_engine(world: SyntheticWorld,
                                                    tmp_path: Path) -> None:
    proc = subprocess.run(
        [*CLI, "build", "--input", str(world.manifest), "--out", str(tmp_path / "x"),
         "--engine", "local", "--flink_master=localhost:8081"],
        capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "unrecognized arguments: --flink_master=localhost:8081" in proc.stderr


def test_unknown_runner_is_a_clear_error() -> None:
    from ualm.errors import UalmError

    with pytest.raises(UalmError, match="unknown Beam runner 'NoSuchRunner'"):
        BeamEngine("NoSuchRunner")


def _wait_for_port(port: int, seconds: float = 60.0) -> None:
    import socket

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise TimeoutError(f"nothing listens on port {port}")
