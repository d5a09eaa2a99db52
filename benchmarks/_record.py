"""What every benchmark script shares: the facts of the machine it ran on, its bars checked in
code, and its results file written by the script itself (never edited by hand).

A script makes a `Record` when it starts (the load average and the clock are read then), measures,
then calls `finish(figures, bars)`: that prints each bar as PASS or FAIL, writes
`benchmarks/results/<name>.json` atomically (a temporary file, then a rename) and returns the
exit status: 0 when every bar holds, 1 otherwise.

A results file holds: the benchmark's name, the command line, the UTC start and end, the wall
time, the machine (cores, load average at the start and the end, platform, Python, torch, numpy,
ualm versions, git commit and whether the tree had local changes), the figures, every bar with
its measured value, and `passed`. `--quick` runs (small sizes, to check the record and the exit
path) write under /tmp/ualm-bench-quick/ unless `--results` says otherwise, so that they never
replace a full run's record. `--bar NAME=VALUE` replaces a bar's threshold (recorded in the
file), e.g. an impossible one to see the script exit 1.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
QUICK_RESULTS = Path(tempfile.gettempdir()) / "ualm-bench-quick"
REPO = Path(__file__).resolve().parent.parent

_OPS = {">=": lambda v, t: v >= t, ">": lambda v, t: v > t, "<=": lambda v, t: v <= t,
        "<": lambda v, t: v < t, "==": lambda v, t: v == t}


@dataclass
class Bar:
    """One claim checked in code: `value op threshold` (op one of >=, >, <=, <, ==)."""

    name: str
    value: Any
    op: str
    threshold: Any
    note: str = ""

    @property
    def passed(self) -> bool:
        value = self.value
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return False
        return bool(_OPS[self.op](value, self.threshold))

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "value": self.value, "op": self.op,
                "threshold": self.threshold, "passed": self.passed, "note": self.note}


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True,
                             timeout=20, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip()


def _load() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def machine_facts() -> dict[str, Any]:
    """Cores, platform and versions (the load average is read by `Record`)."""
    # results files are what benchmarks write, not changes to the code they measured
    status = _git("status", "--porcelain", "--untracked-files=no", "--", ".",
                  ":(exclude)benchmarks/results")
    return {
        "cores": os.cpu_count(),
        "affinity_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
        else None,
        "platform": platform.platform(),
        "processor": platform.machine(),
        "python": platform.python_version(),
        "versions": {p: _version(p) for p in ("ualm", "torch", "numpy", "dask", "apache-beam",
                                              "lightning")},
        "torch_threads": _torch_threads(),
        "gpu": _gpu(),
        "git_commit": _git("rev-parse", "HEAD"),
        "git_tracked_changes": None if status is None else bool(status),
    }


def _torch_threads() -> int | None:
    if "torch" not in sys.modules:
        return None
    return sys.modules["torch"].get_num_threads()


def _gpu() -> str | None:
    if "torch" not in sys.modules:
        return None
    torch = sys.modules["torch"]
    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none (CPU only)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """--quick, --results and --bar, the same in every script."""
    parser.add_argument("--quick", action="store_true",
                        help="small sizes: checks the record and the exit path in seconds to "
                             "minutes (its figures are not the benchmark's)")
    parser.add_argument("--results", type=Path, default=None,
                        help="results file (default: benchmarks/results/<name>.json, or "
                             f"{QUICK_RESULTS}/<name>.json with --quick)")
    parser.add_argument("--bar", action="append", default=[], metavar="NAME=VALUE",
                        help="replace a bar's threshold (recorded), e.g. to see exit 1")


class Record:
    """Started when the benchmark starts; `finish` checks the bars and writes the file."""

    def __init__(self, name: str, args: argparse.Namespace | None = None) -> None:
        self.name = name
        self.args = args
        self.started_utc = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
        self.started = time.perf_counter()
        self.load_before = _load()
        self.overrides: dict[str, float] = {}
        for item in getattr(args, "bar", None) or []:
            key, _, value = item.partition("=")
            self.overrides[key.strip()] = float(value)

    @property
    def quick(self) -> bool:
        return bool(getattr(self.args, "quick", False))

    def path(self) -> Path:
        given = getattr(self.args, "results", None)
        if given is not None:
            return Path(given)
        return (QUICK_RESULTS if self.quick else RESULTS) / f"{self.name}.json"

    def bar(self, name: str, value: Any, op: str, threshold: Any, note: str = "") -> Bar:
        """A bar, its threshold replaced when --bar NAME=VALUE names it."""
        if op not in _OPS:
            raise ValueError(f"unknown comparison {op!r}")
        if name in self.overrides:
            threshold = self.overrides[name]
            note = (note + "; " if note else "") + "threshold replaced by --bar"
        return Bar(name, value, op, threshold, note)

    def finish(self, figures: Mapping[str, Any], bars: Iterable[Bar],
               notes: Iterable[str] = ()) -> int:
        bars = list(bars)
        unknown = set(self.overrides) - {b.name for b in bars}
        if unknown:
            print(f"--bar names no bar of this benchmark: {sorted(unknown)}", file=sys.stderr)
        code = check_bars(bars)
        record = {
            "benchmark": self.name,
            "command": shlex.join([_relative(sys.executable), *sys.argv]),
            "cwd": os.getcwd(),
            "quick": self.quick,
            "started_utc": self.started_utc,
            "finished_utc": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "wall_seconds": round(time.perf_counter() - self.started, 1),
            "machine": {**machine_facts(), "load_average_at_start": self.load_before,
                        "load_average_at_end": _load(),
                        "load_note": "1, 5 and 15 minute load averages; the machine is shared, "
                                     "so other jobs' load is in the timings"},
            "bar_overrides": self.overrides,
            "bars": [b.to_dict() for b in bars],
            "passed": code == 0,
            "notes": list(notes),
            "figures": figures,
        }
        path = self.path()
        write_json(path, record)
        print(f"results written to {path}")
        print(json.dumps({"benchmark": self.name, "passed": code == 0, "figures": figures},
                         sort_keys=True, default=str))
        return code


def _relative(path: str) -> str:
    try:
        return os.path.relpath(path)
    except ValueError:
        return path


def check_bars(bars: Iterable[Bar]) -> int:
    """Prints each bar PASS or FAIL; 0 when all hold (and there is at least one), else 1."""
    bars = list(bars)
    for b in bars:
        value = f"{b.value:.4g}" if isinstance(b.value, float) else repr(b.value)
        note = f"  ({b.note})" if b.note else ""
        print(f"{'PASS' if b.passed else 'FAIL'}  {b.name}: {value} {b.op} {b.threshold}{note}")
    return 0 if bars and all(b.passed for b in bars) else 1


def write_json(path: Path, data: Any) -> None:
    """Atomically: a temporary file in the same folder, then a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w") as out:
            json.dump(data, out, indent=2, sort_keys=False, default=str)
            out.write("\n")
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
