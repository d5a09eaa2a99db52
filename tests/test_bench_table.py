"""The README's benchmark figures are the results files', as their scripts wrote them: the table
between the README's markers is what benchmarks/table.py renders from benchmarks/results/, and
every benchmark script has a results file that it wrote itself (a command line, the machine,
its bars checked in code)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _table():
    spec = importlib.util.spec_from_file_location("ualm_benchmarks_table",
                                                  ROOT / "benchmarks" / "table.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_the_readme_table_is_rendered_from_the_results_files() -> None:
    table = _table()
    assert table.readme_block((ROOT / "README.md").read_text()) == table.render(), (
        "README.md's benchmark table differs from benchmarks/results: run "
        "`python benchmarks/table.py --write`")


def test_every_benchmark_has_a_record_written_by_its_script() -> None:
    scripts = sorted(p.stem for p in (ROOT / "benchmarks").glob("*.py")
                     if not p.name.startswith("_") and p.stem != "table")
    assert "bench_build" in scripts and "mutants" in scripts
    for name in scripts:
        record = json.loads((ROOT / "benchmarks" / "results" / f"{name}.json").read_text())
        assert record["benchmark"] == name and name in record["command"], name
        assert not record["quick"], f"{name}: a --quick run is not a record"
        assert isinstance(record["bars"], list) and record["bars"], name
        assert record["passed"] == all(b["passed"] for b in record["bars"]), name
        assert record["machine"]["cores"] >= 1 and record["machine"]["versions"]["ualm"], name
