"""Completion records: `_work/done/<stage>-<unit>.json`, written by a unit after everything it
wrote, with the hash and size of each file. A stage trusts a unit as finished only through its
record, so a crash before the record leaves objects that nothing vouches for and that the next
run rewrites.

On a local folder a record is renamed into place. On an object store it is created only if
absent (a conditional put): when two attempts at one unit race, the first record stays, and
the second attempt, finding a valid record, takes the unit as done. Its own objects had the
same names and the same bytes (outputs are deterministic), so nothing is lost or mixed.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from ualm.manifests import atomic, names

if TYPE_CHECKING:
    from ualm.manifests.layout import CorpusLayout


def write_done(layout: CorpusLayout, stage: str, index: int, outputs: Iterable[str],
               summary: dict[str, Any] | None = None,
               known_hashes: dict[str, str] | None = None) -> None:
    """Records that a unit finished, with the hash and size of every file it wrote
    (`known_hashes` spares re-reading files whose hash was taken while writing)."""
    known = known_hashes or {}
    files = {}
    for p in sorted(outputs):
        mine = layout.written(p)  # put by this attempt: no read back from the store
        files[layout.relative(p)] = (
            {"sha256": mine[0], "bytes": mine[1]} if mine is not None
            else {"sha256": known.get(p) or layout.sha256(p), "bytes": layout.size(p)})
    path = layout.done_record(stage, index)
    data = atomic.json_bytes({"files": files, "summary": summary or {}})
    if layout.local:
        layout.write_bytes(path, data)
    elif not layout.write_once(path, data) and read_done(layout, stage, index) is None:
        layout.write_bytes(path, data)  # the record there vouches for files no longer there


def read_done(layout: CorpusLayout, stage: str, index: int) -> dict[str, Any] | None:
    """The completion record of a unit if it is valid (every file present with its size)."""
    try:
        return _valid(layout, layout.read_bytes(layout.done_record(stage, index)))
    except OSError:
        return None


def finished(layout: CorpusLayout, stage: str, indexes: list[int]) -> list[bool]:
    """Whether each unit has a valid completion record: the records read at once (in a store,
    concurrent GETs: a driver checking thousands of units waits for one round, not each)."""
    blobs = layout.read_many([layout.done_record(stage, i) for i in indexes])
    return [blob is not None and _valid(layout, blob) is not None for blob in blobs]


def _valid(layout: CorpusLayout, data: bytes) -> dict[str, Any] | None:
    try:
        record = json.loads(data)
    except ValueError:
        return None
    for rel, meta in record.get("files", {}).items():
        try:
            if layout.size(layout.path(rel)) != meta["bytes"]:
                return None
        except FileNotFoundError:
            return None
    return record


def done_records(layout: CorpusLayout) -> Iterator[dict[str, Any]]:
    """Every readable completion record of the corpus, in name order (a damaged one is
    skipped: a rebuild redoes its unit)."""
    for path in layout.list(layout.path(names.DONE), suffix=".json"):
        try:
            yield layout.read_json(path)
        except (OSError, ValueError):
            continue
