"""Completion records of `ualm run`'s stages: `<run>/_run/<stage>.json`, written last, holding
the hash of everything the stage's result depends on and the paths it produced. A stage whose
record has the current hash and whose outputs still exist is complete and is skipped."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ualm.manifests.layout import atomic_write_json

RECORDS = "_run"


def stage_hash(name: str, settings: Any, upstream: str) -> str:
    """A stage's identity: its own settings and the hash of the stage before it, so a change
    anywhere upstream makes every later stage run again."""
    blob = json.dumps({"stage": name, "settings": settings, "upstream": upstream},
                      sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Record:
    stage: str
    hash: str
    outputs: dict[str, str]
    """Name → path (relative to the run folder when inside it)."""
    summary: dict[str, Any]
    seconds: float


def record_path(run: Path, stage: str) -> Path:
    return run / RECORDS / f"{stage}.json"


def read_record(run: Path, stage: str) -> Record | None:
    try:
        data = json.loads(record_path(run, stage).read_text())
        return Record(**data)
    except (OSError, ValueError, TypeError):
        return None


def complete(run: Path, stage: str, expected_hash: str) -> Record | None:
    """The stage's record when it matches `expected_hash` and every output is still there."""
    record = read_record(run, stage)
    if record is None or record.hash != expected_hash:
        return None
    if not all((run / p).exists() for p in record.outputs.values()):
        return None
    return record


def write_record(run: Path, record: Record) -> None:
    atomic_write_json(record_path(run, record.stage), record.__dict__)


def relative(run: Path, path: Path) -> str:
    """Inside the run folder: relative (the folder can move); elsewhere: absolute."""
    try:
        return path.resolve().relative_to(run.resolve()).as_posix()
    except ValueError:
        return str(path.resolve())
