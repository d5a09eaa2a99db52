"""Builds into a bucket on workers that share no disk: a `dask scheduler` and two `dask worker`
processes, and Beam's PortableRunner against its job service with an `EXTERNAL` worker pool.
Every process (the `ualm build` driver included) gets a fresh root of its own as HOME, TMPDIR,
working directory and UALM_CACHE (and Dask's --local-directory); nothing is shared but the
network and the moto S3 server (tests/s3_server.py).

"Nothing written outside its own root" is checked twice: an audit hook (a `sitecustomize` put
first on every process's PYTHONPATH, so it also runs in the processes those start) logs each
write, create, rename or delete that any Python code makes outside the process's root, even a
file removed again later; and the places a buggy build would write to (the inputs, the
checkout, the base folder of the roots) are compared before and after. The corpus must exist
only in the bucket, with the same bytes as a local-folder build of the same inputs.

The inputs sit in the bucket too (`INPUTS_IN_BUCKET`), and the reference is built from there, so
it differs from a local-input build only in its location columns.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.chaos import free_port
from tests.conftest import SMALL
from tests.s3_server import moto_s3
from tests.test_engines import write_small_config
from tests.test_object_store_build import digests, local_digests
from ualm.audio.synthetic import SyntheticWorld
from ualm.pipelines.build import build_corpus

BUCKET = "ualm-shared-nothing"
INPUTS_IN_BUCKET = True
REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
CORPUS_FILES = ("corpus.json", ".tar", ".parquet", "plan.json")

AUDIT_HOOK = '''
import os, sys, threading

_ROOT = os.path.realpath(os.environ["UALM_AUDIT_ROOT"])
_LOG = os.path.join(_ROOT, "audit.log")
_ALLOWED = (_ROOT + os.sep, "/dev/", "/proc/")
_WRITE = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
# event: (indices of the paths it writes, indices of its dir_fd arguments)
_EVENTS = {"os.mkdir": ((0,), (2,)), "os.remove": ((0,), (1,)), "os.rmdir": ((0,), (1,)),
           "os.rename": ((0, 1), (2, 3)), "os.symlink": ((1,), (2,)), "os.link": ((1,), (2, 3)),
           "os.truncate": ((0,), ()), "shutil.rmtree": ((0,), (1,))}
_busy = threading.local()


def _hook(event, args):
    if getattr(_busy, "on", False):
        return
    if event == "open":
        path, mode, flags = args
        if not ((mode and any(c in mode for c in "wax+")) or (flags or 0) & _WRITE):
            return
        paths, relative_to_fd = [path], False
    elif event in _EVENTS:
        where, fds = _EVENTS[event]
        paths = [args[i] for i in where]
        relative_to_fd = any(args[i] is not None for i in fds if i < len(args))
    else:
        return
    _busy.on = True
    try:
        bad = []
        for path in paths:
            if isinstance(path, int) or path is None:
                continue
            path = os.fsdecode(path)
            if relative_to_fd and not os.path.isabs(path):
                continue
            if not (os.path.realpath(path) + os.sep).startswith(_ALLOWED):
                bad.append(path)
        if bad:
            fd = os.open(_LOG, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            os.write(fd, f"{event} {bad} by {' '.join(sys.argv)[:160]}\\n".encode())
            os.close(fd)
    finally:
        _busy.on = False


sys.addaudithook(_hook)
'''


class Roots:
    """Processes that share nothing on disk: each gets `base/NAME` as HOME, TMPDIR, working
    directory, UALM_CACHE and Python's bytecode cache; their output goes to `base/logs`."""

    def __init__(self, base: Path) -> None:
        self.base, self.hook, self.logs = base, base / "audit-hook", base / "logs"
        for folder in (self.hook, self.logs):
            folder.mkdir(parents=True)
        (self.hook / "sitecustomize.py").write_text(AUDIT_HOOK)
        self.roots: dict[str, Path] = {}
        self.running: list[subprocess.Popen[bytes]] = []

    def env(self, name: str) -> tuple[Path, dict[str, str]]:
        root = self.base / name
        root.mkdir()
        self.roots[name] = root
        env = {k: v for k, v in os.environ.items()
               if k not in ("UALM_CACHE", "PYTHONDONTWRITEBYTECODE", "PWD", "OLDPWD")}
        path = [str(self.hook), str(REPO / "src"), *filter(None, [env.get("PYTHONPATH")])]
        env.update(HOME=str(root), TMPDIR=str(root), TEMP=str(root), TMP=str(root),
                   UALM_CACHE=str(root / "cache"), UALM_AUDIT_ROOT=str(root),
                   PYTHONPYCACHEPREFIX=str(root / "pycache"), HF_HUB_OFFLINE="1",
                   PYTHONPATH=os.pathsep.join(path), PATH=f"{BIN}{os.pathsep}{env['PATH']}")
        return root, env

    def start(self, name: str, argv: list[str]) -> subprocess.Popen[bytes]:
        root, env = self.env(name)
        with open(self.logs / f"{name}.log", "wb") as log:
            proc = subprocess.Popen(argv, cwd=root, env=env, stdout=log, stderr=log)
        self.running.append(proc)
        return proc

    def run(self, name: str, argv: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
        root, env = self.env(name)
        return subprocess.run(argv, cwd=root, env=env, capture_output=True, text=True,
                              timeout=timeout)

    def violations(self) -> list[str]:
        return [f"{name}: {line}" for name, root in self.roots.items()
                if (root / "audit.log").exists()
                for line in (root / "audit.log").read_text().splitlines()]

    def log(self, name: str) -> str:
        return (self.logs / f"{name}.log").read_text(errors="replace")[-3000:]

    def close(self) -> None:
        """Stops the processes, last started first (workers before their scheduler)."""
        for proc in reversed(self.running):
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture(scope="module")
def store() -> Iterator[str]:
    with pytest.MonkeyPatch.context() as monkeypatch, moto_s3(monkeypatch, BUCKET) as endpoint:
        yield endpoint


@pytest.fixture
def roots(tmp_path: Path) -> Iterator[Roots]:
    made = Roots(tmp_path / "roots")
    try:
        yield made
    finally:
        made.close()


@pytest.fixture(scope="module")
def inputs(store: str, world: SyntheticWorld,
           tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    """(the manifest the builds read, the config file): the world's local files, or its copy
    in the bucket (`INPUTS_IN_BUCKET`)."""
    config = write_small_config(tmp_path_factory.mktemp("shared-nothing") / "small.yaml")
    if not INPUTS_IN_BUCKET:
        return str(world.manifest), config
    import s3fs

    s3fs.S3FileSystem(skip_instance_cache=True).put(f"{world.root}/", f"{BUCKET}/world/",
                                                    recursive=True)
    return f"s3://{BUCKET}/world/{world.manifest.name}", config


@pytest.fixture(scope="module")
def reference(inputs: tuple[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A local-folder build of the same inputs, by the local engine in this process."""
    out = tmp_path_factory.mktemp("shared-nothing-reference") / "corpus"
    build_corpus([inputs[0]], out, SMALL, engine="local", progress=False)
    return out


def snapshot(*folders: Path) -> dict[str, tuple[int, int]]:
    """(size, mtime) of every file and folder below `folders` (a checkout without .git and
    .venv), to tell what a build created, changed or removed."""
    seen: dict[str, tuple[int, int]] = {}
    for folder in folders:
        for top, dirs, files in os.walk(folder):
            dirs[:] = [d for d in dirs if d not in (".git", ".venv", ".pytest_cache")]
            for name in [*dirs, *files]:
                stat = os.lstat(os.path.join(top, name))
                seen[os.path.join(top, name)] = (stat.st_size, stat.st_mtime_ns)
    return seen


def corpus_files(*folders: Path) -> list[str]:
    return [os.path.join(top, name) for folder in folders for top, _, files in os.walk(folder)
            for name in files if name.endswith(CORPUS_FILES)]


def wait_for_port(port: int, proc: subprocess.Popen[bytes], seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and proc.poll() is None:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise TimeoutError(f"{proc.args[:4]} does not listen on {port} (exit {proc.poll()})")


def build_with_nothing_shared(roots: Roots, world: SyntheticWorld, inputs: tuple[str, Path],
                              url: str, engine_args: list[str]) -> subprocess.CompletedProcess[str]:
    """`ualm build` into `url` as a driver process of its own; checks that no process wrote
    outside its root and that the corpus is only in the bucket."""
    manifest, config = inputs
    watched = (world.root, config.parent, REPO)
    before, top = snapshot(*watched), sorted(os.listdir(roots.base))
    places = (roots.base, world.root, REPO / "src", REPO / "tests")
    found = corpus_files(*places)  # the session's world is shared: other tests add manifests
    proc = roots.run("driver", [sys.executable, "-m", "ualm.cli", "build", "--input", manifest,
                                "--out", url, "--config", str(config), *engine_args],
                     timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert roots.violations() == [], "a process wrote outside its own root"
    assert snapshot(*watched) == before, "the build changed the inputs or the checkout"
    assert sorted(os.listdir(roots.base)) == sorted([*top, "driver"])
    assert corpus_files(*places) == found, "a corpus file was written to local disk"
    assert not [n for n in digests(url, work=True) if n.startswith("_work/engine/")], \
        "the engine's results were removed"
    return proc


def test_dask_scheduler_and_two_workers_with_no_shared_disk(
        store: str, world: SyntheticWorld, reference: Path, inputs: tuple[str, Path],
        roots: Roots) -> None:
    from distributed import Client

    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    scheduler = roots.start("scheduler", [str(BIN / "dask"), "scheduler", "--host", "127.0.0.1",
                                          "--port", str(port), "--no-dashboard"])
    wait_for_port(port, scheduler)
    for name in ("worker-a", "worker-b"):
        roots.start(name, [str(BIN / "dask"), "worker", address, "--nthreads", "1",
                           "--nworkers", "1", "--no-dashboard", "--name", name,
                           "--local-directory", str(roots.base / name / "dask")])
    with Client(address, timeout="30s") as client:
        client.wait_for_workers(2, timeout=60)
        assert sorted(w["name"] for w in client.scheduler_info(n_workers=-1)["workers"]
                      .values()) == ["worker-a", "worker-b"]

    url = f"s3://{BUCKET}/dask"
    build_with_nothing_shared(roots, world, inputs, url,
                              ["--engine", "dask", "--scheduler", address, "--quiet"])
    assert digests(url) == local_digests(reference)


def test_beam_portable_runner_with_an_external_worker_pool_and_no_shared_disk(
        store: str, world: SyntheticWorld, reference: Path, inputs: tuple[str, Path],
        roots: Roots) -> None:
    job_port, pool_port = free_port(), free_port()
    job = roots.start("job-service", [
        sys.executable, "-m", "apache_beam.runners.portability.local_job_service_main",
        "--port", str(job_port)])
    pool = roots.start("worker-pool", [
        sys.executable, "-m", "apache_beam.runners.worker.worker_pool_main",
        "--service_port", str(pool_port)])
    wait_for_port(job_port, job)
    wait_for_port(pool_port, pool)

    url = f"s3://{BUCKET}/beam-portable"
    proc = build_with_nothing_shared(roots, world, inputs, url, [
        "--engine", "beam", "--runner", "PortableRunner", f"--job_endpoint=localhost:{job_port}",
        "--environment_type=EXTERNAL", f"--environment_config=localhost:{pool_port}"])
    assert "[beam metrics · ingest] 6 units" in proc.stderr
    assert digests(url) == local_digests(reference)


def test_beam_direct_runner_passes_results_through_the_bucket(
        store: str, inputs: tuple[str, Path], reference: Path) -> None:
    """The DirectRunner's workers share this machine, but a corpus in a bucket sends their unit
    results through its `_work/engine/` all the same: one path for every runner."""
    from ualm.engines.beam import BeamEngine

    url = f"s3://{BUCKET}/beam-direct"
    engine = BeamEngine("DirectRunner", workers=2, report=None)
    build_corpus([inputs[0]], url, SMALL, engine=engine, progress=False)
    assert engine.metrics["ingest"]["units"] == 6
    assert digests(url) == local_digests(reference)
    assert not [n for n in digests(url, work=True) if n.startswith("_work/engine/")]
