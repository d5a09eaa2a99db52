"""A manifest's rows as records: the per-row work of a listing, run by the worker of the unit
that holds them (JSONL byte ranges, parquet row ranges, folder names) or, for a CSV manifest,
by the driver in one pass.

A malformed row never stops the reading: it becomes a record that is already rejected, with a
`manifest/...` or `input/...` reason, so it is accounted for like every other input.

Each record comes with the kind of its id, which the id resolution (`unique_ids`) needs: a row
without an explicit id gets its path (or url) as a *derived* id, made unique within its manifest
later; an `explicit` id is the row's own; `other` ids (rejected rows, folders, sources) are final
within their input.
"""

from __future__ import annotations

import csv
import io
import os
import posixpath
from collections.abc import Iterator, Sequence
from dataclasses import replace
from typing import Any

from ualm.errors import UalmError
from ualm.inputs.locations import (
    input_errors,
    is_remote,
    open_binary,
    read_range,
    reading,
    resolve,
    root_location,
    within,
)
from ualm.inputs.records import InputRecord, is_utf8, printable
from ualm.inputs.rows import RowError, loads_row, normalise_row
from ualm.inputs.source_rows import check_web_url
from ualm.inputs.units import Segment
from ualm.redact import redact_url

DERIVED, EXPLICIT, OTHER = "derived", "explicit", "other"


def read_segment(segment: Segment) -> Iterator[tuple[InputRecord, str]]:
    """The records of one segment with the kind of their ids; derived ids are the bare base
    (`unique_ids` adds the `#L<line>` of a repeat)."""
    if segment.kind == "folder":
        for i, name in enumerate(segment.names):
            yield folder_record(segment, segment.first_index + i, name), OTHER
        return
    raw = _jsonl_range(segment) if segment.kind == "jsonl" else _parquet_range(segment)
    rows = 0
    for record, kind in manifest_records(segment.path, raw, list(segment.roots),
                                         segment.first_index, segment.source):
        rows += 1
        yield record, kind
    if rows != segment.rows:
        raise UalmError(f"manifest {segment.path} changed while the build ran: "
                        f"{rows} rows where {segment.rows} were listed",
                        fix="rebuild into a new --out folder from a manifest that stays put")


def folder_record(segment: Segment, index: int, name: str) -> InputRecord:
    """A folder's file, rejected when its name is not UTF-8 (no table can record it) or it is
    a link that leads out of the folder."""
    path = os.path.join(segment.path, name)
    record = InputRecord(index=index, input_id=printable(name), path=printable(path),
                         source=segment.source)
    if not is_utf8(name):
        return replace(record, reject_reason="input/bad_name",
                       reject_detail=f"{printable(name)}: the file name is not UTF-8")
    if is_remote(path) or within(os.path.realpath(path), os.path.realpath(segment.path)):
        return record
    return replace(record, reject_reason="input/outside_allowed_roots",
                   reject_detail=f"{name} is a link that resolves outside {segment.path}")


def manifest_records(path: str, raw_rows: Iterator[tuple[int, Any]], roots: list[str],
                     index: int, source: str) -> Iterator[tuple[InputRecord, str]]:
    base = posixpath.dirname(path)  # a local path is absolute here, like a URL
    for line, row in raw_rows:
        if isinstance(row, RowError):
            yield _rejected(index, f"line:{line}", row, line), OTHER
            index += 1
            continue
        try:
            fields = normalise_row(row, default_source=source)
        except RowError as err:
            yield _rejected(index, _row_id(row, line), err, line), OTHER
            index += 1
            continue
        kind = EXPLICIT if "input_id" in fields else DERIVED
        if kind == DERIVED:
            fields["input_id"] = derived_base(fields, line)
        record = check_web_url(InputRecord(index=index, line=line, **fields))
        yield check_path(record, base, roots), kind
        index += 1


def _jsonl_range(segment: Segment) -> Iterator[tuple[int, Any]]:
    """Lines of a byte range decoded as text mode reads a file (the same line ends and
    replacement characters), numbered from the segment's first line; blank lines are skipped."""
    data = read_range(segment.path, segment.start, segment.end)
    text = io.TextIOWrapper(io.BytesIO(data), encoding="utf-8", errors="replace")
    for line_no, line in enumerate(text, start=segment.first_line):
        if not line.strip():
            continue
        try:
            yield line_no, loads_row(line, f"line {line_no}")
        except RowError as err:
            yield line_no, err


def _parquet_range(segment: Segment) -> Iterator[tuple[int, Any]]:
    """Rows [start, end) of a parquet manifest: the row groups they fall in are read, no other."""
    import pyarrow as pa

    parquet = open_parquet(segment.path)
    groups, first, at = [], None, 0
    for g in range(parquet.metadata.num_row_groups):
        rows = parquet.metadata.row_group(g).num_rows
        if at < segment.end and at + rows > segment.start:
            groups.append(g)
            first = at if first is None else first
        at += rows
    table = parquet.read_row_groups(groups) if groups else pa.table({})
    rows = table.slice(segment.start - (first or 0), segment.end - segment.start).to_pylist()
    for i, row in enumerate(rows):
        yield segment.start + 1 + i, row


def open_parquet(path: str) -> Any:
    """A parquet manifest's file: its metadata first, then the row groups asked for (a store
    serves each as ranged reads)."""
    import pyarrow.parquet as pq

    try:
        if is_remote(path):
            handle = open_binary(path)
            with input_errors(path):
                return pq.ParquetFile(handle)
        return pq.ParquetFile(path)
    except UalmError:
        raise
    except Exception as exc:
        raise UalmError(f"cannot read parquet manifest {path}: {exc}".splitlines()[0]) from exc


def read_csv(path: str) -> Iterator[tuple[int, Any]]:
    handle = io.TextIOWrapper(open_binary(path), encoding="utf-8", errors="replace", newline="")
    with handle, reading(path):
        reader = csv.DictReader(handle)
        if not reader.fieldnames:
            raise UalmError(f"manifest {path} has no header row", fix="add a header line naming the columns")
        for row in reader:
            clean = {k: (v if v != "" else None) for k, v in row.items() if k is not None}
            if None in row:
                yield reader.line_num, RowError("manifest/bad_row", "more fields than header columns")
            else:
                yield reader.line_num, clean


def _row_id(row: Any, line: int) -> str:
    if isinstance(row, dict) and isinstance(row.get("id"), (str, int)) and str(row["id"]):
        return str(row["id"])
    return f"line:{line}"


def derived_base(fields: dict[str, Any], line: int) -> str:
    """Without an explicit id, the path (or url) names the row (with its window, if any);
    the id is recorded everywhere, so a URL's credentials are left out of it."""
    base = redact_url(fields.get("path") or fields.get("url") or f"line:{line}")
    if fields.get("start") or fields.get("end") is not None:
        base = f"{base}@{fields.get('start') or 0:g}-{fields.get('end') or 'end'}"
    return base


def _rejected(index: int, input_id: str, err: RowError, line: int) -> InputRecord:
    return InputRecord(index=index, input_id=input_id, reject_reason=err.reason,
                       reject_detail=err.detail, line=line)


def check_path(record: InputRecord, base: str, roots: list[str]) -> InputRecord:
    """Resolves a relative path against the manifest's folder (local or a URL) and refuses
    anything that lands outside the allowed roots (after following symlinks and `..`; see
    `locations`). String paths, not `pathlib`: this runs for every row, and pathlib's parsing
    was most of a listing's time."""
    if record.path is None:
        return record
    try:
        resolved = resolve(base, record.path)
    except (OSError, ValueError) as exc:  # a name the file system refuses outright
        return replace(record, reject_reason="input/unreadable",
                       reject_detail=f"{record.path[:200]!r}: {exc}")
    if resolved.split("://", 1)[0].lower() in ("http", "https"):  # only the crawler fetches web
        return replace(record, path=resolved, reject_reason="crawl/bad_url",
                       reject_detail=f"{record.path}: a web address goes in the `url` column "
                                     "(fetched under the crawl policy), not in `path`")
    if not any(within(resolved, root) for root in roots):
        return replace(record, path=resolved, reject_reason="input/outside_allowed_roots",
                       reject_detail=f"{record.path} resolves outside the allowed roots "
                                     "(add --allow-root to permit it)")
    return replace(record, path=resolved)


def manifest_roots(path: str, allow_roots: Sequence[str]) -> tuple[str, ...]:
    """The manifest's own folder (a local one resolved), then the allowed roots."""
    folder = posixpath.dirname(path) if is_remote(path) else os.path.dirname(
        os.path.realpath(path))
    return (root_location(folder), *(root_location(str(r)) for r in allow_roots))

