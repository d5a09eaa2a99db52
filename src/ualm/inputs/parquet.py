"""Hugging Face datasets as a source: parquet files whose audio column is the `datasets` Audio
struct `{bytes, path}`, on the Hub (`hf://datasets/ORG/NAME[@REV][/FOLDER]`, read through
`huggingface_hub`'s HfFileSystem) or in a local folder of the same layout.

Listing reads every column but the audio, row group by row group; the ingest unit later reads
the audio column of the row groups it needs. Ids are `NAME/FILE#ROW` (FILE relative to the
dataset root), so a local snapshot of a Hub dataset lists with the same ids as the Hub.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from ualm.config import CrawlConfig
from ualm.errors import UalmError
from ualm.inputs.locations import open_source, reading
from ualm.inputs.records import InputRecord
from ualm.inputs.source_rows import source_record


def is_audio_parquet(path: Path | str, audio_column: str) -> bool:
    """True when the file's schema has `audio_column` as a struct with a `bytes` field. A store's
    URL costs the ranged reads of the footer."""
    try:
        with open_source(str(path)) as handle:
            schema = pq.read_schema(handle)
    except Exception:  # missing, not parquet, or damaged: let the manifest reader say so
        return False
    return _has_audio(schema, audio_column)


def _has_audio(schema: pa.Schema, audio_column: str) -> bool:
    index = schema.get_field_index(audio_column)
    if index < 0:
        return False
    kind = schema.field(index).type
    return pa.types.is_struct(kind) and kind.get_field_index("bytes") >= 0


def iter_local(files: list[Path], root: Path, start: int,
               crawl: CrawlConfig) -> Iterator[InputRecord]:
    """Rows of local parquet files, in file order; `root` is the dataset folder."""
    top = root.resolve()
    yield from iter_files([(p.resolve().as_uri(), p.resolve().relative_to(top).as_posix())
                           for p in files], top.name, start, crawl)


def iter_files(files: list[tuple[str, str]], name: str, start: int,
               crawl: CrawlConfig) -> Iterator[InputRecord]:
    """Rows of parquet files given as (location, path relative to the dataset root), a
    location a `file://` URL or a store's URL (read by ranged requests, row group by row
    group); `name` is the dataset's, the first part of every id."""
    for location, rel in files:
        with reading(location):  # remote: a missing object is one line naming the URL
            handle = open_source(location)
        with handle:
            for record in _iter_file(handle, location, f"{name}/{rel}", name, start, crawl):
                start += 1
                yield record


def iter_hub(spec: str, start: int, crawl: CrawlConfig) -> Iterator[InputRecord]:
    """Rows of every parquet file of a Hub dataset (or of a folder inside it), in path order."""
    from huggingface_hub import HfFileSystem

    parts = spec[len("hf://"):].strip("/").split("/")
    if len(parts) < 3 or parts[0] != "datasets":
        raise UalmError(f"cannot read {spec}", fix="use hf://datasets/ORG/NAME[@REVISION][/FOLDER]")
    fs = HfFileSystem()
    root = "/".join(parts[:3])
    base = spec[len("hf://"):].strip("/")
    try:
        files = sorted(fs.glob(f"{base}/**/*.parquet")) or sorted(fs.glob(f"{base}/*.parquet"))
    except Exception as exc:  # offline, missing repo, no permission: one clear line
        raise UalmError(f"cannot list {spec}: {exc}".splitlines()[0],
                        fix="check the dataset name, your token and the network") from exc
    if not files:
        raise UalmError(f"{spec} holds no parquet files", fix="point at a parquet dataset")
    name = parts[2].split("@", 1)[0]
    for file in files:
        rel = file[len(root):].lstrip("/")
        with fs.open(file, "rb") as handle:
            for record in _iter_file(handle, f"hf://{file}", f"{name}/{rel}", name, start, crawl):
                start += 1
                yield record


def _iter_file(handle: Any, file_url: str, id_prefix: str, source: str, start: int,
               crawl: CrawlConfig) -> Iterator[InputRecord]:
    try:
        parquet = pq.ParquetFile(handle)
    except Exception as exc:
        raise UalmError(f"cannot read parquet {file_url}: {exc}".splitlines()[0]) from exc
    if not _has_audio(parquet.schema_arrow, crawl.audio_column):
        raise UalmError(f"{file_url} has no `{crawl.audio_column}` column with the Audio struct",
                        fix="set crawl.audio_column to the column holding {bytes, path}")
    for row_number, row in enumerate(_rows(parquet, crawl.audio_column)):
        yield source_record(
            row, index=start + row_number, default_id=f"{id_prefix}#{row_number}",
            locator=f"{file_url}#row={row_number}", source=source, columns=crawl.columns,
            line=row_number + 1)


def _rows(parquet: pq.ParquetFile, audio_column: str) -> Iterator[dict[str, Any]]:
    """Every row's non-audio columns, one row group in memory at a time."""
    columns = [n for n in parquet.schema_arrow.names if n != audio_column]
    for group in range(parquet.num_row_groups):
        rows = parquet.metadata.row_group(group).num_rows
        if not columns:
            yield from ({} for _ in range(rows))
            continue
        yield from parquet.read_row_group(group, columns=columns).to_pylist()


class RowReader:
    """Reads the audio bytes of rows, keeping one row group's audio column in memory; one per
    ingest unit (its rows are consecutive, so each row group is read once)."""

    def __init__(self, audio_column: str) -> None:
        self.audio_column = audio_column
        self._files: dict[str, tuple[Any, pq.ParquetFile, list[int]]] = {}
        self._group: tuple[str, int, list[Any]] | None = None

    def read(self, file_url: str, row: int) -> bytes | None:
        """The row's audio bytes (None when the struct holds no bytes). Raises IndexError."""
        _, parquet, starts = self._open(file_url)
        group = max(i for i, s in enumerate(starts) if s <= row) if row >= 0 else -1
        if group < 0 or row >= starts[-1] + parquet.metadata.row_group(group).num_rows:
            raise IndexError(f"{file_url} has no row {row}")
        if self._group is None or self._group[:2] != (file_url, group):
            table = parquet.read_row_group(group, columns=[self.audio_column])
            self._group = (file_url, group, table.column(0).to_pylist())
        value = self._group[2][row - starts[group]]
        return value.get("bytes") if isinstance(value, dict) else None

    def _open(self, file_url: str) -> tuple[Any, pq.ParquetFile, list[int]]:
        if file_url not in self._files:
            handle = _open_file(file_url)
            parquet = pq.ParquetFile(handle)
            starts, total = [], 0
            for group in range(parquet.num_row_groups):
                starts.append(total)
                total += parquet.metadata.row_group(group).num_rows
            self._files[file_url] = (handle, parquet, starts or [0])
        return self._files[file_url]

    def close(self) -> None:
        for handle, _, _ in self._files.values():
            handle.close()
        self._files.clear()
        self._group = None


def _open_file(file_url: str) -> Any:
    if file_url.startswith("hf://"):
        from huggingface_hub import HfFileSystem

        return HfFileSystem().open(file_url[len("hf://"):], "rb")
    return open_source(file_url)
