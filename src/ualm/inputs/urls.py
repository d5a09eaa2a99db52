"""`urls.txt`: one URL per line; blank lines and lines starting with `#` are skipped."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

from ualm.errors import UalmError
from ualm.inputs.records import InputRecord
from ualm.inputs.source_rows import check_web_url
from ualm.redact import redact_url


def iter_urls(path: Path, start: int) -> Iterator[InputRecord]:
    """One record per URL, its id the URL (a repeat gets its line number)."""
    try:
        handle = open(path, encoding="utf-8", errors="replace")  # noqa: SIM115
    except OSError as exc:
        raise UalmError(f"cannot read URL list {path}: {exc.strerror}") from exc
    seen: set[str] = set()
    with handle:
        yield from _url_records(path, handle, start, seen)


def _url_records(path: Path, lines: Iterable[str], start: int,
                 seen: set[str]) -> Iterator[InputRecord]:
    for line_no, text in enumerate(lines, start=1):
        url = text.strip()
        if not url or url.startswith("#"):
            continue
        public = redact_url(url)  # the id is recorded everywhere: no credentials in it
        input_id = public if public not in seen else f"{public}#L{line_no}"
        seen.add(public)
        record = InputRecord(index=start, input_id=input_id, url=url, source=path.stem,
                             line=line_no)
        start += 1
        yield check_web_url(record)
