"""The CI part of the mutation check (benchmarks/mutants.py runs the whole list): every
mutant's snippet is still in its file exactly once, the copy the mutants run in shadows the
installed package in every process the tests start, and the fast mutants are all killed."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "mutants.py"


def _load():
    spec = importlib.util.spec_from_file_location("ualm_benchmarks_mutants", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


mutants = _load()


def test_every_snippet_occurs_exactly_once() -> None:
    stale = {m.name: f"{m.path}: {mutants.occurrences(m)} occurrences"
             for m in mutants.MUTANTS if mutants.occurrences(m) != 1}
    assert not stale, f"stale mutants (a refactor must update benchmarks/mutants.py): {stale}"
    names = [m.name for m in mutants.MUTANTS]
    assert len(names) == len(set(names)), "mutant names are unique"
    for m in mutants.MUTANTS:
        assert m.new != m.old and m.tests, m.name
        assert all(t.startswith("tests/") for t in m.tests), m.name
    assert any(m.fast for m in mutants.MUTANTS)


def test_the_copy_shadows_the_installed_package_in_subprocesses_and_workers() -> None:
    ok, output = mutants.probe(timeout=300)
    assert ok, output[-4000:]


@pytest.mark.timeout(600)
def test_fast_mutants_are_killed() -> None:
    fast = [m for m in mutants.MUTANTS if m.fast]
    lines: list[str] = []
    result = mutants.run_all(fast, timeout=300, say=lines.append)
    assert result["baseline"]["not_passing"] == {}, lines
    assert result["all_killed"], "\n".join(lines)
