"""Listing inputs: a folder of audio, or a JSONL / CSV / parquet manifest (including UALM's public
manifest formats), turned into an ordered list of `InputRecord`s.

A malformed row never stops the listing: it becomes a record that is already rejected, with a
`manifest/...` or `input/...` reason, so it is accounted for like every other input.
"""

from __future__ import annotations

import csv
import hashlib
import json
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
    """All input records in their global order, and a digest that identifies the listing."""

    records: list[InputRecord]
    digest: str
    description: str


def list_inputs(paths: Sequence[str | Path], allow_roots: Sequence[str | Path] = (),
                crawl: CrawlConfig | None = None) -> InputListing:
    """Lists one or more inputs (folders, manifests, URL lists, Hugging Face datasets,
    WebDataset tars) in order; indexes run across all of them. `crawl` maps dataset columns."""
    from ualm.inputs.sources import list_source

    if not paths:
        raise UalmError("no input given", fix="pass --input PATH (a folder or a manifest)")
    records: list[InputRecord] = []
    for path in paths:
        listed = list_source(str(path), len(records), crawl or CrawlConfig())
        if listed is None:
            listed = _list_one(Path(path), [Path(r) for r in allow_roots], start=len(records))
        records.extend(listed)
    _reject_duplicate_ids(records)
    digest = hashlib.sha256()
    for record in records:
        digest.update(json.dumps(record.to_dict(), sort_keys=True).encode())
    return InputListing(records, digest.hexdigest()[:16], ", ".join(str(p) for p in paths))


def _list_one(path: Path, allow_roots: list[Path], start: int) -> list[InputRecord]:
    if not path.exists():
        raise UalmError(f"input not found: {path}", fix="check the --input path")
    if path.is_dir():
        return _list_folder(path, start)
    kind = MANIFEST_SUFFIXES.get(path.suffix.lower())
    if kind is None:
        raise UalmError(
            f"cannot tell how to read {path}",
            fix="pass a folder, or a manifest ending in .jsonl, .json, .csv or .parquet",
        )
    roots = [path.resolve().parent, *(r.resolve() for r in allow_roots)]
    raw_rows = {"jsonl": _read_jsonl, "csv": _read_csv, "parquet": _read_parquet}[kind](path)
    records: list[InputRecord] = []
    seen_ids: set[str] = set()
    for line, row in raw_rows:
        index = start + len(records)
        if isinstance(row, RowError):
            records.append(_rejected(index, f"line:{line}", row, line))
            continue
        try:
            fields = normalise_row(row, default_source=path.stem)
        except RowError as err:
            records.append(_rejected(index, _row_id(row, line), err, line))
            continue
        fields.setdefault("input_id", _derived_id(fields, line, seen_ids))
        seen_ids.add(fields["input_id"])
        record = check_web_url(InputRecord(index=index, line=line, **fields))
        records.append(_check_path(record, path.parent, roots))
    return records


def _list_folder(folder: Path, start: int) -> list[InputRecord]:
    root = folder.resolve()
    files = sorted(
        (p for p in root.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS and p.is_file()),
        key=lambda p: p.relative_to(root).as_posix(),
    )
    return [
        InputRecord(
            index=start + i,
            input_id=p.relative_to(root).as_posix(),
            path=str(p),
            source=root.name,
        )
        for i, p in enumerate(files)
    ]


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


def _check_path(record: InputRecord, base: Path, roots: list[Path]) -> InputRecord:
    """Resolves a relative path against the manifest's folder and refuses anything that lands
    outside the allowed roots (after following symlinks and `..`)."""
    if record.path is None:
        return record
    candidate = Path(record.path)
    resolved = (candidate if candidate.is_absolute() else base / candidate).resolve()
    if not any(resolved == root or root in resolved.parents for root in roots):
        return _replace(record, path=str(resolved), reject_reason="input/outside_allowed_roots",
                        reject_detail=f"{record.path} resolves outside the allowed roots "
                                      "(add --allow-root to permit it)")
    return _replace(record, path=str(resolved))


def _replace(record: InputRecord, **changes: Any) -> InputRecord:
    from dataclasses import replace

    return replace(record, **changes)


def _reject_duplicate_ids(records: list[InputRecord]) -> None:
    """Ids must be unique: a repeated explicit id is renamed by its line and rejected."""
    seen: set[str] = set()
    for i, record in enumerate(records):
        if record.input_id in seen:
            changes: dict[str, Any] = {"input_id": f"{record.input_id}#L{record.line or i}"}
            if record.reject_reason is None:
                changes["reject_reason"] = "manifest/duplicate_id"
                changes["reject_detail"] = f"id {record.input_id!r} is used by an earlier row"
            records[i] = _replace(record, **changes)
        seen.add(records[i].input_id)
