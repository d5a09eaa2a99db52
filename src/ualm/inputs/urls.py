"""`urls.txt`: one URL per line; blank lines and lines starting with `#` are skipped."""

from __future__ import annotations

import io
import posixpath
from collections.abc import Iterable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

from ualm.errors import UalmError
from ualm.inputs.locations import is_remote, open_source, reading
from ualm.inputs.records import InputRecord
from ualm.inputs.source_rows import check_web_url
from ualm.redact import redact_url


def iter_urls(location: Path | str, start: int) -> Iterator[InputRecord]:
    """One record per URL, its id the URL (a repeat gets its line number). The list is a local
    Path or a store's URL (read through fsspec)."""
    name = str(location)
    try:
        with reading(name):  # remote: a missing object is one line naming the URL
            raw = open_source(name)
    except OSError as exc:
        raise UalmError(f"cannot read URL list {location}: {exc.strerror}") from exc
    seen: set[str] = set()
    stem = posixpath.splitext(posixpath.basename(urlsplit(name).path if is_remote(name)
                                                 else name))[0]
    with io.TextIOWrapper(raw, encoding="utf-8", errors="replace") as handle, reading(name):
        yield from _url_records(stem, handle, start, seen)


def _url_records(source: str, lines: Iterable[str], start: int,
                 seen: set[str]) -> Iterator[InputRecord]:
    for line_no, text in enumerate(lines, start=1):
        url = text.strip()
        if not url or url.startswith("#"):
            continue
        public = redact_url(url)  # the id is recorded everywhere: no credentials in it
        input_id = public if public not in seen else f"{public}#L{line_no}"
        seen.add(public)
        record = InputRecord(index=start, input_id=input_id, url=url, source=source,
                             line=line_no)
        start += 1
        yield check_web_url(record)
