"""Listing inputs: a folder of audio, a JSONL / CSV / parquet manifest (UALM's public manifest
formats included), or a source of `ualm.inputs.sources`, turned into counted, digested work
units (`units.UnitPlan`) without parsing a row of a JSONL or parquet manifest.

A manifest, and a source (a URL list, WebDataset tars, an audio-parquet dataset), may be local
or a URL of any fsspec store (`s3://`, `gs://`; `locations`). The driver
reads a JSONL manifest's bytes (`scan`), a parquet manifest's metadata and a folder's sorted names
(never an audio file's); the worker of each unit parses its own rows (`manifest_rows`) and ids
are made unique by a keyed reduce (`unique_ids`). CSV manifests (a quoted field may hold a newline, so
bytes cannot be cut safely) and sources are still listed record by record on the driver.

The inputs digest is a hash over each input's path as given, the folder its relative rows
resolve against, the allowed roots, and its bytes (a manifest), names (a folder) or records (a
source): it changes when anything a unit's records depend on does.
"""

from __future__ import annotations

import hashlib
import json
import os
import posixpath
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ualm.config import CrawlConfig
from ualm.errors import UalmError
from ualm.inputs import manifest_rows
from ualm.inputs.locations import (
    input_errors,
    is_remote,
    normalise_url,
    open_binary,
    reading,
    remote_size,
)
from ualm.inputs.records import AUDIO_EXTENSIONS, InputRecord
from ualm.inputs.scan import BLOCK, scan_jsonl
from ualm.inputs.units import InputPlan, UnitPlan, auto_unit_size
from ualm.manifests.storage import filesystem

MANIFEST_SUFFIXES = {".jsonl": "jsonl", ".json": "jsonl", ".csv": "csv", ".parquet": "parquet"}
LISTING_RULES = b"ualm-listing/2"
"""Part of the digest: changes when the rules that turn inputs into records do."""


@dataclass(frozen=True)
class InputListing:
    """The inputs as work units: `units[u]` is unit u's reference (`units.UnitRef`), `count`
    the rows, `digest` identifies them. Iterating gives every record in global order, read and
    resolved in this process (tests and small tools; holds every id)."""

    paths: tuple[str, ...]
    count: int
    digest: str
    description: str
    units: UnitPlan

    def __iter__(self) -> Iterator[InputRecord]:
        from ualm.inputs.unit_reader import iter_listing

        return iter_listing(self.units)


def list_inputs(paths: Sequence[str | Path], allow_roots: Sequence[str | Path] = (),
                crawl: CrawlConfig | None = None, unit_size: int | None = None) -> InputListing:
    """Counts, digests and cuts the inputs into units of `unit_size` (None: the count decides,
    `units.auto_unit_size`; `listing.units.unit_size` says what it chose). Errors that stop a
    listing (a missing manifest, an unreadable file, an unknown suffix) surface here."""
    if not paths:
        raise UalmError("no input given", fix="pass --input PATH (a folder or a manifest)")
    crawl = crawl or CrawlConfig()
    roots = [str(r) for r in allow_roots]
    digest = hashlib.sha256(LISTING_RULES)
    digest.update(json.dumps([str(r) for r in allow_roots]).encode())
    plans, count = [], 0
    for number, spec in enumerate(str(p) for p in paths):
        digest.update(b"\0input\0" + spec.encode())
        plan = _plan_one(number, spec, count, roots, crawl, unit_size, digest)
        plans.append(plan)
        count += plan.rows
    size = unit_size or auto_unit_size(count)
    for plan in plans:
        if plan.marks is not None:  # marked for the size of the rows before it ended
            plan.marks.coarsen(plan.first_index, size)
    return InputListing(tuple(str(p) for p in paths), count, digest.hexdigest()[:16],
                        ", ".join(str(p) for p in paths), UnitPlan(plans, size))


def _plan_one(number: int, spec: str, start: int, roots: list[str], crawl: CrawlConfig,
              unit_size: int | None, digest: Any) -> InputPlan:
    from ualm.inputs.sources import iter_source

    if is_remote(spec) and not spec.startswith("hf://"):
        full = normalise_url(spec)
        if iter_source(full, start, crawl) is not None:  # a URL list, tars, a parquet dataset
            return _records_plan(number, start, lambda: _other(iter_source(full, start, crawl)),
                                 digest, hash_records=True)
        if posixpath.splitext(_url_path(full))[1].lower() not in MANIFEST_SUFFIXES:
            return _remote_folder_plan(number, full, start, digest)
        remote_size(full)  # "input not found: URL" (a missing object, bucket or prefix)
    else:
        if iter_source(spec, start, crawl) is not None:
            return _records_plan(number, start, lambda: _other(iter_source(spec, start, crawl)),
                                 digest, hash_records=True)
        path = Path(spec)
        if not path.exists():
            raise UalmError(f"input not found: {path}", fix="check the --input path")
        if path.is_dir():
            return _folder_plan(number, path, start, digest)
        full = os.path.join(os.getcwd(), spec)  # absolute: a unit's worker may run elsewhere
    name = posixpath.basename(_url_path(full))  # a signed URL's query is not its name
    stem, suffix = posixpath.splitext(name)
    kind = MANIFEST_SUFFIXES.get(suffix.lower())
    if kind is None:
        raise UalmError(
            f"cannot tell how to read {spec}",
            fix="pass a folder, or a manifest ending in .jsonl, .json, .csv or .parquet",
        )
    allowed = manifest_rows.manifest_roots(full, roots)
    digest.update(posixpath.dirname(full).encode() + b"\0")
    common: dict[str, Any] = {"input_no": number, "path": full, "first_index": start,
                              "roots": allowed, "source": stem}
    if kind == "csv":
        _hash_file(full, digest)
        return _records_plan(number, start, lambda: manifest_rows.manifest_records(
            full, manifest_rows.read_csv(full), list(allowed), start, stem), digest)
    if kind == "parquet":
        rows = manifest_rows.open_parquet(full).metadata.num_rows
        _hash_file(full, digest)
        return InputPlan("parquet", rows=rows, **common)
    with open_binary(full) as handle, reading(full):
        marks = scan_jsonl(handle, start, unit_size, digest)
    return InputPlan("jsonl", rows=marks.rows, marks=marks, **common)


def _url_path(location: str) -> str:
    """The path of a URL (no query or fragment); a local path as it is."""
    return urlsplit(location).path if "://" in location else location


def _records_plan(number: int, start: int, records: Callable[[], Iterator[tuple[Any, str]]],
                  digest: Any, hash_records: bool = False) -> InputPlan:
    """An input listed record by record on the driver: one pass now to count (and, for a
    source, digest) them; the build lists them again into the units' record files."""
    rows = 0
    for record, _ in records():
        if hash_records:
            digest.update(json.dumps(record.to_dict(), sort_keys=True).encode())
        rows += 1
    return InputPlan("records", number, "", start, rows, records=records)


def _other(records: Iterator[InputRecord]) -> Iterator[tuple[InputRecord, str]]:
    from ualm.inputs.manifest_rows import OTHER

    return ((r, OTHER) for r in records)


def _folder_plan(number: int, folder: Path, start: int, digest: Any) -> InputPlan:
    root = folder.resolve()
    names = sorted(  # sorted names: the one part of a listing held whole (paths, not records)
        p.relative_to(root).as_posix() for p in root.rglob("*")
        if p.suffix.lower() in AUDIO_EXTENSIONS and p.is_file())
    digest.update(json.dumps([str(root), names]).encode())
    return InputPlan("folder", number, str(root), start, len(names), source=root.name,
                     names=names)


def _remote_folder_plan(number: int, url: str, start: int, digest: Any) -> InputPlan:
    """A prefix of a bucket as a folder of audio: its objects' names, listed once and sorted
    (the names are held as a local folder's are); each unit's worker fetches its own objects."""
    with input_errors(url):
        fs, inner = filesystem(url)
        keys = fs.find(inner)
    prefix = inner.rstrip("/") + "/"
    names = sorted(key[len(prefix):] for key in keys if key.startswith(prefix)
                   and posixpath.splitext(key)[1].lower() in AUDIO_EXTENSIONS)
    if not names:
        raise UalmError(f"input not found: {url} holds no audio objects "
                        f"({', '.join(sorted(AUDIO_EXTENSIONS))})",
                        fix="check the prefix, or pass a manifest (.jsonl, .csv or .parquet) "
                            "that lists the objects")
    digest.update(json.dumps([url, names]).encode())
    return InputPlan("folder", number, url, start, len(names), source=posixpath.basename(url),
                     names=names)


def _hash_file(full: str, digest: Any) -> None:
    with open_binary(full) as handle, reading(full):
        while block := handle.read(BLOCK):
            digest.update(block)
