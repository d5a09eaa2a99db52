"""Listing inputs: a folder of audio, or a JSONL / CSV / parquet manifest (including UALM's public
manifest formats), turned into an ordered stream of `InputRecord`s.

A malformed row never stops the listing: it becomes a record that is already rejected, with a
`manifest/...` or `input/...` reason, so it is accounted for like every other input.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ualm.config import CrawlConfig
from ualm.errors import UalmError
from ualm.inputs.records import AUDIO_EXTENSIONS, InputRecord
from ualm.inputs.rows import RowError, normalise_row
from ualm.inputs.source_rows import check_web_url

MANIFEST_SUFFIXES = {".jsonl": "jsonl", ".json": "jsonl", ".csv": "csv", ".parquet": "parquet"}


@dataclass(frozen=True)
class InputListing:
    """The inputs, as a stream: iterating gives every record in its global order (again on each
    pass, reading the sources anew), so no caller holds every row. `count` and `digest` (which
    identifies the listing) come from one pass when the listing is made."""

    paths: tuple[str, ...]
    allow_roots: tuple[str, ...]
    crawl: CrawlConfig
    count: int
    digest: str
    description: str
    rejected: int = 0
    """Records already rejected while listing (malformed rows, hostile paths, bad URLs)."""

    def __iter__(self) -> Iterator[InputRecord]:
        return iter_inputs(self.paths, self.allow_roots, self.crawl)


def list_inputs(paths: Sequence[str | Path], allow_roots: Sequence[str | Path] = (),
                crawl: CrawlConfig | None = None) -> InputListing:
    """Reads the inputs once, to count them and digest them; nothing is kept but the totals.
    Errors that stop a listing (a missing manifest, an unreadable dataset) surface here."""
    paths_, roots = tuple(str(p) for p in paths), tuple(str(r) for r in allow_roots)
    crawl = crawl or CrawlConfig()
    digest, count, rejected = hashlib.sha256(), 0, 0
    for record in iter_inputs(paths_, roots, crawl):
        digest.update(json.dumps(record.to_dict(), sort_keys=True).encode())
        count += 1
        rejected += record.reject_reason is not None
    return InputListing(paths_, roots, crawl, count, digest.hexdigest()[:16],
                        ", ".join(paths_), rejected)


def iter_inputs(paths: Sequence[str | Path], allow_roots: Sequence[str | Path] = (),
                crawl: CrawlConfig | None = None) -> Iterator[InputRecord]:
    """Every record of one or more inputs (folders, manifests, URL lists, Hugging Face datasets,
    WebDataset tars), in order, as a stream; indexes run across all of them. `crawl` maps
    dataset columns. Memory: one manifest batch and the set of ids seen (ids must be unique)."""
    from ualm.inputs.sources import iter_source

    if not paths:
        raise UalmError("no input given", fix="pass --input PATH (a folder or a manifest)")
    return _unique_ids(_chained(paths, [Path(r) for r in allow_roots], crawl or CrawlConfig(),
                                iter_source))


def _chained(paths: Sequence[str | Path], allow_roots: list[Path], crawl: CrawlConfig,
             iter_source: Any) -> Iterator[InputRecord]:
    count = 0
    for path in paths:
        listed = iter_source(str(path), count, crawl)
        if listed is None:
            listed = _iter_one(Path(path), allow_roots, start=count)
        for record in listed:
            count += 1
            yield record


def _iter_one(path: Path, allow_roots: list[Path], start: int) -> Iterator[InputRecord]:
    if not path.exists():
        raise UalmError(f"input not found: {path}", fix="check the --input path")
    if path.is_dir():
        return _iter_folder(path, start)
    kind = MANIFEST_SUFFIXES.get(path.suffix.lower())
    if kind is None:
        raise UalmError(
            f"cannot tell how to read {path}",
            fix="pass a folder, or a manifest ending in .jsonl, .json, .csv or .parquet",
        )
    roots = [str(path.resolve().parent), *(str(r.resolve()) for r in allow_roots)]
    raw_rows = {"jsonl": _read_jsonl, "csv": _read_csv, "parquet": _read_parquet}[kind](path)
    return _manifest_records(path, raw_rows, roots, start)


def _manifest_records(path: Path, raw_rows: Iterator[tuple[int, Any]], roots: list[str],
                      index: int) -> Iterator[InputRecord]:
    seen_ids: set[str] = set()
    base = str(path.parent)
    for line, row in raw_rows:
        if isinstance(row, RowError):
            yield _rejected(index, f"line:{line}", row, line)
            index += 1
            continue
        try:
            fields = normalise_row(row, default_source=path.stem)
        except RowError as err:
            yield _rejected(index, _row_id(row, line), err, line)
            index += 1
            continue
        fields.setdefault("input_id", _derived_id(fields, line, seen_ids))
        seen_ids.add(fields["input_id"])
        record = check_web_url(InputRecord(index=index, line=line, **fields))
        yield _check_path(record, base, roots)
        index += 1


def _iter_folder(folder: Path, start: int) -> Iterator[InputRecord]:
    root = folder.resolve()
    files = sorted(  # sorted names: the one part of a listing held whole (paths, not records)
        p.relative_to(root).as_posix() for p in root.rglob("*")
         if p.suffix.lower() in AUDIO_EXTENSIONS and p.is_file())
    for i, name in enumerate(files):
        yield InputRecord(index=start + i, input_id=name, path=str(root / name), source=root.name)


def _read_jsonl(path: Path) -> Iterator[tuple[int, Any]]:
    try:
        handle = open(path, encoding="utf-8", errors="replace")  # noqa: SIM115
    except OSError as exc:
        raise UalmError(f"cannot read manifest {path}: {exc.strerror}") from exc
    with handle:
        for line_no, text in enumerate(handle, start=1):
            if not text.strip():
                continue
            try:
                yield line_no, json.loads(text)
            except json.JSONDecodeError as exc:
                yield line_no, RowError("manifest/bad_json", f"line {line_no}: {exc.msg}")


def _read_csv(path: Path) -> Iterator[tuple[int, Any]]:
    try:
        handle = open(path, encoding="utf-8", errors="replace", newline="")  # noqa: SIM115
    except OSError as exc:
        raise UalmError(f"cannot read manifest {path}: {exc.strerror}") from exc
    with handle:
        reader = csv.DictReader(handle)
        if not reader.fieldnames:
            raise UalmError(f"manifest {path} has no header row", fix="add a header line naming the columns")
        for row in reader:
            clean = {k: (v if v != "" else None) for k, v in row.items() if k is not None}
            if None in row:
                yield reader.line_num, RowError("manifest/bad_row", "more fields than header columns")
            else:
                yield reader.line_num, clean


def _read_parquet(path: Path) -> Iterator[tuple[int, Any]]:
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
    except Exception as exc:
        raise UalmError(f"cannot read parquet manifest {path}: {exc}".splitlines()[0]) from exc
    line = 0
    for batch in parquet.iter_batches(batch_size=4096):
        for row in batch.to_pylist():
            line += 1
            yield line, row


def _row_id(row: Any, line: int) -> str:
    if isinstance(row, dict) and isinstance(row.get("id"), (str, int)) and str(row["id"]):
        return str(row["id"])
    return f"line:{line}"


def _derived_id(fields: dict[str, Any], line: int, seen: set[str]) -> str:
    """Without an explicit id, the path (or url) names the row; a repeat gets its line number."""
    base = fields.get("path") or fields.get("url") or f"line:{line}"
    if fields.get("start") or fields.get("end") is not None:
        base = f"{base}@{fields.get('start') or 0:g}-{fields.get('end') or 'end'}"
    return base if base not in seen else f"{base}#L{line}"


def _rejected(index: int, input_id: str, err: RowError, line: int) -> InputRecord:
    return InputRecord(index=index, input_id=input_id, reject_reason=err.reason,
                       reject_detail=err.detail, line=line)


def _check_path(record: InputRecord, base: str, roots: list[str]) -> InputRecord:
    """Resolves a relative path against the manifest's folder and refuses anything that lands
    outside the allowed roots (after following symlinks and `..`). String paths (`os.path`),
    not `pathlib`: this runs for every row, and pathlib's parsing was most of a listing's time."""
    if record.path is None:
        return record
    resolved = os.path.realpath(os.path.join(base, record.path))
    if not any(resolved == root or resolved.startswith(root.rstrip(os.sep) + os.sep)
               for root in roots):
        return _replace(record, path=resolved, reject_reason="input/outside_allowed_roots",
                        reject_detail=f"{record.path} resolves outside the allowed roots "
                                      "(add --allow-root to permit it)")
    return _replace(record, path=resolved)


def _replace(record: InputRecord, **changes: Any) -> InputRecord:
    from dataclasses import replace

    return replace(record, **changes)


def _unique_ids(records: Iterator[InputRecord]) -> Iterator[InputRecord]:
    """Ids must be unique: a repeated explicit id is renamed by its line and rejected."""
    seen: set[str] = set()
    for record in records:
        if record.input_id in seen:
            renamed = f"{record.input_id}#L{record.line or record.index}"
            changes: dict[str, Any] = {"input_id": renamed}
            if record.reject_reason is None:
                changes["reject_reason"] = "manifest/duplicate_id"
                changes["reject_detail"] = f"id {record.input_id!r} is used by an earlier row"
            record = _replace(record, **changes)
        seen.add(record.input_id)
        yield record
