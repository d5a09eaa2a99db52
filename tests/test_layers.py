"""The architecture holds: the layer contracts in pyproject.toml (import-linter; imports inside
functions count), over ualm's packages and over the rooms of ualm.train, are kept, a lower layer
that imports a higher one breaks them, and no module grows past 300 lines."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "ualm"
MAX_LINES = 300


def _lint(src: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(src)}  # the copy ahead of the installed package
    return subprocess.run([str(Path(sys.executable).parent / "lint-imports"), "--no-cache",
                           "--config", str(ROOT / "pyproject.toml")],
                          cwd=src.parent, env=env, capture_output=True, text=True, timeout=300)


def test_the_layer_contract_is_kept() -> None:
    result = _lint(ROOT / "src")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "2 kept, 0 broken" in result.stdout


@pytest.mark.parametrize(("module", "upward", "broken"), [
    ("manifests/layout.py", "from ualm.pipelines import build",
     "ualm.manifests is not allowed to import ualm.pipelines"),
    ("train/data/stream.py", "from ualm.train.model.module import UALMModule as build",
     "ualm.train.data is not allowed to import ualm.train.model"),
    ("train/blend/fit.py", "from ualm.train.trainer import train as build",
     "ualm.train.blend is not allowed to import ualm.train.trainer"),
])
def test_an_upward_import_inside_a_function_breaks_the_contract(
        tmp_path: Path, module: str, upward: str, broken: str) -> None:
    shutil.copytree(SRC, tmp_path / "src" / "ualm",
                    ignore=shutil.ignore_patterns("__pycache__"))
    lower = tmp_path / "src" / "ualm" / module
    lower.write_text(lower.read_text() + f"\n\ndef _sneak():\n    {upward}\n    return build\n")
    result = _lint(tmp_path / "src")
    assert result.returncode == 1
    assert broken in result.stdout


def test_no_module_passes_300_lines() -> None:
    lengths = {p.relative_to(SRC).as_posix(): p.read_text().count("\n")
               for p in SRC.rglob("*.py")}
    too_long = {name: lines for name, lines in lengths.items() if lines > MAX_LINES}
    assert not too_long, f"split these (past {MAX_LINES} lines): {too_long}"
