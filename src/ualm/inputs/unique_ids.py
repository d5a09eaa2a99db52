"""Making input ids unique, one id at a time in global order, as the listing always did:

- within one manifest, a row without an explicit id takes its derived id (path or url, with
  `@start-end` for a window); if that id was already taken in the same manifest (by an explicit
  or a derived id) it becomes `<id>#L<line>`, and is not rejected;
- across all inputs, a repeated id is renamed `<id>#L<line or index>` and rejected
  `manifest/duplicate_id` (unless it was rejected already); the earliest occurrence keeps it.

Every id a row can end with is its first id plus `#L...` suffixes, so all of them share the
*root* (the text before the first `#L`). Rows are therefore bucketed by the hash of their root:
one bucket's rows, resolved in global order by `IdResolver`, decide exactly what the whole
listing would, renamed chains included. The build runs this as a keyed reduce
(`ualm.pipelines.input_ids`): memory per reduce is one bucket's ids (the rows / buckets,
plus every row of a root repeated many times); a plain iteration of a listing runs one
resolver over every row (all ids held).
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from dataclasses import replace
from typing import NamedTuple

from ualm.inputs.manifest_rows import DERIVED, OTHER
from ualm.inputs.records import InputRecord


class IdRow(NamedTuple):
    """What the resolution needs of one row; sorts in global order."""

    index: int
    input_no: int
    line: int | None
    kind: str
    input_id: str


class Rename(NamedTuple):
    """A row whose id changed: its new id, and the id it repeated when that made it a
    duplicate (None for a repeat of a derived id within its manifest)."""

    index: int
    input_id: str
    repeated: str | None


def id_root(input_id: str) -> str:
    return input_id.split("#L", 1)[0]


def id_bucket(input_id: str, buckets: int) -> int:
    digest = hashlib.blake2b(id_root(input_id).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % buckets


class IdResolver:
    """Feed rows in global order; `resolve` says what each row's id becomes."""

    def __init__(self) -> None:
        self._in_manifest: dict[int, set[str]] = defaultdict(set)
        self._seen: set[str] = set()

    def resolve(self, row: IdRow) -> Rename | None:
        ident, repeated = row.input_id, None
        if row.kind != OTHER:
            taken = self._in_manifest[row.input_no]
            if row.kind == DERIVED and ident in taken:
                ident = f"{ident}#L{row.line}"
            taken.add(ident)
        if ident in self._seen:
            repeated, ident = ident, f"{ident}#L{row.line or row.index}"
        self._seen.add(ident)
        return Rename(row.index, ident, repeated) if ident != row.input_id else None


def apply_rename(record: InputRecord, rename: Rename) -> InputRecord:
    changes: dict[str, object] = {"input_id": rename.input_id}
    if rename.repeated is not None and record.reject_reason is None:
        changes["reject_reason"] = "manifest/duplicate_id"
        changes["reject_detail"] = f"id {rename.repeated!r} is used by an earlier row"
    return replace(record, **changes)
