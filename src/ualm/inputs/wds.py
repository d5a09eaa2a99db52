"""WebDataset tars as a source (another team's audio shards): each sample (members sharing a
key) is one input, its audio member the audio and its `.json` / `.txt` members the metadata.

Tars are read member by member as a stream and nothing is ever extracted: member names are only
compared, never joined to a path. A sample with a hostile name (absolute, `..`, empty parts) is
rejected `source/unsafe_member`; one whose audio member is a link or a device is rejected
`source/not_a_file`; a sample with no audio member is rejected `source/no_audio`.

A tar may be a local file or an object of any fsspec store (`s3://b/shards/x.tar`). A sample's
locator is `TAR#member=N`, and for an uncompressed tar also `&offset=O&size=S` (the audio
member's data): a unit's worker then reads each member with a ranged read of its header block
and data, never the whole tar, and checks that the header still says a regular file of S bytes.
A compressed tar is streamed from its start (no byte of it lands on disk but the members).
"""

from __future__ import annotations

import posixpath
import re
import tarfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any
from urllib.parse import unquote, urlsplit

from ualm.config import CrawlConfig
from ualm.errors import UalmError
from ualm.inputs.locations import is_remote, open_source, reading
from ualm.inputs.records import AUDIO_EXTENSIONS, InputRecord, is_utf8, printable
from ualm.inputs.rows import RowError, loads_row
from ualm.inputs.source_rows import source_record

MAX_METADATA_BYTES = 1 << 20
RANGE_SLACK = 1 << 20
"""Bytes a ranged read of a store's tar fetches past the member it wants (the next members of
a unit come with it)."""
_KEY = re.compile(r"^((?:.*/|)[^./]+)\.([^/]*)$")  # webdataset's rule: key up to the first dot


def local_path(file_url: str) -> Path:
    return Path(unquote(urlsplit(file_url).path))


Span = tuple[int, int]
"""(offset, size) of a member's data in an uncompressed tar."""


def parse_locator(locator: str) -> tuple[str, int, Span | None]:
    """(tar URL, member ordinal, its data's span or None) of `TAR#member=N[&offset=O&size=S]`.
    Raises ValueError on anything else."""
    file_url, fragment = locator.rsplit("#member=", 1)
    ordinal, *params = fragment.split("&")
    fields = dict(p.split("=", 1) for p in params)
    span = (int(fields["offset"]), int(fields["size"])) if "offset" in fields else None
    return file_url, int(ordinal), span


@dataclass
class _Sample:
    key: str
    first: int
    audio: tarfile.TarInfo | None = None
    audio_ordinal: int = -1
    span: Span | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    text: str | None = None
    problem: tuple[str, str] | None = None


def iter_tars(tars: Sequence[str | Path], start: int,
              crawl: CrawlConfig) -> Iterator[InputRecord]:
    """One record per sample of every tar, in tar order then member order. A tar is a local
    Path or a store's URL (a str)."""
    for tar in tars:
        url = tar.resolve().as_uri() if isinstance(tar, Path) else tar
        source = unquote(posixpath.basename(urlsplit(url).path)).split(".", 1)[0]
        for sample in _samples(url):
            yield _record(sample, url, source, start, crawl)
            start += 1


def _record(sample: _Sample, url: str, source: str, index: int,
            crawl: CrawlConfig) -> InputRecord:
    row = dict(sample.meta)
    if sample.text is not None and "caption" not in row and "captions" not in row:
        row["caption"] = sample.text
    locator = f"{url}#member={sample.audio_ordinal}"
    if sample.span is not None:
        locator += f"&offset={sample.span[0]}&size={sample.span[1]}"
    record = source_record(row, index=index, default_id=sample.key, source=source,
                           locator=locator, columns=crawl.columns)
    problem = sample.problem or (None if sample.audio else ("source/no_audio",
                                                            f"sample {sample.key!r} has no audio"))
    if problem is not None and record.reject_reason is None:
        from dataclasses import replace

        record = replace(record, reject_reason=problem[0], reject_detail=problem[1])
    return record


def _unsafe(name: str) -> bool:
    parts = name.split("/")
    return (not name or name.startswith("/") or "\\" in name or "\0" in name
            or any(p in ("", ".", "..") for p in parts[:-1]) or parts[-1] in ("", ".", ".."))


def _samples(url: str) -> Iterator[_Sample]:
    """Groups consecutive members by key, reading only small metadata members' bytes."""
    current: _Sample | None = None
    name = url if is_remote(url) else str(local_path(url))
    with reading(url):  # remote: a missing object or a denied read is one line naming the URL
        try:
            handle = open_source(url)
            with handle, tarfile.open(fileobj=handle, mode="r|*") as stream:
                plain = getattr(stream.fileobj, "comptype", "") == "tar"  # offsets are the file's
                for ordinal, member in enumerate(stream):
                    if member.isdir():
                        continue
                    match = _KEY.match(member.name)
                    key, ext = ((match.group(1), match.group(2).lower()) if match
                                else (member.name, ""))
                    if current is None or printable(key) != current.key:
                        if current is not None:
                            yield current
                        current = _Sample(printable(key), ordinal)
                        if not is_utf8(key):  # no table can record the name as it is
                            current.problem = ("input/bad_name", f"member name {current.key!r} "
                                                                 "is not UTF-8")
                    _add_member(current, stream, member, ordinal, ext)
                    if plain and current.audio is member:
                        current.span = (member.offset_data, member.size)
        except (tarfile.TarError, OSError, EOFError) as exc:
            if is_remote(url) and isinstance(exc, (FileNotFoundError, PermissionError)):
                raise  # `reading` says it in one line
            raise UalmError(f"cannot read tar {name}: {exc}",
                            fix="check that the file is a complete WebDataset tar") from exc
    if current is not None:
        yield current


def _add_member(sample: _Sample, stream: tarfile.TarFile, member: tarfile.TarInfo,
                ordinal: int, ext: str) -> None:
    if _unsafe(member.name):
        sample.problem = sample.problem or ("source/unsafe_member",
                                            f"member name {member.name!r} is not a plain path")
        return
    last = ext.rsplit(".", 1)[-1]
    if f".{last}" in AUDIO_EXTENSIONS and sample.audio is None:
        sample.audio, sample.audio_ordinal = member, ordinal
        if not member.isfile():
            sample.problem = sample.problem or ("source/not_a_file",
                                                f"audio member {member.name!r} is a link or device")
        return
    if last not in ("json", "txt") or not member.isfile() or member.size > MAX_METADATA_BYTES:
        return
    handle = stream.extractfile(member)
    data = handle.read() if handle is not None else b""
    if last == "txt":
        sample.text = data.decode("utf-8", "replace").strip()
        return
    try:
        meta = loads_row(data, member.name)
    except RowError as err:  # not JSON, or nested past the parser's stack
        sample.problem = sample.problem or (err.reason, err.detail)
        return
    if isinstance(meta, dict):
        sample.meta.update(meta)


def read_members(file_url: str, wanted: dict[int, Span | None], max_bytes: int,
                 sink: Any) -> dict[int, tuple[str, str] | None]:
    """`sink(ordinal, fileobj)` for every wanted regular member of a tar (local or remote):
    ranged reads when every wanted member has its span, else one streaming pass. Returns, per
    wanted ordinal, None when delivered or (reason, detail); a tar that is gone or unreadable
    rejects every wanted member (`input/missing_file`, `input/unreadable`)."""
    found: dict[int, tuple[str, str] | None] = {}
    ranged = all(span is not None for span in wanted.values())
    try:  # ranged: a store reads each member's header and data, and at most RANGE_SLACK more
        handle = open_source(file_url, RANGE_SLACK if ranged else None)
    except FileNotFoundError:
        return {n: ("input/missing_file", file_url) for n in wanted}
    except PermissionError:
        return {n: ("input/unreadable", f"{file_url}: access denied") for n in wanted}
    with handle:
        if ranged:
            _read_spans(handle, file_url, wanted, max_bytes, sink, found)
        else:
            _stream_members(handle, set(wanted), max_bytes, sink, found)
    for ordinal in set(wanted) - set(found):
        found[ordinal] = ("source/missing_member", f"{file_url} has no member {ordinal}")
    return found


def _read_spans(handle: Any, file_url: str, wanted: dict[int, Span | None], max_bytes: int,
                sink: Any, found: dict[int, tuple[str, str] | None]) -> None:
    """Each member by a ranged read: its header block, checked, then its data."""
    for ordinal in sorted(wanted):
        offset, size = wanted[ordinal] or (0, 0)
        if size > max_bytes:
            found[ordinal] = ("crawl/too_large", f"{size:,} > {max_bytes:,} bytes")
            continue
        if offset >= tarfile.BLOCKSIZE:
            handle.seek(offset - tarfile.BLOCKSIZE)
            header = handle.read(tarfile.BLOCKSIZE)
        else:
            header = b""
        try:
            info = tarfile.TarInfo.frombuf(header, tarfile.ENCODING, "surrogateescape")
        except tarfile.TarError:
            info = None
        if info is None or not info.isfile() or info.size != size:
            found[ordinal] = ("source/missing_member", f"{file_url}: member {ordinal} is not "
                                                       "where the listing found it")
            continue
        sink(ordinal, _Window(handle, size))
        found[ordinal] = None


def _stream_members(handle: Any, wanted: set[int], max_bytes: int, sink: Any,
                    found: dict[int, tuple[str, str] | None]) -> None:
    with tarfile.open(fileobj=handle, mode="r|*") as stream:
        for ordinal, member in enumerate(stream):
            if ordinal not in wanted:
                continue
            if not member.isfile() or _unsafe(member.name):
                found[ordinal] = ("source/not_a_file", f"member {member.name!r}")
            elif member.size > max_bytes:
                found[ordinal] = ("crawl/too_large", f"{member.size:,} > {max_bytes:,} bytes")
            else:
                member_handle: IO[bytes] | None = stream.extractfile(member)
                sink(ordinal, member_handle)
                found[ordinal] = None
            if len(found) == len(wanted):
                break


class _Window:
    """The next `size` bytes of a file object, read in blocks (a member's data)."""

    def __init__(self, handle: Any, size: int) -> None:
        self.handle, self.left = handle, size

    def read(self, n: int = -1) -> bytes:
        n = self.left if n < 0 else min(n, self.left)
        data = self.handle.read(n) if n else b""
        self.left -= len(data)
        return data
