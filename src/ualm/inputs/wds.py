"""WebDataset tars as a source (another team's audio shards): each sample (members sharing a
key) is one input, its audio member the audio and its `.json` / `.txt` members the metadata.

Tars are read member by member as a stream and nothing is ever extracted: member names are only
compared, never joined to a path. A sample with a hostile name (absolute, `..`, empty parts) is
rejected `source/unsafe_member`; one whose audio member is a link or a device is rejected
`source/not_a_file`; a sample with no audio member is rejected `source/no_audio`.
"""

from __future__ import annotations

import re
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any
from urllib.parse import unquote, urlsplit

from ualm.config import CrawlConfig
from ualm.errors import UalmError
from ualm.inputs.records import AUDIO_EXTENSIONS, InputRecord, is_utf8, printable
from ualm.inputs.rows import RowError, loads_row
from ualm.inputs.source_rows import source_record

MAX_METADATA_BYTES = 1 << 20
_KEY = re.compile(r"^((?:.*/|)[^./]+)\.([^/]*)$")  # webdataset's rule: key up to the first dot


def local_path(file_url: str) -> Path:
    return Path(unquote(urlsplit(file_url).path))


@dataclass
class _Sample:
    key: str
    first: int
    audio: tarfile.TarInfo | None = None
    audio_ordinal: int = -1
    meta: dict[str, Any] = field(default_factory=dict)
    text: str | None = None
    problem: tuple[str, str] | None = None


def iter_tars(tars: list[Path], root: Path, start: int,
              crawl: CrawlConfig) -> Iterator[InputRecord]:
    """One record per sample of every tar, in tar order then member order."""
    for tar in tars:
        source = tar.name.split(".", 1)[0]
        url = tar.resolve().as_uri()
        for sample in _samples(tar):
            yield _record(sample, url, source, start, crawl)
            start += 1


def _record(sample: _Sample, url: str, source: str, index: int,
            crawl: CrawlConfig) -> InputRecord:
    row = dict(sample.meta)
    if sample.text is not None and "caption" not in row and "captions" not in row:
        row["caption"] = sample.text
    record = source_record(row, index=index, default_id=sample.key, source=source,
                           locator=f"{url}#member={sample.audio_ordinal}", columns=crawl.columns)
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


def _samples(tar: Path) -> Iterator[_Sample]:
    """Groups consecutive members by key, reading only small metadata members' bytes."""
    current: _Sample | None = None
    try:
        with tarfile.open(tar, "r|*") as stream:
            for ordinal, member in enumerate(stream):
                if member.isdir():
                    continue
                match = _KEY.match(member.name)
                key, ext = (match.group(1), match.group(2).lower()) if match else (member.name, "")
                if current is None or printable(key) != current.key:
                    if current is not None:
                        yield current
                    current = _Sample(printable(key), ordinal)
                    if not is_utf8(key):  # no table can record the name as it is
                        current.problem = ("input/bad_name", f"member name {current.key!r} "
                                                             "is not UTF-8")
                _add_member(current, stream, member, ordinal, ext)
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise UalmError(f"cannot read tar {tar}: {exc}",
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


def read_members(file_url: str, wanted: set[int], max_bytes: int,
                 sink: Any) -> dict[int, tuple[str, str] | None]:
    """One streaming pass over a tar: `sink(ordinal, fileobj)` for every wanted regular member.
    Returns, per wanted ordinal, None when delivered or (reason, detail)."""
    found: dict[int, tuple[str, str] | None] = {}
    with tarfile.open(local_path(file_url), "r|*") as stream:
        for ordinal, member in enumerate(stream):
            if ordinal not in wanted:
                continue
            if not member.isfile() or _unsafe(member.name):
                found[ordinal] = ("source/not_a_file", f"member {member.name!r}")
            elif member.size > max_bytes:
                found[ordinal] = ("crawl/too_large", f"{member.size:,} > {max_bytes:,} bytes")
            else:
                handle: IO[bytes] | None = stream.extractfile(member)
                sink(ordinal, handle)
                found[ordinal] = None
            if len(found) == len(wanted):
                break
    for ordinal in wanted - set(found):
        found[ordinal] = ("source/missing_member", f"{file_url} has no member {ordinal}")
    return found
