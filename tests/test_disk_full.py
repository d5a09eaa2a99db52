"""A full disk, a quota or an unwritable output stops a build with one line naming the folder
and what it needs, never as rejects; a rerun after the fix gives the bytes of a clean build; an
unwritable output is refused before any work."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from ualm.audio.synthetic import SyntheticWorld
from ualm.errors import UalmError
from ualm.manifests import atomic
from ualm.manifests.layout import CorpusLayout
from ualm.pipelines import build, resources
from ualm.pipelines.build import build_corpus

from .conftest import SMALL, tree_bytes

CLI = [sys.executable, "-m", "ualm.cli"]


def _unit_failed_rejects(out: Path) -> int:
    """Rows with reason engine/unit_failed in any parquet file of the corpus, _work included."""
    count = 0
    for path in out.rglob("*.parquet"):
        table = pq.read_table(path)
        if "reason" in table.column_names:
            count += table.column("reason").to_pylist().count("engine/unit_failed")
    return count


@pytest.mark.parametrize("engine", ["local", "dask", "beam"])
def test_full_disk_in_a_worker_is_one_line_then_a_rerun_completes(
        engine: str, world: SyntheticWorld, local_corpus: Path, tmp_path: Path) -> None:
    """The fault is raised inside the unit (in a Dask worker process or a Beam SDK worker
    process: UALM_FAULTS is read there), as pyarrow raises it: OSError ENOSPC with no file
    name."""
    out = tmp_path / "corpus"
    config = tmp_path / "small.yaml"
    config.write_text(yaml.safe_dump(SMALL.to_dict()))
    # one Beam SDK worker process: each stage starts its own, which dominates a build this small
    workers = {"dask": ["--workers", "2"], "beam": ["--workers", "1"]}.get(engine, [])
    cmd = [*CLI, "build", "--input", str(world.manifest), "--out", str(out), "--quiet",
           "--engine", engine, "--config", str(config), *workers]
    full = subprocess.run(cmd, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "UALM_FAULTS": "ingest:1=nospace"})
    assert full.returncode == 2, full.stderr[-3000:]
    assert not (out / "corpus.json").exists()
    assert _unit_failed_rejects(out) == 0
    assert not Path(CorpusLayout(out).done_record("ingest", 1)).exists()
    debug = subprocess.run([*CLI[:3], "--debug", *cmd[3:]], capture_output=True, text=True,
                           timeout=300, env={**os.environ, "UALM_FAULTS": "ingest:1=nospace"})
    assert debug.returncode != 0 and "Traceback" in debug.stderr
    assert ("Compute Failed" in debug.stderr) == (engine == "dask")  # workers' logs, on asking
    rerun = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    # Beam's SDK worker processes log start-up lines to the terminal on every run, a clean one
    # too (--quiet or not): beyond those, one line
    lines = [line for line in full.stderr.strip().splitlines()
             if line not in rerun.stderr.splitlines()]
    assert len(lines) == 1, full.stderr[-3000:]  # no worker log, no traceback
    assert "Traceback" not in full.stderr and "Errno" not in full.stderr
    assert lines[0].startswith(f"ualm: error: no space left on {out} (needs about "), lines
    assert "free: " in lines[0] and "free space or choose another --out" in lines[0]
    assert tree_bytes(out) == tree_bytes(local_corpus)


def test_disk_filling_part_way_stops_the_build_then_a_rerun_completes(
        world: SyntheticWorld, local_corpus: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Every table write after the 6th fails as on a full disk, in units and in the driver
    alike (the local engine runs units in this process)."""
    real, calls = atomic.atomic_write_table, []

    def filling(path: str | Path, table: object) -> None:
        calls.append(path)
        if len(calls) > 6:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        real(path, table)

    monkeypatch.setattr(atomic, "atomic_write_table", filling)
    out = tmp_path / "corpus"
    with pytest.raises(UalmError, match=f"^no space left on {out} "):
        build_corpus([world.manifest], out, SMALL, engine="local", progress=False)
    assert _unit_failed_rejects(out) == 0
    monkeypatch.setattr(atomic, "atomic_write_table", real)
    build_corpus([world.manifest], out, SMALL, engine="local", progress=False)
    assert tree_bytes(out) == tree_bytes(local_corpus)


def test_quota_and_read_only_mid_build_are_named(tmp_path: Path) -> None:
    layout = CorpusLayout(tmp_path / "out")
    quota = resources.exhausted_error(layout, errno.EDQUOT, None, 10)
    assert "disk quota exceeded" in str(quota) and str(tmp_path / "out") in str(quota)
    read_only = resources.exhausted_error(layout, errno.EROFS, None, 10)
    assert "read-only" in str(read_only) and "rerun the same command" in str(read_only)
    elsewhere = resources.exhausted_error(layout, errno.ENOSPC, "/scratch/w1/x.parquet", 10)
    assert "no space left on /scratch/w1 " in str(elsewhere)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "part").write_bytes(b"x" * 2_000_000)
    tokens = str(resources.exhausted_error(layout, errno.ENOSPC, None, 0))  # `ualm tokenize`
    assert "(2.0 MB written so far; free: " in tokens and "needs" not in tokens
    overrun = str(resources.exhausted_error(layout, errno.ENOSPC, None, 1))
    assert "needs more than the estimate of 0.3 MB, 2.0 MB written so far" in overrun


def test_an_unreadable_input_is_not_an_exhausted_output(tmp_path: Path) -> None:
    """Permission denied on an input stays that input's reject; on the output it stops."""
    layout = CorpusLayout(tmp_path / "out")
    assert not resources.is_exhausted(errno.EACCES, "/data/in.wav", "", layout)
    assert resources.is_exhausted(errno.EACCES, str(tmp_path / "out" / "x"), "", layout)
    assert resources.is_exhausted(errno.EACCES, None, f"open {tmp_path / 'out'}/y", layout)
    assert resources.is_exhausted(errno.ENOSPC, None, "", layout)
    assert not resources.is_exhausted(errno.ENOENT, None, "", layout)


@pytest.mark.parametrize("code, words", [(errno.EACCES, "permission denied"),
                                         (errno.EROFS, "read-only")])
def test_unwritable_output_is_refused_before_any_work(
        code: int, words: str, world: SyntheticWorld, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """As root a chmod cannot make a folder unwritable, so the probe write fails by hand; the
    inputs are never listed."""
    def denied(self: CorpusLayout) -> None:
        raise OSError(code, os.strerror(code), str(Path(self.root) / "_work"))

    def listed(*args: object, **kwargs: object) -> None:
        raise AssertionError("the inputs were listed before the output was checked")

    monkeypatch.setattr(CorpusLayout, "check_writable", denied)
    monkeypatch.setattr(build, "list_inputs", listed)
    out = tmp_path / "out"
    with pytest.raises(UalmError, match=f"^cannot write to {out}: .*{words}"):
        build_corpus([world.manifest], out, SMALL, engine="local", progress=False)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes whatever the folder's mode")
def test_read_only_folder_is_refused_before_any_work(world: SyntheticWorld,
                                                     tmp_path: Path) -> None:
    parent = tmp_path / "ro"
    parent.mkdir()
    parent.chmod(0o555)
    try:
        with pytest.raises(UalmError, match="permission denied"):
            build_corpus([world.manifest], parent / "out", SMALL, engine="local",
                         progress=False)
    finally:
        parent.chmod(0o755)
    assert not (parent / "out").exists()


def test_short_free_space_warns_and_the_build_goes_on(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    layout = CorpusLayout(tmp_path / "out")
    monkeypatch.setattr(resources, "_free", lambda folder: 50_000_000)
    line = resources.warn_if_short(layout, 1_000)
    assert line is not None and "has 50.0 MB free" in line and "about 0.3 GB" in line
    assert line in capsys.readouterr().err
    assert resources.warn_if_short(layout, 100) is None
