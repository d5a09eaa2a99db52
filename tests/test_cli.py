"""The `ualm` command: contract of `inspect --json`, person-readable output, one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from ualm.audio.synthetic import SyntheticWorld

CLI = [sys.executable, "-m", "ualm.cli"]


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=300)


def test_inspect_json_contract(local_corpus: Path, world: SyntheticWorld) -> None:
    proc = _run("inspect", str(local_corpus), "--json")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    for key in ("inputs", "kept", "rejected", "duplicates", "reasons", "samples", "hours", "shards"):
        assert key in summary
    assert summary["inputs"] == summary["kept"] + summary["rejected"] + summary["duplicates"]
    expected_reasons: dict[str, int] = {}
    for outcome in world.expected.values():
        if outcome not in ("kept", "duplicate"):
            expected_reasons[outcome] = expected_reasons.get(outcome, 0) + 1
    assert summary["reasons"] == expected_reasons
    assert summary["hours"] > 0


def test_inspect_for_a_person_with_a_funnel_picture(local_corpus: Path, tmp_path: Path) -> None:
    png = tmp_path / "funnel.png"
    proc = _run("inspect", str(local_corpus), "--plot", str(png))
    assert proc.returncode == 0, proc.stderr
    assert "funnel (hours)" in proc.stdout and "= kept" in proc.stdout
    assert "quality/silent" in proc.stdout
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_errors_are_one_line_with_a_fix(tmp_path: Path, world: SyntheticWorld) -> None:
    cases = [
        (["build", "--input", str(tmp_path / "nope.jsonl"), "--out", str(tmp_path / "o")],
         "input not found"),
        (["inspect", str(tmp_path)], "not a complete ualm corpus"),
        (["build", "--input", str(world.manifest), "--out", str(tmp_path / "o2"),
          "--config", str(tmp_path / "missing.yaml")], "config file not found"),
    ]
    bad_config = tmp_path / "bad.yaml"
    bad_config.write_text("audio:\n  sample_rat: 16000\n")
    cases.append((["build", "--input", str(world.manifest), "--out", str(tmp_path / "o3"),
                   "--config", str(bad_config)], "unknown key(s) in config section 'audio'"))
    blocker = tmp_path / "file"
    blocker.write_text("x")
    cases.append((["build", "--input", str(world.manifest), "--out", str(blocker / "sub"),
                   "--engine", "local"], "cannot write to output folder"))
    for args, message in cases:
        proc = _run(*args)
        assert proc.returncode == 2, (args, proc.stderr)
        assert message in proc.stderr, proc.stderr
        assert "Traceback" not in proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1
    debug = _run("--debug", "inspect", str(tmp_path))
    assert debug.returncode != 0 and "Traceback" in debug.stderr


def test_demo_runs_end_to_end_on_embedded_defaults(tmp_path: Path) -> None:
    """The README's first command, smaller: world → build → tokens → funnel → listen."""
    proc = _run("demo", "--out", str(tmp_path / "demo"), "--clips", "6", "--engine", "local")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "= kept" in proc.stdout and "RANDOM weights" in proc.stdout
    assert (tmp_path / "demo" / "funnel.png").read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "demo" / "listen.wav").read_bytes()[:4] == b"RIFF"
    corpus = json.loads((tmp_path / "demo" / "corpus" / "corpus.json").read_text())
    (record,) = corpus["tokens"].values()
    assert record["random_weights"] is True and record["codebooks"] == 8


def test_build_dry_run_plans_from_the_stream_and_writes_nothing(tmp_path: Path,
                                                               world: SyntheticWorld) -> None:
    out = tmp_path / "corpus"
    proc = _run("build", "--input", str(world.manifest), "--out", str(out), "--dry-run",
                "--json", "--work.unit_size", "5", "--tokenize.enabled", "false")
    assert proc.returncode == 0, proc.stderr
    plan = json.loads(proc.stdout)
    rows = len(world.expected)
    assert (plan["inputs"], plan["units"], plan["unit_size"]) == (rows, -(-rows // 5), 5)
    assert "rejected_while_listing" not in plan  # rows are parsed by the units' workers
    assert [s["name"] for s in plan["stages"]] == ["ids", "ingest", "dedup", "shard", "commit"]
    assert not out.exists()

    person = _run("build", "--input", str(world.manifest), "--out", str(out), "--dry-run")
    assert person.returncode == 0, person.stderr
    assert f"inputs   {rows}" in person.stdout and "nothing was written" in person.stdout
    assert not out.exists()
