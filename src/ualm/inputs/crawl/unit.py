"""Obtaining the audio of a unit's URL records as temporary local files.

`UnitSources` is entered once per ingest unit. On entry it starts fetching every http(s) record
of the unit at once, on an asyncio loop in a background thread, so downloads overlap each other
and the decoding of records already fetched. `obtain(record)` waits for that record's file (or
raises `AudioRejected` with its crawl reason); dataset rows and tar members are read on demand.
Records whose `path` is a URL of an object store (`s3://`, `gs://`, any fsspec URL) are copied
by `RemoteObjects`, a few ahead of the one being decoded. Every temporary file lives in one
folder that is removed when the unit ends; a configured cache keeps its own copies.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import tempfile
import threading
from concurrent.futures import Future
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ualm.audio.errors import AudioRejected
from ualm.config import CrawlConfig
from ualm.inputs.crawl.objects import RemoteObjects
from ualm.inputs.records import InputRecord
from ualm.manifests.storage import is_remote

if TYPE_CHECKING:  # aiohttp is imported only by units that fetch
    from ualm.inputs.crawl.fetch import Fetcher, FetchResult

_TRUE = frozenset({"1", "true", "yes", "y", "t", "on"})


def is_web(url: str | None) -> bool:
    return url is not None and url.split(":", 1)[0].lower() in ("http", "https")


def is_fetched(record: InputRecord) -> bool:
    """True when the record's audio is obtained through `UnitSources` (a URL, a dataset row or
    tar member, a path on an object store), not read from a local path."""
    return record.path is None or is_remote(record.path)


def opt_out(record: InputRecord, column: str | None) -> bool:
    """True when the row's opt-out column holds a true value (true, 1, "yes", ...)."""
    if column is None:
        return False
    value = json.loads(record.extra or "{}").get(column)
    if isinstance(value, str):
        return value.strip().lower() in _TRUE
    return bool(value) if isinstance(value, (bool, int, float)) else False


class UnitSources:
    """Local files for the URL records of one unit; a context manager.

    >>> with UnitSources(records, CrawlConfig()) as sources:  # doctest: +SKIP
    ...     path = sources.obtain(records[0])  # raises AudioRejected("crawl/http_404", ...)
    ...     sources.release(records[0])
    """

    def __init__(self, records: list[InputRecord], config: CrawlConfig) -> None:
        self.config = config
        self._remote = RemoteObjects(records)
        self._web = [r for r in records if r.path is None and r.reject_reason is None
                     and is_web(r.url) and not opt_out(r, config.opt_out_column)]
        self._any_source = any(r.path is None and r.url for r in records)
        self._members = [r for r in records if r.path is None and r.reject_reason is None
                         and r.url and "#member=" in r.url]
        self._futures: dict[int, Future[FetchResult]] = {}
        self._files: dict[int, Path] = {}
        self._given: dict[int, str] = {}
        self._tmp: Path | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._fetcher: Fetcher | None = None
        self._rows: Any = None
        self._tar_results: dict[str, dict[int, tuple[str, str] | None]] = {}

    def __enter__(self) -> UnitSources:
        if self._web or self._any_source or self._remote.records:
            self._tmp = Path(tempfile.mkdtemp(prefix="ualm-unit-"))
        if self._web:
            self._loop = asyncio.new_event_loop()
            self._thread = threading.Thread(target=self._loop.run_forever, daemon=True,
                                            name="ualm-crawl")
            self._thread.start()
            self._fetcher = self._run(self._open_fetcher()).result()
            for record in self._web:
                dest = self._tmp / f"web-{record.index}"
                self._futures[record.index] = self._run(self._fetcher.fetch(record.url, dest))
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self._remote.close()
            if self._loop is not None:
                for future in self._futures.values():
                    future.cancel()
                if self._fetcher is not None:
                    self._run(self._fetcher.__aexit__(None, None, None)).result(timeout=30)
                self._loop.call_soon_threadsafe(self._loop.stop)
                if self._thread is not None:
                    self._thread.join(timeout=30)
                self._loop.close()
        finally:
            if self._rows is not None:
                self._rows.close()
            if self._tmp is not None:
                shutil.rmtree(self._tmp, ignore_errors=True)

    def _run(self, coroutine: Any) -> Future[Any]:
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop)

    async def _open_fetcher(self) -> Fetcher:
        from ualm.inputs.crawl.fetch import Fetcher

        assert self._tmp is not None
        return await Fetcher(self.config, self._tmp).__aenter__()

    def obtain(self, record: InputRecord) -> Path:
        """A local file holding the record's audio bytes. Raises AudioRejected."""
        path = self._obtain(record)
        self._given[record.index] = str(path)
        return path

    def named(self, exc: AudioRejected, record: InputRecord) -> AudioRejected:
        """`exc` with the record's own location where its detail names the local copy."""
        local = self._given.get(record.index)
        if not local:
            return exc
        return AudioRejected(exc.reason, exc.detail.replace(local, record.path or record.url or ""))

    def _obtain(self, record: InputRecord) -> Path:
        if record.path is not None:  # an object store's URL: a file, like a local path
            assert self._tmp is not None
            self._files[record.index] = path = self._remote.obtain(record, self._tmp)
            return path
        if opt_out(record, self.config.opt_out_column):
            raise AudioRejected("crawl/opt_out",
                                f"the row's {self.config.opt_out_column!r} column opts it out")
        url = record.url or ""
        if record.index in self._futures:
            result = self._futures[record.index].result()
            if result.reason is not None:
                raise AudioRejected(result.reason, result.detail)
            assert result.path is not None
            if result.temporary:
                self._files[record.index] = result.path
            return result.path
        if "#row=" in url:
            return self._row_file(record, url)
        if "#member=" in url:
            return self._member_file(record, url)
        raise AudioRejected("crawl/bad_url", f"{url!r}: only http and https URLs are fetched")

    def release(self, record: InputRecord) -> None:
        """Deletes the record's temporary file as soon as it is decoded (bounded disk use)."""
        self._given.pop(record.index, None)
        path = self._files.pop(record.index, None)
        if path is not None:
            path.unlink(missing_ok=True)

    def _row_file(self, record: InputRecord, url: str) -> Path:
        from ualm.inputs.parquet import RowReader

        file_url, row = url.rsplit("#row=", 1)
        if self._rows is None:
            self._rows = RowReader(self.config.audio_column)
        try:
            data = self._rows.read(file_url, int(row))
        except (IndexError, ValueError) as exc:
            raise AudioRejected("source/missing_row", str(exc)) from exc
        except FileNotFoundError as exc:  # the file went away after listing: the row fails
            raise AudioRejected("input/missing_file", file_url) from exc
        except PermissionError as exc:
            raise AudioRejected("input/unreadable", f"{file_url}: access denied") from exc
        if data is None:
            raise AudioRejected("source/no_audio_bytes",
                                f"row {row}'s `{self.config.audio_column}` holds no bytes")
        if len(data) > self.config.max_bytes:
            raise AudioRejected("crawl/too_large",
                                f"{len(data):,} > {self.config.max_bytes:,} bytes")
        return self._write(record, data)

    def _member_file(self, record: InputRecord, url: str) -> Path:
        from ualm.inputs.wds import parse_locator, read_members

        try:
            file_url, ordinal, _ = parse_locator(url)
        except (ValueError, KeyError) as exc:
            raise AudioRejected("source/missing_member", url) from exc
        if file_url not in self._tar_results:
            # One pass (or ranged reads) per tar collects every member this unit needs from it.
            wanted: dict[int, InputRecord] = {}
            spans = {}
            for other in self._members:
                try:
                    other_tar, number, span = parse_locator(other.url or "")
                except (ValueError, KeyError):
                    continue
                if other_tar == file_url:
                    wanted[number], spans[number] = other, span

            def sink(n: int, handle: Any) -> None:
                self._write(wanted[n], handle)

            self._tar_results[file_url] = read_members(file_url, spans, self.config.max_bytes,
                                                       sink)
        problem = self._tar_results[file_url].get(ordinal, ("source/missing_member", url))
        if problem is not None:
            raise AudioRejected(*problem)
        return self._files[record.index]

    def _write(self, record: InputRecord, data: bytes | Any) -> Path:
        """Writes bytes, or copies a file object in blocks (tar members can be large)."""
        assert self._tmp is not None
        path = self._tmp / f"src-{record.index}"
        with open(path, "wb") as out:
            if isinstance(data, bytes):
                out.write(data)
            else:
                shutil.copyfileobj(data, out, 1 << 20)
        self._files[record.index] = path
        return path
