"""The same input and config give byte-identical corpora on every engine, after a SIGKILL and a
rerun too, and on an existing Dask cluster reached by address."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ualm.audio.synthetic import SyntheticWorld
from ualm.pipelines.build import build_corpus

from .conftest import SMALL, tree_bytes

CLI = [sys.executable, "-m", "ualm.cli"]


def _write_small_config(path: Path) -> Path:
    import yaml

    path.write_text(yaml.safe_dump(SMALL.to_dict()))
    return path


def test_dask_local_cluster_matches_local_engine(world: SyntheticWorld, local_corpus: Path,
                                                  tmp_path: Path) -> None:
    out = tmp_path / "dask"
    build_corpus([world.manifest], out, SMALL, engine="dask", workers=2, progress=False)
    assert tree_bytes(out) == tree_bytes(local_corpus)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_existing_dask_cluster_by_address(world: SyntheticWorld, local_corpus: Path,
                                          tmp_path: Path) -> None:
    port = _free_port()
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
             "--config", str(_write_small_config(tmp_path / "small.yaml"))],
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
         "--scheduler", f"tcp://127.0.0.1:{_free_port()}"],
        capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "cannot reach the Dask scheduler" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("engine", ["local", "dask"])
def test_sigkill_part_way_then_rerun_gives_the_same_bytes(
        engine: str, world: SyntheticWorld, local_corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "crashed"
    config = _write_small_config(tmp_path / "small.yaml")
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
