"""The README's benchmark table, rendered from the results files the scripts wrote themselves.

The README quotes no benchmark figure by hand: the block between the two markers below is this
script's output, and tests/test_bench_table.py fails when they differ (rerun a benchmark, then
`python benchmarks/table.py --write`). Each row gives every bar of one results file as
`value op threshold` with PASS or FAIL, when and at which commit it ran, and the machine's load
average when it started (a load near or above the 2 cores means the run shared the machine with
other work, and its timings are lower bounds).

    python benchmarks/table.py           # prints the table
    python benchmarks/table.py --write   # replaces the README's block with it
    python benchmarks/table.py --check   # exits 1 when the README's block is not the table
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
README = HERE.parent / "README.md"
RESULTS = HERE / "results"
START = "<!-- benchmark table: rendered by benchmarks/table.py from benchmarks/results -->"
END = "<!-- end of benchmark table -->"


def _value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _bars(record: dict[str, Any]) -> str:
    return "<br>".join(
        f"{'PASS' if b['passed'] else '**FAIL**'} `{b['name']}` {_value(b['value'])} "
        f"{b['op']} {_value(b['threshold'])}" for b in record["bars"])


def _ran(record: dict[str, Any]) -> str:
    machine = record["machine"]
    load = machine.get("load_average_at_start") or [None]
    commit = (machine.get("git_commit") or "?")[:8]
    dirty = "+" if machine.get("git_tracked_changes") else ""
    return (f"{record['started_utc'][:10]}, {commit}{dirty}, {machine['cores']} cores, "
            f"load {_value(load[0])} at start, {_value(record['wall_seconds'])} s")


def render(results: Path = RESULTS) -> str:
    """The table's markdown: one row per results file, sorted by benchmark name."""
    rows = ["| benchmark | bars (measured op bar) | ran (date, commit, cores, load, wall) |",
            "| --- | --- | --- |"]
    for path in sorted(results.glob("*.json")):
        record = json.loads(path.read_text())
        if not isinstance(record.get("bars"), list) or "command" not in record:
            rows.append(f"| `{path.stem}` | not a record written by its script: rerun it | |")
            continue
        rows.append(f"| [`{record['benchmark']}`](benchmarks/{record['benchmark']}.py) "
                    f"| {_bars(record)} | {_ran(record)} |")
    return "\n".join(rows)


def readme_block(text: str) -> str:
    """The README's current table: the lines between the markers."""
    if START not in text or END not in text:
        raise SystemExit(f"README.md lacks the markers {START!r} ... {END!r}")
    return text.split(START, 1)[1].split(END, 1)[0].strip("\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--write", action="store_true", help="replace the README's table")
    parser.add_argument("--check", action="store_true", help="exit 1 when the README differs")
    args = parser.parse_args(argv)
    table = render()
    if args.write:
        text = README.read_text()
        head, rest = text.split(START, 1)
        README.write_text(f"{head}{START}\n{table}\n{END}{rest.split(END, 1)[1]}")
    elif args.check:
        if readme_block(README.read_text()) != table:
            print("README.md's benchmark table is not the results files': run "
                  "`python benchmarks/table.py --write`", file=sys.stderr)
            return 1
    else:
        print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
